/**
 * The CLI's global flags (`--config`, `--endpoint`, `--region`, `--table`, `--namespace`, `--profile`; they win
 * over `DYNASTATE_*` variables, which win over the file) and the store a command opens with them.
 */
import { Effect, Layer, Option } from "effect"
import { Flag, GlobalFlag } from "effect/cli"
import * as StoreConfig from "../../../infra/StoreConfig.ts"
import { legacyDataWarning, resolvePaths } from "../DataDir.ts"
import * as StoreLive from "../StoreLive.ts"

const optionalString = (name: string, description: string) =>
  GlobalFlag.Setting(name)({ flag: Flag.String(name).pipe(Flag.optional, Flag.withDescription(description)) })

/** `--config`: the YAML file (else `DYNASTATE_CONFIG`). */
export const ConfigFile = optionalString("config", "the YAML configuration file (default: $DYNASTATE_CONFIG)")
/** `--endpoint`: a DynamoDB endpoint URL, or `embedded` for the shared DynamoDB Local. */
export const Endpoint = optionalString("endpoint", "DynamoDB endpoint URL, or `embedded` (storage.endpoint)")
/** `--region`: the AWS region. */
export const Region = optionalString("region", "AWS region (storage.region)")
/** `--table`: the table name. */
export const Table = optionalString("table", "table name (storage.table_name)")
/** `--namespace`: the store's namespace within the table. */
export const Namespace = optionalString("namespace", "namespace within the table (storage.namespace)")
/** `--profile`: the AWS profile of the shared config and credentials files. */
export const Profile = optionalString("profile", "AWS profile for credentials (sets AWS_PROFILE)")

/** Every global flag of the CLI's own, for `Command.withGlobalFlags`. */
export const storeFlags = [ConfigFile, Endpoint, Region, Table, Namespace, Profile] as const

/** What a command does to the store, which decides what opening it may set up. */
export type Access =
  /** Reads and writes on a store that exists: nothing is created (a missing table or key is an error). */
  | "use"
  /** Sets the store up: creates a missing table and the first key of a store without data. */
  | "setup"

const openOptions = (access: Access): StoreLive.OpenOptions =>
  access === "setup" ? { createTable: true, createKey: true } : { createTable: false, createKey: false }

/** The configuration the global flags and the environment give, local paths resolved (`DataDir`). */
export const loadConfig = Effect.gen(function*() {
  const file = Option.getOrUndefined(yield* ConfigFile) ?? process.env["DYNASTATE_CONFIG"]
  const overrides: Record<string, string> = {}
  const set = (variable: string, value: Option.Option<string>) => {
    if (Option.isSome(value)) overrides[variable] = value.value
  }
  set("DYNASTATE_ENDPOINT", yield* Endpoint)
  set("DYNASTATE_REGION", yield* Region)
  set("DYNASTATE_TABLE_NAME", yield* Table)
  set("DYNASTATE_NAMESPACE", yield* Namespace)
  const profile = yield* Profile
  // The SDK's default credential chain reads it when the clients are made, for DynamoDB and KMS alike.
  if (Option.isSome(profile)) process.env["AWS_PROFILE"] = profile.value
  const env = { ...process.env, ...overrides }
  const config = resolvePaths(yield* StoreConfig.load({ file, env }), { configFile: file, env })
  const legacy = legacyDataWarning(config)
  if (legacy !== undefined) yield* Effect.logWarning(legacy)
  return { config, file }
})

/** Runs the program `make` gives for the configuration, with the store opened as `access` allows. */
export const withConfiguredStore = <A, E, R>(
  access: Access,
  make: (config: StoreConfig.StoreConfig) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const { config } = yield* loadConfig
    return yield* make(config).pipe(
      Effect.provide(Layer.fresh(StoreLive.layer(config, undefined, openOptions(access))))
    )
  })

/** Runs `program` with the configured store, opened as `access` allows. */
export const withStore = <A, E, R>(access: Access, program: Effect.Effect<A, E, R>) =>
  withConfiguredStore(access, () => program)
