/**
 * How the CLI answers: results on stdout in the format `-o` chose (`text` for people, `json` for programs, one
 * JSON document per line for streams, `value` for a value's raw bytes), everything else on stderr, and an exit
 * code per kind of failure so a script can tell "not found" from "try again later".
 */
import { Console, Effect } from "effect"
import { Flag, GlobalFlag } from "effect/cli"
import type { Item } from "../../../domain/Item.ts"

/** The output formats of `-o`. */
export type Format = "text" | "json" | "value"

/** `-o, --output`: how results are printed (a global flag: any command, before or after its name). */
export const OutputFormat = GlobalFlag.Setting("output")({
  flag: Flag.Literals("output", ["text", "json", "value"]).pipe(
    Flag.withAlias("o"),
    Flag.withDefault("text" as const),
    Flag.withDescription("text (default), json (JSON lines for streams) or value (the raw value only)")
  )
})

/**
 * The exit codes, documented in `--help` and the README: 0 ok, 1 unexpected, 2 bad input or usage, 3 not found,
 * 4 condition failed or already exists, 5 storage unavailable (throttled, unreachable, cannot decrypt), 6 the
 * store is not set up (table or key missing: `dynastate init` or `provision`), 7 a `doctor` check failed or `audit`
 * found tampering (a forged checkpoint, or one whose signing key is gone, included).
 */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  notFound: 3,
  conditionFailed: 4,
  unavailable: 5,
  notSetUp: 6,
  checkFailed: 7
} as const

/** The exit-code table as `--help` shows it. */
export const exitCodesHelp = "exit codes: 0 ok, 1 unexpected error, 2 bad input or usage, 3 not found, " +
  "4 condition failed or already exists, 5 storage unavailable, 6 store not set up (run `dynastate init`), 7 a doctor check failed or audit found tampering"

const byTag: Record<string, number> = {
  NotFound: ExitCode.notFound,
  Shredded: ExitCode.notFound,
  AlreadyExists: ExitCode.conditionFailed,
  CompareFailed: ExitCode.conditionFailed,
  IncorrectRevision: ExitCode.conditionFailed,
  ConditionFailed: ExitCode.conditionFailed,
  BadParameter: ExitCode.usage,
  ValueTooLarge: ExitCode.usage,
  ConfigInvalid: ExitCode.usage,
  InputInvalid: ExitCode.usage,
  PolicyInputInvalid: ExitCode.usage,
  ProjectionModuleInvalid: ExitCode.usage,
  UnknownProjection: ExitCode.usage,
  DuplicateProjectionName: ExitCode.usage,
  TableMissing: ExitCode.notSetUp,
  KeyFileMissing: ExitCode.notSetUp,
  Throttled: ExitCode.unavailable,
  StorageFailure: ExitCode.unavailable,
  WriteContention: ExitCode.unavailable,
  DecryptionFailed: ExitCode.unavailable,
  HistoryGap: ExitCode.unavailable,
  DynamoDBLocalError: ExitCode.unavailable,
  TableSchemaMismatch: ExitCode.unavailable,
  KeyringError: ExitCode.unavailable,
  WatchGap: ExitCode.unavailable,
  WatcherOverflow: ExitCode.unavailable,
  StreamGone: ExitCode.unavailable,
  IteratorExpired: ExitCode.unavailable,
  TrimmedData: ExitCode.unavailable,
  LateWriteUndone: ExitCode.unavailable,
  MetricsServerError: ExitCode.unavailable,
  BackupFileError: ExitCode.usage,
  BackupInvalid: ExitCode.usage,
  ProvisionRefused: ExitCode.conditionFailed,
  DoctorFailed: ExitCode.checkFailed,
  AuditFailed: ExitCode.checkFailed,
  CheckpointWriteFailed: ExitCode.usage,
  // A checkpoint that does not verify is evidence too; one that is no checkpoint of this store is bad input.
  "CheckpointInvalid.forged": ExitCode.checkFailed,
  "CheckpointInvalid.no-signing-key": ExitCode.checkFailed,
  "CheckpointInvalid.unreadable": ExitCode.usage,
  "CheckpointInvalid.malformed": ExitCode.usage,
  "CheckpointInvalid.other-store": ExitCode.usage,
  // Refusals whose exit code depends on their `kind`.
  "RestoreRefused.table-missing": ExitCode.notSetUp,
  "RestoreRefused.not-a-store-table": ExitCode.usage,
  "RestoreRefused.not-empty": ExitCode.conditionFailed,
  // A namespace migrating, or recorded with another layout: a condition of the target, as one holding data is.
  "RestoreRefused.layout": ExitCode.conditionFailed,
  "RestoreRefused.large-values": ExitCode.usage
}

/** The exit code of a failure, by its tag and `kind` if it has one (1 for anything the CLI does not know). */
export const exitCodeOf = (error: unknown): number => {
  const { _tag: tag, kind } = (error ?? {}) as { _tag?: unknown; kind?: unknown }
  if (typeof tag !== "string") return ExitCode.unexpected
  return (typeof kind === "string" ? byTag[`${tag}.${kind}`] : undefined) ?? byTag[tag] ?? ExitCode.unexpected
}

/** One line naming a failure: its tag and message, never a stack. */
export const describeFailure = (error: unknown): string => {
  const message = (error as { message?: unknown })?.message
  const tag = (error as { _tag?: unknown })?._tag
  if (typeof message === "string" && message !== "") {
    return typeof tag === "string" && !message.startsWith(tag) ? `${tag}: ${message}` : message
  }
  return typeof tag === "string" ? tag : String(error)
}

/** A failure as JSON on stderr, for `-o json`: scripts parse the error too. */
export const failureJson = (error: unknown) => ({
  error: (error as { _tag?: unknown })?._tag ?? "Error",
  message: describeFailure(error),
  exitCode: exitCodeOf(error)
})

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

/** A value for JSON: its text when it is UTF-8, else base64 (with `valueEncoding` saying so). */
export const jsonValue = (value: Uint8Array): { value: string; valueEncoding?: "base64" } => {
  try {
    return { value: strictUtf8.decode(value) }
  } catch {
    return { value: Buffer.from(value).toString("base64"), valueEncoding: "base64" }
  }
}

/** An item as JSON. */
export const itemJson = (item: Item) => ({
  key: item.key,
  ...jsonValue(item.value),
  revision: item.revision,
  ...(item.expires === undefined ? {} : { expires: new Date(item.expires).toISOString() })
})

const lenient = new TextDecoder()

/** An item as one line of text: `key = "value" @ revision [expires …]`. */
export const itemText = (item: Item): string =>
  `${item.key} = ${JSON.stringify(lenient.decode(item.value))} @ ${item.revision}${
    item.expires === undefined ? "" : ` expires ${new Date(item.expires).toISOString()}`
  }`

/** Writes bytes to stdout as they are. */
export const writeRaw = (bytes: Uint8Array): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    process.stdout.write(bytes, () => resume(Effect.void))
  })

/**
 * Prints one result in the chosen format: `text` and `json` are what they say (`json` one line per call, so a
 * stream of calls is JSON lines); `value` prints `value` raw when given, else the text.
 */
export const emit = (result: {
  readonly text: string
  readonly json: unknown
  readonly value?: Uint8Array | string | undefined
}) =>
  Effect.gen(function*() {
    const format = yield* OutputFormat
    if (format === "json") return yield* Console.log(JSON.stringify(result.json))
    if (format === "value" && result.value !== undefined) {
      return yield* typeof result.value === "string" ? Console.log(result.value) : writeRaw(result.value)
    }
    return yield* Console.log(result.text)
  })
