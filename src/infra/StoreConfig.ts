/**
 * Configuration of a store: a YAML file whose `storage:` section takes
 * Teleport's DynamoDB keys as they are, overridden by `DYNASTATE_*`
 * environment variables. Secrets stay `Redacted`; a bad value fails naming
 * its field. Beside Teleport's keys it takes the projection worker's
 * `history_retention` and its Prometheus endpoint (`metrics_port`,
 * `metrics_host`), and the write fence shared by writers and compaction
 * (`max_state_age`, `write_timeout`, `compaction_settle`, `write_mode`).
 */
import { Config, ConfigProvider, Effect, Option, Result, Schema, SchemaIssue, SchemaTransformation } from "effect"
import type { Redacted } from "effect"
import * as fs from "node:fs"
import { parse as parseYaml } from "yaml"
import * as Retention from "../domain/Retention.ts"
import { defaultSettleMillis, defaultWriteFence, isSafe, minimumSettleMillis } from "../domain/WriteFence.ts"
import type { WriteFence, WriteMode } from "../domain/WriteFence.ts"

/** A configuration that cannot be used, naming the field and what is wrong. */
export class ConfigInvalid extends Schema.TaggedError<ConfigInvalid>()("ConfigInvalid", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid configuration ${this.field}: ${this.reason}`
  }
}

/** Everything a store needs to know about where and how it runs. */
export interface StoreConfig {
  readonly region: Option.Option<string>
  /** A DynamoDB endpoint URL, `embedded` for DynamoDB Local, or none for AWS. */
  readonly endpoint: Option.Option<string>
  readonly tableName: string
  readonly namespace: string
  /** The name encryption binds values to, when not the table's (a store restored into a table of another name). */
  readonly storeId: Option.Option<string>
  readonly accessKey: Option.Option<Redacted.Redacted<string>>
  readonly secretKey: Option.Option<Redacted.Redacted<string>>
  /** The KMS key that makes data keys (id, ARN or alias); local raw AES keys when absent. */
  readonly kmsKey: Option.Option<string>
  /** More KMS keys that each wrap a copy of every data key (another region, a break-glass key). */
  readonly kmsExtraKeys: ReadonlyArray<string>
  /** A KMS endpoint other than the region's (VPC endpoints, tests). */
  readonly kmsEndpoint: Option.Option<string>
  readonly billingMode: "pay_per_request" | "provisioned"
  readonly readCapacityUnits: number
  readonly writeCapacityUnits: number
  /** The raw AES key file, created on first use when no KMS key and no inline key is set. */
  readonly keyringFile: string
  /** A raw AES key (base64), instead of the key file. */
  readonly keyringKey: Option.Option<Redacted.Redacted<string>>
  /** Where the embedded DynamoDB Local keeps its data. */
  readonly dataDir: string
  /** How long the projection worker keeps superseded events in the history area. */
  readonly historyRetention: Retention.Retention
  /** The port of the worker's Prometheus `/metrics` endpoint (0: any free port); no endpoint when absent. */
  readonly metricsPort: Option.Option<number>
  /** The address the metrics endpoint listens on. */
  readonly metricsHost: string
  /** The writers' fence: how old a cached state they decide on may be, how long an append may take. */
  readonly writeFence: WriteFence
  /** How long compaction lets events settle; checked against `writeFence` at load (`WriteFence.isSafe`). */
  readonly settleMillis: number
  /** Fenced single-item appends, or strict ones that check their predecessor (see `WriteMode`). */
  readonly writeMode: WriteMode
}

/** The keys of the `storage:` section this store understands. */
export const knownKeys = [
  "type",
  "region",
  "endpoint",
  "table_name",
  "namespace",
  "store_id",
  "access_key",
  "secret_key",
  "kms_key",
  "kms_extra_keys",
  "kms_endpoint",
  "billing_mode",
  "read_capacity_units",
  "write_capacity_units",
  "keyring_file",
  "keyring_key",
  "data_dir",
  "history_retention",
  "metrics_port",
  "metrics_host",
  "max_state_age",
  "write_timeout",
  "compaction_settle",
  "write_mode"
] as const

const positive = (name: string) => Config.schema(Schema.Int.pipe(Schema.check(Schema.isGreaterThan(0))), name)

/** `forever`, `none` or a duration such as `30d` (see `Retention.parse`). */
const RetentionFromString = Schema.String.pipe(Schema.decodeTo(
  Schema.Union([
    Schema.TaggedStruct("Forever", {}),
    Schema.TaggedStruct("None", {}),
    Schema.TaggedStruct("For", { millis: Schema.Int })
  ]),
  SchemaTransformation.transformEffect({
    decode: (text: string, options) =>
      Result.match(Retention.parse(text), {
        onSuccess: (retention) => Effect.succeed(retention),
        onFailure: (reason) => Effect.fail(new SchemaIssue.InvalidValue({ message: reason }, text, options))
      }),
    encode: (retention: Retention.Retention) => Effect.succeed(Retention.format(retention))
  })
))

/** A duration such as `30s` or `10m`, in milliseconds (see `Retention.parseDuration`). */
const DurationFromString = Schema.String.pipe(Schema.decodeTo(
  Schema.Int,
  SchemaTransformation.transformEffect({
    decode: (text: string, options) =>
      Result.match(Retention.parseDuration(text), {
        onSuccess: (millis) => Effect.succeed(millis),
        onFailure: (reason) => Effect.fail(new SchemaIssue.InvalidValue({ message: reason }, text, options))
      }),
    encode: (millis: number) => Effect.succeed(Retention.formatDuration(millis))
  })
))

const duration = (name: string, fallback: number) =>
  Config.schema(DurationFromString, name).pipe(Config.withDefault(fallback))

/** The store configuration as an Effect `Config` under `storage`. */
export const storeConfig = Config.all({
  type: Config.Literals(["dynamodb"], "type").pipe(Config.withDefault("dynamodb" as const)),
  region: Config.String("region").pipe(Config.option),
  endpoint: Config.String("endpoint").pipe(Config.option),
  tableName: Config.String("table_name").pipe(Config.withDefault("dynastate")),
  namespace: Config.String("namespace").pipe(Config.withDefault("default")),
  storeId: Config.String("store_id").pipe(Config.option),
  accessKey: Config.Redacted("access_key").pipe(Config.option),
  secretKey: Config.Redacted("secret_key").pipe(Config.option),
  kmsKey: Config.String("kms_key").pipe(Config.option),
  kmsExtraKeys: Config.String("kms_extra_keys").pipe(
    Config.withDefault(""),
    Config.map((keys) => keys.split(",").map((key) => key.trim()).filter((key) => key !== ""))
  ),
  kmsEndpoint: Config.String("kms_endpoint").pipe(Config.option),
  billingMode: Config.Literals(["pay_per_request", "provisioned"], "billing_mode").pipe(
    Config.withDefault("pay_per_request" as const)
  ),
  readCapacityUnits: positive("read_capacity_units").pipe(Config.withDefault(5)),
  writeCapacityUnits: positive("write_capacity_units").pipe(Config.withDefault(5)),
  keyringFile: Config.String("keyring_file").pipe(Config.withDefault(".dynastate/keyring.key")),
  keyringKey: Config.Redacted("keyring_key").pipe(Config.option),
  dataDir: Config.String("data_dir").pipe(Config.withDefault(".dynastate/dynamodb")),
  historyRetention: Config.schema(RetentionFromString, "history_retention").pipe(Config.withDefault(Retention.forever)),
  metricsPort: Config.schema(
    Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))),
    "metrics_port"
  ).pipe(
    Config.option
  ),
  metricsHost: Config.String("metrics_host").pipe(Config.withDefault("127.0.0.1")),
  maxStateAge: duration("max_state_age", defaultWriteFence.maxStateAgeMillis),
  writeTimeout: duration("write_timeout", defaultWriteFence.writeTimeoutMillis),
  settleMillis: duration("compaction_settle", defaultSettleMillis),
  writeMode: Config.Literals(["fenced", "strict"], "write_mode").pipe(Config.withDefault("fenced" as const))
}).pipe(
  Config.map(({ type: _type, maxStateAge, writeTimeout, ...config }): StoreConfig => ({
    ...config,
    writeFence: { maxStateAgeMillis: maxStateAge, writeTimeoutMillis: writeTimeout }
  })),
  Config.nested("storage")
)

/** `storage.table_name` is read from `DYNASTATE_TABLE_NAME`, and so on. */
export const envProvider = (env: Record<string, string | undefined> = process.env): ConfigProvider.ConfigProvider =>
  ConfigProvider.fromEnv({
    env: Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined))
  }).pipe(
    ConfigProvider.mapInput((path) =>
      path[0] === "storage" ? ["DYNASTATE_" + String(path[path.length - 1]).toUpperCase()] : path
    )
  )

/** Reads a YAML configuration file; its `storage:` section is what the store uses. */
export const readYamlFile = (file: string): Effect.Effect<Record<string, unknown>, ConfigInvalid> =>
  Effect.try({
    try: () => {
      const parsed: unknown = parseYaml(fs.readFileSync(file, "utf8"))
      return (parsed ?? {}) as Record<string, unknown>
    },
    // Only the position: the parser's message quotes the offending source line, which may hold a secret.
    catch: (cause) => {
      const position = (cause as { linePos?: ReadonlyArray<{ line: number; col: number }> }).linePos?.[0]
      const code = (cause as { code?: string }).code
      return new ConfigInvalid({
        field: file,
        reason: position
          ? `not valid YAML at line ${position.line}, column ${position.col}${code ? ` (${code})` : ""}`
          : "cannot read the file"
      })
    }
  }).pipe(
    Effect.flatMap((document) =>
      typeof document === "object" && !Array.isArray(document)
        ? Effect.succeed(document)
        : Effect.fail(new ConfigInvalid({ field: file, reason: "the file must hold a YAML mapping" }))
    )
  )

/** List-valued keys may be YAML lists or comma-separated text; the config reads text. */
const normalizeLists = (storage: Record<string, unknown>): Record<string, unknown> =>
  Array.isArray(storage.kms_extra_keys) ? { ...storage, kms_extra_keys: storage.kms_extra_keys.join(",") } : storage

const checkConsistency = (config: StoreConfig): Effect.Effect<StoreConfig, ConfigInvalid> => {
  if (Option.isSome(config.accessKey) !== Option.isSome(config.secretKey)) {
    return Effect.fail(
      new ConfigInvalid({ field: "storage.access_key", reason: "access_key and secret_key must be given together" })
    )
  }
  if (config.namespace.trim() === "" || config.namespace.includes("\u0000")) {
    return Effect.fail(
      new ConfigInvalid({ field: "storage.namespace", reason: "must be non-empty and contain no NUL" })
    )
  }
  if (!/^[a-zA-Z0-9_.-]{3,255}$/.test(config.tableName)) {
    return Effect.fail(
      new ConfigInvalid({ field: "storage.table_name", reason: "DynamoDB table names are 3-255 of a-z A-Z 0-9 _ . -" })
    )
  }
  if (Option.isSome(config.storeId) && config.storeId.value.trim() === "") {
    return Effect.fail(
      new ConfigInvalid({
        field: "storage.store_id",
        reason: "must be non-empty (leave it out to bind to the table name)"
      })
    )
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a NUL in a host name is exactly what this refuses
  if (!/^[^\s\u0000]+$/.test(config.metricsHost)) {
    return Effect.fail(
      new ConfigInvalid({
        field: "storage.metrics_host",
        reason: "must be a host name or address (0.0.0.0 or :: for every interface)"
      })
    )
  }
  // Refused rather than warned about: a settle time too short for the writers loses acknowledged writes silently.
  if (!isSafe(config.settleMillis, config.writeFence)) {
    const minimum = minimumSettleMillis(config.writeFence)
    return Effect.fail(
      new ConfigInvalid({
        field: "storage.compaction_settle",
        reason: `must be more than ${Retention.formatDuration(minimum)} (${minimum} ms) for writers with ` +
          `max_state_age ${Retention.formatDuration(config.writeFence.maxStateAgeMillis)} and write_timeout ` +
          `${Retention.formatDuration(config.writeFence.writeTimeoutMillis)}: max_state_age + 2 × write_timeout + ` +
          "5m (how late AWS may still apply a signed request) + 1m (clock skew); raise it or lower those"
      })
    )
  }
  return Effect.succeed(config)
}

/**
 * Loads the configuration: environment variables first, then the YAML file
 * named by `file` (or `DYNASTATE_CONFIG`), then defaults.
 */
export const load = Effect.fn("StoreConfig.load")(function*(options?: {
  readonly file?: string | undefined
  readonly env?: Record<string, string | undefined> | undefined
}) {
  const env = options?.env ?? process.env
  const file = options?.file ?? env.DYNASTATE_CONFIG
  const document = file === undefined ? {} : yield* readYamlFile(file)
  // Teleport's own file nests the section under `teleport:`; a dynastate file may put it at the top.
  const teleport = document.teleport
  const nested = typeof teleport === "object" && teleport !== null
    ? (teleport as Record<string, unknown>).storage
    : undefined
  const raw = "storage" in document ? document.storage : nested
  if (raw !== undefined && (typeof raw !== "object" || raw === null || Array.isArray(raw))) {
    return yield* new ConfigInvalid({ field: "storage", reason: "must be a mapping" })
  }
  const storage = raw === undefined ? undefined : normalizeLists(raw as Record<string, unknown>)
  const unknown = Object.keys(storage ?? {}).filter((key) => !(knownKeys as ReadonlyArray<string>).includes(key))
  if (unknown.length > 0) {
    yield* Effect.logWarning(`ignoring storage keys dynastate does not use: ${unknown.join(", ")}`)
  }
  const provider = ConfigProvider.orElse(
    envProvider(env),
    ConfigProvider.fromUnknown({ storage: storage ?? {} }, { preserveEmptyStrings: true })
  )
  return yield* fromProvider(provider)
})

/** A configuration error of Effect's `Config`, as a `ConfigInvalid` naming the `storage.*` field. */
const invalid = (error: Config.ConfigError): ConfigInvalid => {
  const field = /\["storage"\]\["([a-z_]+)"\]/.exec(error.message)?.[1]
  return new ConfigInvalid({ field: field === undefined ? "storage" : `storage.${field}`, reason: error.message })
}

/** The checked configuration under `storage` of a `ConfigProvider`. */
export const fromProvider = (provider: ConfigProvider.ConfigProvider): Effect.Effect<StoreConfig, ConfigInvalid> =>
  storeConfig.parse(provider).pipe(Effect.mapError(invalid), Effect.flatMap(checkConsistency))

/**
 * The checked configuration under `storage` of the current `ConfigProvider` (Effect's own `Config`), for
 * applications that configure everything through it: `storage.table_name`, `storage.region`, … (the same keys as
 * the YAML file's `storage:` section). No file is read and no `DYNASTATE_*` variable is consulted unless the
 * provider does so (`envProvider` maps them).
 */
export const fromConfig: Effect.Effect<StoreConfig, ConfigInvalid> = Effect.gen(function*() {
  return yield* fromProvider(yield* ConfigProvider.ConfigProvider)
})

/** Whether the configuration asks for the embedded DynamoDB Local (no endpoint and no region, or `embedded`). */
export const isEmbedded = (config: StoreConfig): boolean =>
  Option.match(config.endpoint, {
    onNone: () => Option.isNone(config.region),
    onSome: (endpoint) => endpoint === "embedded"
  })
