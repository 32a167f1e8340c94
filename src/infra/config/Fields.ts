/**
 * The keys of the `storage:` section, each with how its text is read, what it
 * is when absent, and what it allows, so that every bad value can be reported
 * at once in plain words (`"payperrequest" is not one of pay_per_request,
 * provisioned`) rather than as a schema error.
 */
import { Option, Redacted, Result } from "effect"
import * as LayoutLease from "../../domain/LayoutLease.ts"
import * as Partitioning from "../../domain/Partitioning.ts"
import type { Layout, PartitionedPrefix } from "../../domain/Partitioning.ts"
import * as Retention from "../../domain/Retention.ts"
import * as SealedKeys from "../../domain/SealedKeys.ts"
import type { SealedPrefix } from "../../domain/SealedKeys.ts"
import { defaultSettleMillis, defaultWriteFence } from "../../domain/WriteFence.ts"
import type { WriteMode } from "../../domain/WriteFence.ts"
import { parseAddress } from "../streams/RelayAddress.ts"
import type { RelayAddress } from "../streams/RelayAddress.ts"
import type { Compression } from "../ValueChunks.ts"
import { showValue } from "./ConfigInvalid.ts"
import type { ConfigProblem } from "./ConfigInvalid.ts"

/** A value as a source holds it: text, a list of texts (a YAML list), or a mapping (never valid for a key). */
export type Raw =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "List"; readonly items: ReadonlyArray<string> }
  | { readonly _tag: "Mapping" }

/** Reads one text; fails with what the value is not (`is not one of a, b`), said after the value. */
export type Parse<A> = (text: string) => Result.Result<A, string>

/** One key of the `storage:` section. */
export interface Field<A> {
  readonly key: string
  /** Never quoted in errors. */
  readonly secret: boolean
  /** Also written as a YAML list (comma-separated text otherwise). */
  readonly list: boolean
  readonly absent: A
  readonly parse: Parse<A>
}

const field = <A>(
  key: string,
  parse: Parse<A>,
  absent: A,
  options?: { secret?: boolean; list?: boolean }
): Field<A> => ({
  key,
  parse,
  absent,
  secret: options?.secret ?? false,
  list: options?.list ?? false
})

const optional = <A>(key: string, parse: Parse<A>, options?: { secret?: boolean }): Field<Option.Option<A>> =>
  field(key, (text) => Result.map(parse(text), Option.some), Option.none<A>(), options)

const text: Parse<string> = Result.succeed

const literals = <const L extends string>(values: ReadonlyArray<L>): Parse<L> => (text) =>
  (values as ReadonlyArray<string>).includes(text)
    ? Result.succeed(text as L)
    : Result.fail(`is not one of ${values.join(", ")}`)

const positiveInt: Parse<number> = (text) => {
  const value = Number(text.trim())
  return /^\s*\d+\s*$/.test(text) && Number.isSafeInteger(value) && value > 0
    ? Result.succeed(value)
    : Result.fail("is not a whole number above 0")
}

const port: Parse<number> = (text) => {
  const value = Number(text.trim())
  return /^\s*\d+\s*$/.test(text) && value <= 65535
    ? Result.succeed(value)
    : Result.fail("is not a port number from 0 to 65535 (0: any free port)")
}

const address: Parse<RelayAddress> = (text) => {
  const parsed = parseAddress(text)
  return parsed === undefined ? Result.fail("is not host:port (a port from 1 to 65535)") : Result.succeed(parsed)
}

const boolean: Parse<boolean> = (text) =>
  text === "true"
    ? Result.succeed(true)
    : text === "false"
    ? Result.succeed(false)
    : Result.fail("is not true or false")

const durationForm = /^\s*\d+(ms|s|m|h|d)\s*$/

const duration: Parse<number> = (text) =>
  Result.mapError(
    Retention.parseDuration(text),
    (reason) =>
      !durationForm.test(text)
        ? "is not a duration: a whole number with ms, s, m, h or d, such as 30s, 10m or 2h"
        : /zero/.test(reason)
        ? "is zero: a duration must be above 0"
        : "is too long"
  )

const retention: Parse<Retention.Retention> = (text) =>
  Result.mapError(
    Retention.parse(text),
    (reason) =>
      !durationForm.test(text)
        ? "is not forever, none or a duration such as 30d, 12h or 90m"
        : /keeps nothing/.test(reason)
        ? "keeps nothing: write none for that"
        : "is too long"
  )

const httpUrl: Parse<string> = (text) => {
  const url = URL.parse(text)
  return url !== null && (url.protocol === "http:" || url.protocol === "https:")
    ? Result.succeed(text)
    : Result.fail("is not an http:// or https:// URL")
}

const list: Parse<ReadonlyArray<string>> = (text) =>
  Result.succeed(text.split(",").map((item) => item.trim()).filter((item) => item !== ""))

const secret: Parse<Redacted.Redacted<string>> = (text) => Result.succeed(Redacted.make(text))

/** Sealed prefixes, `PREFIX:segment` or `PREFIX:rest` each (`segment` when the mode is left out). */
const sealedPrefixes: Parse<ReadonlyArray<SealedPrefix>> = (text) => {
  const entries: Array<SealedPrefix> = []
  for (const item of text.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "")) {
    const colon = item.lastIndexOf(":")
    const mode = colon < 0 ? "segment" : item.slice(colon + 1)
    if (mode !== "segment" && mode !== "rest") {
      return Result.fail(
        `seals ${JSON.stringify(item)} by ${JSON.stringify(mode)}: write PREFIX:segment or PREFIX:rest`
      )
    }
    entries.push({ prefix: colon < 0 ? item : item.slice(0, colon), seal: mode })
  }
  const checked = SealedKeys.validate(entries)
  return Result.isFailure(checked)
    ? Result.fail(`is not a valid list: ${checked.failure.reason}`)
    : Result.succeed(checked.success)
}

/**
 * Partitioned prefixes (see `Partitioning`): `PREFIX:NAME` for a partition of its own, `PREFIX:NAME:BUCKETS` for
 * hash buckets. Read from the right, so a prefix may hold a colon; a name never does.
 */
const partitionedPrefixes: Parse<Layout> = (text) => {
  const entries: Array<PartitionedPrefix> = []
  for (const item of text.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "")) {
    const parts = item.split(":")
    const buckets = parts.length >= 3 && /^\d+$/.test(parts[parts.length - 1]!) ? Number(parts.pop()) : undefined
    const name = parts.length >= 2 ? parts.pop()! : undefined
    if (name === undefined) {
      return Result.fail(`partitions ${JSON.stringify(item)} without a name: write PREFIX:NAME or PREFIX:NAME:BUCKETS`)
    }
    entries.push({ prefix: parts.join(":"), name, ...(buckets === undefined ? {} : { buckets }) })
  }
  const checked = Partitioning.validate(entries)
  return Result.isFailure(checked)
    ? Result.fail(`is not a valid list: ${checked.failure.map((problem) => problem.reason).join("; ")}`)
    : Result.succeed(checked.success)
}

/** Every key of the `storage:` section dynastate reads, by the name of what it configures. */
export const fields = {
  type: field("type", literals(["dynamodb"]), "dynamodb" as const),
  region: optional("region", text),
  endpoint: optional("endpoint", text),
  tableName: field("table_name", text, "dynastate"),
  namespace: field("namespace", text, "default"),
  leaseGroup: field("lease_group", text, "default"),
  storeId: optional("store_id", text),
  accessKey: optional("access_key", secret, { secret: true }),
  secretKey: optional("secret_key", secret, { secret: true }),
  kmsKey: optional("kms_key", text),
  kmsExtraKeys: field("kms_extra_keys", list, [] as ReadonlyArray<string>, { list: true }),
  kmsEndpoint: optional("kms_endpoint", text),
  billingMode: field("billing_mode", literals(["pay_per_request", "provisioned"]), "pay_per_request" as const),
  readCapacityUnits: field("read_capacity_units", positiveInt, 5),
  writeCapacityUnits: field("write_capacity_units", positiveInt, 5),
  continuousBackups: optional("continuous_backups", boolean),
  autoScaling: field("auto_scaling", boolean, false),
  keyringFile: field("keyring_file", text, ".dynastate/keyring.key"),
  keyringKey: optional("keyring_key", secret, { secret: true }),
  dataDir: field("data_dir", text, ".dynastate/dynamodb"),
  historyRetention: field("history_retention", retention, Retention.forever),
  metricsPort: optional("metrics_port", port),
  metricsHost: field("metrics_host", text, "127.0.0.1"),
  watchPort: optional("watch_port", port),
  watchHost: field("watch_host", text, "127.0.0.1"),
  watchEndpoint: optional("watch_endpoint", address),
  watchTlsCert: optional("watch_tls_cert", text),
  watchTlsKey: optional("watch_tls_key", text),
  watchTlsCa: optional("watch_tls_ca", text),
  watchPlaintext: field("watch_plaintext", boolean, false),
  readyMaxLag: field("ready_max_lag", duration, 30_000),
  shutdownTimeout: field("shutdown_timeout", duration, 30_000),
  otlpEndpoint: optional("otlp_endpoint", httpUrl),
  maxStateAge: field("max_state_age", duration, defaultWriteFence.maxStateAgeMillis),
  writeTimeout: field("write_timeout", duration, defaultWriteFence.writeTimeoutMillis),
  settleMillis: field("compaction_settle", duration, defaultSettleMillis),
  layoutLease: field("layout_lease", duration, LayoutLease.defaultLeaseMillis),
  writeMode: field("write_mode", literals<WriteMode>(["fenced", "strict"]), "fenced" as WriteMode),
  compression: field("value_compression", literals<Compression>(["none", "gzip"]), "none" as Compression),
  sealedPrefixes: field("sealed_prefixes", sealedPrefixes, [] as ReadonlyArray<SealedPrefix>, { list: true }),
  partitionedPrefixes: field("partitioned_prefixes", partitionedPrefixes, [] as Layout, { list: true }),
  unknownKeys: field("unknown_keys", literals(["error", "warn"]), "error" as const)
} as const

/** The values of {@link fields}, each read or absent. */
export type Values = { readonly [K in keyof typeof fields]: (typeof fields)[K]["absent"] }

/**
 * Teleport's auto-scaling keys: refused, because dynastate does not manage Application Auto Scaling (its
 * policies need their own API and IAM role); `pay_per_request` scales by itself.
 */
export const autoScalingKeys = [
  "read_min_capacity",
  "read_max_capacity",
  "read_target_value",
  "write_min_capacity",
  "write_max_capacity",
  "write_target_value"
] as const

/** Why auto scaling is refused, said for `auto_scaling: true` and each of {@link autoScalingKeys}. */
export const autoScalingRefusal = "dynastate does not manage DynamoDB auto scaling: use billing_mode: " +
  "pay_per_request (it scales by itself), or set scaling policies on the table with the AWS console or CLI and " +
  "leave this key out"

/** Keys of Teleport's DynamoDB backend that dynastate has no use for; accepted with `unknown_keys: warn`. */
export const teleportOnlyKeys = [
  "audit_events_uri",
  "audit_sessions_uri",
  "audit_table_name",
  "poll_stream_period",
  "retry_period",
  "buffer_size"
] as const

/** The keys of the `storage:` section this store understands (auto scaling's only to refuse them). */
export const knownKeys: ReadonlyArray<string> = [...Object.values(fields).map((spec) => spec.key), ...autoScalingKeys]

/**
 * Reads every field from `read` (the raw value of a key, or undefined), collecting every problem rather than
 * stopping at the first. `hint` names where a key's value came from (an environment variable), for the error.
 */
export const readAll = (
  read: (key: string) => Raw | undefined,
  hint: (key: string) => string | undefined = () => undefined
): { readonly values: Values; readonly problems: ReadonlyArray<ConfigProblem> } => {
  const problems: Array<ConfigProblem> = []
  const values: Record<string, unknown> = {}
  for (const [name, spec] of Object.entries(fields) as Array<[string, Field<unknown>]>) {
    const raw = read(spec.key)
    const from = hint(spec.key)
    const field = `storage.${spec.key}`
    values[name] = spec.absent
    if (raw === undefined) continue
    if (raw._tag === "Mapping" || (raw._tag === "List" && !spec.list)) {
      problems.push({ field, reason: `is a ${raw._tag === "List" ? "list" : "mapping"}; expected a single value` })
      continue
    }
    const textValue = raw._tag === "List" ? raw.items.join(",") : raw.text
    const parsed = spec.parse(textValue)
    if (Result.isSuccess(parsed)) {
      values[name] = parsed.success
    } else {
      problems.push({
        field,
        reason: `${showValue(textValue, spec.secret)}${from === undefined ? "" : ` (from ${from})`} ${parsed.failure}`
      })
    }
  }
  return { values: values as Values, problems }
}
