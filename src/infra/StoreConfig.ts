/**
 * Configuration of a store: a YAML file whose `storage:` section takes
 * Teleport's DynamoDB keys as they are, overridden by `DYNASTATE_*`
 * environment variables. Strict: an unknown key is an error naming the
 * nearest known one (`unknown_keys: warn` lists them in a warning instead, for
 * Teleport files), a file without a `storage:` section is an error, and every
 * bad value is reported at once, in plain words. Secrets stay `Redacted`.
 * Beside Teleport's keys it takes the projection worker's (`history_retention`,
 * its HTTP endpoint `metrics_port`/`metrics_host`, `ready_max_lag`,
 * `shutdown_timeout`, `otlp_endpoint`) and the write fence shared by writers
 * and compaction (`max_state_age`, `write_timeout`, `compaction_settle`,
 * `write_mode`). Teleport's `continuous_backups` is read for provisioning;
 * its auto-scaling keys are refused with the reason.
 */
import { ConfigProvider, Effect, Option, Result } from "effect"
import type { Redacted } from "effect"
import * as fs from "node:fs"
import { parse as parseYaml } from "yaml"
import * as LayoutLease from "../domain/LayoutLease.ts"
import type { Layout } from "../domain/Partitioning.ts"
import type * as Retention from "../domain/Retention.ts"
import type { SealedPrefix } from "../domain/SealedKeys.ts"
import { awsMargins, localMargins } from "../domain/WriteFence.ts"
import type { WriteFence, WriteMode } from "../domain/WriteFence.ts"
import { ConfigInvalid } from "./config/ConfigInvalid.ts"
import type { ConfigProblem } from "./config/ConfigInvalid.ts"
import { autoScalingKeys, autoScalingRefusal, fields, knownKeys, readAll, teleportOnlyKeys } from "./config/Fields.ts"
import type { Raw } from "./config/Fields.ts"
import { rules } from "./config/Rules.ts"
import { nearest } from "./config/Suggest.ts"
import type { RelayAddress } from "./streams/RelayAddress.ts"
import type { RelayTlsFiles } from "./streams/RelayTls.ts"
import type { Compression } from "./ValueChunks.ts"

export { ConfigInvalid } from "./config/ConfigInvalid.ts"
export type { ConfigProblem } from "./config/ConfigInvalid.ts"
export { knownKeys } from "./config/Fields.ts"

/** Everything a store needs to know about where and how it runs. */
export interface StoreConfig {
  readonly region: Option.Option<string>
  /** A DynamoDB endpoint URL, `embedded` for DynamoDB Local, or none for AWS. */
  readonly endpoint: Option.Option<string>
  readonly tableName: string
  readonly namespace: string
  /**
   * The projection workers' lease group: workers of one group share the stream's shards, each group follows them
   * all. A worker applies only its namespace's records, so each namespace of a shared table needs a group of its own.
   */
  readonly leaseGroup: string
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
  /** Point-in-time recovery for the table (Teleport's `continuous_backups`), for provisioning; none: left as it is. */
  readonly continuousBackups: Option.Option<boolean>
  /** The raw AES key file, created on first use when no KMS key and no inline key is set. */
  readonly keyringFile: string
  /** A raw AES key (base64), instead of the key file. */
  readonly keyringKey: Option.Option<Redacted.Redacted<string>>
  /** Where the embedded DynamoDB Local keeps its data. */
  readonly dataDir: string
  /** How long the projection worker keeps superseded events in the history area. */
  readonly historyRetention: Retention.Retention
  /** The port of the worker's HTTP endpoint (`/metrics`, `/healthz`, `/readyz`; 0: any free port); none when absent. */
  readonly metricsPort: Option.Option<number>
  /** The address the worker's HTTP endpoint listens on. */
  readonly metricsHost: string
  /**
   * The port the worker serves watches on to application processes (`WatchRelay`; 0: any free port); none when
   * absent: the worker serves no watches, each watching process reads the stream itself.
   */
  readonly watchPort: Option.Option<number>
  /** The address the worker serves watches on. */
  readonly watchHost: string
  /** Where an application process's watches read through a worker (`host:port`); none: they read the stream. */
  readonly watchEndpoint: Option.Option<RelayAddress>
  /**
   * The relay's TLS files (`watch_tls_cert`, `watch_tls_key`, `watch_tls_ca`, PEM; see `RelayTls`): a worker serves
   * TLS with the certificate and, given a CA, accepts only clients it signed; an application checks the worker
   * against the CA and presents the certificate.
   */
  readonly watchTls: RelayTlsFiles
  /**
   * The relay without TLS beyond this machine (`watch_plaintext`), for a channel secured otherwise (a service mesh,
   * a tunnel); refused by default (see `Rules`).
   */
  readonly watchPlaintext: boolean
  /** The worker is ready while every shard it holds is read within this lag of its newest record. */
  readonly readyMaxLagMillis: number
  /** How long a stopping worker may take to finish its batch and release its leases before the process exits anyway. */
  readonly shutdownTimeoutMillis: number
  /** Where OpenTelemetry traces and metrics go (OTLP over HTTP): `otlp_endpoint`, else `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  readonly otlpEndpoint: Option.Option<string>
  /** The writers' fence: how old a cached state they decide on may be, how long an append may take. */
  readonly writeFence: WriteFence
  /** How long compaction lets events settle; checked against `writeFence` at load (`WriteFence.isSafe`). */
  readonly settleMillis: number
  /**
   * How long a store serves on one confirmation of its layout by the namespace's layout record (`layout_lease`, 30 s
   * by default; see `LayoutLease`): every process of a namespace must use the same, since a layout migration waits
   * for it (with `write_timeout` and the margins, see {@link layoutLeaseOf}) before moving keys.
   */
  readonly layoutLeaseMillis: number
  /** Fenced single-item appends, or strict ones that check their predecessor (see `WriteMode`). */
  readonly writeMode: WriteMode
  /**
   * Compression of values stored in chunks, before encryption (`value_compression`, `none` by default: a compressed
   * length says something about the content, see `ValueChunks`).
   */
  readonly compression: Compression
  /** Prefixes whose next segment (or rest) is stored sealed (see `SealedKeys`); none by default. */
  readonly sealedPrefixes: ReadonlyArray<SealedPrefix>
  /**
   * Prefixes of stored keys with partitions of their own, or spread over hash buckets (see `Partitioning`); none
   * by default. Recorded in the table by the first store that opens with them (see `LayoutRecord`).
   */
  readonly partitionedPrefixes: Layout
}

/** What to do with keys dynastate does not know: fail (the default), or list them in a warning and go on. */
export type UnknownKeys = "error" | "warn"

/** Environment variables beside `DYNASTATE_<KEY>` that are not storage keys, so never reported as unknown. */
export const otherVariables: ReadonlyArray<string> = [
  "DYNASTATE_CONFIG",
  "DYNASTATE_CACHE_DIR",
  "DYNASTATE_LOCAL_IDLE_MS",
  "DYNASTATE_LOG_LEVEL"
]

/** The environment variable of a storage key: `table_name` is `DYNASTATE_TABLE_NAME`. */
export const variableOf = (key: string): string => `DYNASTATE_${key.toUpperCase()}`

/** The standard variable naming the OpenTelemetry collector, used when `otlp_endpoint` is not set. */
export const otlpVariable = "OTEL_EXPORTER_OTLP_ENDPOINT"

/** `storage.table_name` is read from `DYNASTATE_TABLE_NAME`, and so on. */
export const envProvider = (env: Record<string, string | undefined> = process.env): ConfigProvider.ConfigProvider =>
  ConfigProvider.fromEnv({
    env: Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined))
  }).pipe(
    ConfigProvider.mapInput((path) => path[0] === "storage" ? [variableOf(String(path[path.length - 1]))] : path)
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

/** Why a key is unknown, with the nearest known key when it looks like a slip. */
const unknownReason = (key: string, known: ReadonlyArray<string>, show: (key: string) => string): string => {
  if ((teleportOnlyKeys as ReadonlyArray<string>).includes(key)) {
    return "is a Teleport key dynastate does not use; set unknown_keys: warn to accept Teleport's keys with a warning"
  }
  const suggestion = nearest(key, known)
  return suggestion === undefined
    ? "is not a dynastate key (unknown_keys: warn accepts unknown keys with a warning)"
    : `is not a dynastate key; did you mean ${show(suggestion)}?`
}

/** An ignored key for the warning, with the known key it may have meant. */
const withSuggestion = (key: string, known: ReadonlyArray<string>, show: (key: string) => string): string => {
  const suggestion = nearest(key, known)
  return suggestion === undefined ? key : `${key} (did you mean ${show(suggestion)}?)`
}

/** What the sources hold, read into the configuration with every problem found. */
interface Sources {
  /** The raw value of a storage key. */
  readonly read: (key: string) => Raw | undefined
  /** Where a key's value came from, when worth saying (an environment variable). */
  readonly hint?: ((key: string) => string | undefined) | undefined
  /** `OTEL_EXPORTER_OTLP_ENDPOINT`, when set. */
  readonly otlp: string | undefined
  /** Problems found before reading (unknown keys, a missing section). */
  readonly problems: ReadonlyArray<ConfigProblem>
}

const assemble = (sources: Sources): Effect.Effect<StoreConfig, ConfigInvalid> => {
  const { problems: fieldProblems, values } = readAll(sources.read, sources.hint)
  const problems = [...sources.problems, ...fieldProblems]
  for (const key of autoScalingKeys) {
    if (sources.read(key) !== undefined) problems.push({ field: `storage.${key}`, reason: autoScalingRefusal })
  }
  let otlpEndpoint = values.otlpEndpoint
  if (Option.isNone(otlpEndpoint) && sources.otlp !== undefined && sources.otlp !== "") {
    const parsed = fields.otlpEndpoint.parse(sources.otlp)
    if (Result.isSuccess(parsed)) otlpEndpoint = parsed.success
    else problems.push({ field: otlpVariable, reason: `${JSON.stringify(sources.otlp)} ${parsed.failure}` })
  }
  const reported = new Set(problems.map((problem) => problem.field))
  for (const rule of rules) {
    if (rule.fields.some((key) => reported.has(`storage.${key}`))) continue
    const problem = rule.check(values)
    if (problem !== undefined) problems.push(problem)
  }
  const [first, ...rest] = problems
  if (first !== undefined) return Effect.fail(ConfigInvalid.of([first, ...rest]))
  const {
    autoScaling: _autoScaling,
    layoutLease,
    maxStateAge,
    readyMaxLag,
    shutdownTimeout,
    type: _type,
    unknownKeys: _unknownKeys,
    watchTlsCa,
    watchTlsCert,
    watchTlsKey,
    writeTimeout,
    ...config
  } = values
  return Effect.succeed({
    ...config,
    watchTls: { cert: watchTlsCert, key: watchTlsKey, ca: watchTlsCa },
    otlpEndpoint,
    layoutLeaseMillis: layoutLease,
    readyMaxLagMillis: readyMaxLag,
    shutdownTimeoutMillis: shutdownTimeout,
    writeFence: { maxStateAgeMillis: maxStateAge, writeTimeoutMillis: writeTimeout }
  })
}

/** A value of the YAML document as a raw configuration value. */
const rawOf = (value: unknown): Raw | undefined => {
  if (value === undefined || value === null) return undefined
  if (Array.isArray(value)) return { _tag: "List", items: value.map(String) }
  if (typeof value === "object") return { _tag: "Mapping" }
  return { _tag: "Text", text: String(value) }
}

/** The storage section of a document: at the top, or under `teleport:` as in Teleport's own file. */
const storageSection = (document: Record<string, unknown>): { readonly found: boolean; readonly section: unknown } => {
  if ("storage" in document) return { found: true, section: document.storage }
  const teleport = document.teleport
  if (typeof teleport === "object" && teleport !== null && "storage" in teleport) {
    return { found: true, section: (teleport as Record<string, unknown>).storage }
  }
  return { found: false, section: undefined }
}

/**
 * Loads the configuration: environment variables first, then the YAML file
 * named by `file` (or `DYNASTATE_CONFIG`), then defaults. Fails with one
 * `ConfigInvalid` listing every problem. `unknownKeys` (else the
 * configuration's `unknown_keys`, else `error`) says whether unknown keys and
 * `DYNASTATE_*` variables fail the load or are listed in a warning.
 */
export const load = Effect.fn("StoreConfig.load")(function*(options?: {
  readonly file?: string | undefined
  readonly env?: Record<string, string | undefined> | undefined
  readonly unknownKeys?: UnknownKeys | undefined
}) {
  const env = options?.env ?? process.env
  const file = options?.file ?? env.DYNASTATE_CONFIG
  const problems: Array<ConfigProblem> = []
  let storage: Record<string, unknown> = {}
  if (file !== undefined) {
    const { found, section } = storageSection(yield* readYamlFile(file))
    if (!found) {
      problems.push({
        field: file,
        reason: "has no storage: section (at the top, or under teleport:); dynastate reads its settings only there"
      })
    } else if (typeof section !== "object" || section === null || Array.isArray(section)) {
      problems.push({ field: "storage", reason: "must be a mapping of keys such as table_name: and region:" })
    } else {
      storage = section as Record<string, unknown>
    }
  }
  const variable = (key: string): string | undefined => {
    const value = env[variableOf(key)]
    return value === undefined || value === "" ? undefined : value
  }
  const read = (key: string): Raw | undefined => {
    const fromEnv = variable(key)
    return fromEnv !== undefined ? { _tag: "Text", text: fromEnv } : rawOf(storage[key])
  }
  const fileText = rawOf(storage.unknown_keys)
  const policy: UnknownKeys =
    (options?.unknownKeys ?? variable("unknown_keys") ?? (fileText?._tag === "Text" ? fileText.text : "")) === "warn"
      ? "warn"
      : "error"

  const ignored: Array<string> = []
  for (const key of Object.keys(storage)) {
    if (knownKeys.includes(key)) continue
    if (policy === "warn") ignored.push(withSuggestion(key, knownKeys, (known) => known))
    else problems.push({ field: `storage.${key}`, reason: unknownReason(key, knownKeys, (known) => known) })
  }
  const variables = new Set([...knownKeys.map(variableOf), ...otherVariables])
  for (const name of Object.keys(env)) {
    if (!name.startsWith("DYNASTATE_") || variables.has(name)) continue
    if (policy === "warn") ignored.push(withSuggestion(name, knownKeys.map(variableOf), (known) => known))
    else problems.push({ field: name, reason: unknownReason(name.slice(10).toLowerCase(), knownKeys, variableOf) })
  }

  const config = yield* assemble({
    read,
    hint: (key) => variable(key) === undefined ? undefined : variableOf(key),
    otlp: env[otlpVariable],
    problems
  })
  if (ignored.length > 0) {
    yield* Effect.logWarning(`ignoring storage keys dynastate does not use: ${ignored.join(", ")}`)
  }
  return config
})

/** The raw value of `path` in a provider. */
const loadRaw = (provider: ConfigProvider.ConfigProvider, path: ConfigProvider.Path) =>
  Effect.gen(function*() {
    const node = yield* provider.load(path)
    if (node === undefined) return undefined
    if (node._tag === "Value") return { _tag: "Text", text: node.value } as Raw
    if (node._tag === "Record") {
      return node.value === undefined
        ? { _tag: "Mapping" } as Raw
        : { _tag: "Text", text: node.value } as Raw
    }
    const items: Array<string> = []
    for (let i = 0; i < node.length; i++) {
      const item = yield* provider.load([...path, i])
      if (item?._tag === "Value") items.push(item.value)
    }
    return { _tag: "List", items } as Raw
  })

/**
 * The checked configuration under `storage` of a `ConfigProvider`, with every problem in one `ConfigInvalid`.
 * Keys under `storage` it does not know fail it (with `unknownKeys: "warn"`, they are listed in a warning);
 * `OTEL_EXPORTER_OTLP_ENDPOINT` at the provider's top stands in for `storage.otlp_endpoint`.
 */
export const fromProvider = (
  provider: ConfigProvider.ConfigProvider,
  options?: { readonly unknownKeys?: UnknownKeys | undefined }
): Effect.Effect<StoreConfig, ConfigInvalid> =>
  Effect.gen(function*() {
    const raws = new Map<string, Raw | undefined>()
    for (const key of knownKeys) raws.set(key, yield* loadRaw(provider, ["storage", key]))
    const policyRaw = raws.get("unknown_keys")
    const policy = options?.unknownKeys ?? (policyRaw?._tag === "Text" && policyRaw.text === "warn" ? "warn" : "error")
    const section = yield* provider.load(["storage"])
    const unknown = section?._tag === "Record" ? [...section.keys].filter((key) => !knownKeys.includes(key)) : []
    const otlp = yield* provider.load([otlpVariable])
    const problems = policy === "warn" ? [] : unknown.map((key) => ({
      field: `storage.${key}`,
      reason: unknownReason(key, knownKeys, (known) => known)
    }))
    const config = yield* assemble({
      read: (key) => raws.get(key),
      otlp: otlp?._tag === "Value" ? otlp.value : undefined,
      problems
    })
    if (policy === "warn" && unknown.length > 0) {
      const listed = unknown.map((key) => withSuggestion(key, knownKeys, (known) => known))
      yield* Effect.logWarning(`ignoring storage keys dynastate does not use: ${listed.join(", ")}`)
    }
    return config
  }).pipe(
    Effect.catchTag("SourceError", (error) =>
      Effect.fail(new ConfigInvalid({ field: "storage", reason: `cannot read the configuration: ${error.message}` })))
  )

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

const loopback = new Set(["127.0.0.1", "localhost", "[::1]"])

/**
 * Whether the store is DynamoDB Local on this machine (embedded, or an endpoint on the loopback address): one clock,
 * and no network to hold a request back, so a layout migration needs no margins for them (see `WriteFence.Margins`).
 */
export const isOnThisMachine = (config: StoreConfig): boolean =>
  isEmbedded(config) ||
  Option.match(config.endpoint, {
    onNone: () => false,
    onSome: (endpoint) => loopback.has(URL.parse(endpoint)?.hostname ?? "")
  })

/**
 * The layout lease of the configuration's processes (see `LayoutLease`): `layout_lease`, and how long a migration
 * waits after it is recorded, from it, `write_timeout` and AWS's margins (none for DynamoDB Local on this machine).
 */
export const layoutLeaseOf = (config: StoreConfig): LayoutLease.LayoutLease =>
  LayoutLease.make(config.layoutLeaseMillis, config.writeFence, isOnThisMachine(config) ? localMargins : awsMargins)
