/**
 * The backup file: JSON lines, a header first (format, version, store id, table, namespace, item counts and the
 * SHA-256 of every line after it), then one line per item (`{"role": …, "item": …}`, the item in DynamoDB's JSON
 * form with binary values in base64). Counts and checksum are known only at the end, so the body is written to a
 * temporary file first and the backup appears under its name, header first, only once complete.
 */
import { Effect, Schema, Stream } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as readline from "node:readline"
import { pipeline } from "node:stream/promises"
import type { Role } from "../../infra/ops/BackupItems.ts"

/** The `format` every backup header names. */
export const formatName = "dynastate-backup"

/** The version of the format this code writes and reads. */
export const formatVersion = 1

/** Items per role. */
export const Counts = Schema.Struct({
  event: Schema.Int,
  history: Schema.Int,
  grave: Schema.Int,
  /** Chunk items of large values; absent from backups made before large values, which hold none. */
  chunk: Schema.Int.pipe(Schema.withDecodingDefault(Effect.succeed(0))),
  "data-key": Schema.Int
})

/** The item counts of a backup, per role. */
export type Counts = typeof Counts.Type

/** The first line of a backup. */
export const Header = Schema.Struct({
  format: Schema.Literal(formatName),
  version: Schema.Literal(formatVersion),
  /** What the values are bound to: restoring under another store id or namespace re-encrypts them. */
  storeId: Schema.String,
  table: Schema.String,
  namespace: Schema.String,
  createdAt: Schema.String,
  counts: Counts,
  /** SHA-256 (hex) of every line after the header, each with its newline. */
  sha256: Schema.String
})

/** The header of a backup. */
export type Header = typeof Header.Type

/** One item line. */
export const Line = Schema.Struct({
  role: Schema.Literals(["event", "history", "grave", "chunk", "data-key"]),
  item: Schema.Unknown
})

/** A backup file cannot be read or written (missing, not writable, disk full). */
export class BackupFileError extends Schema.TaggedError<BackupFileError>()("BackupFileError", {
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `backup file ${this.path}: ${this.reason}`
  }
}

/** A backup file is not a complete, intact backup this code can restore; nothing was written. */
export class BackupInvalid extends Schema.TaggedError<BackupInvalid>()("BackupInvalid", {
  path: Schema.String,
  /** The line (1-based) where the problem is; 0 for the file as a whole. */
  line: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `${this.path}${this.line > 0 ? ` line ${this.line}` : ""} is not a valid backup: ${this.reason}`
  }
}

const ioError = (path: string) => (cause: unknown) =>
  new BackupFileError({ path, reason: (cause as { message?: string })?.message ?? String(cause) })

/** No counts yet. */
export const noCounts = (): { -readonly [K in Role]: number } => ({
  event: 0,
  history: 0,
  grave: 0,
  chunk: 0,
  "data-key": 0
})

/**
 * Writes a backup: `body` gives the item lines (without newline, each with its role), `header` makes the header
 * from the counts and checksum. The file appears at `path` only when complete; a failure leaves no file there.
 */
export const write = <E, R>(
  path: string,
  body: Stream.Stream<{ readonly role: Role; readonly line: string }, E, R>,
  header: (counts: Counts, sha256: string) => Header
): Effect.Effect<Header, E | BackupFileError, R> =>
  Effect.gen(function*() {
    const bodyPath = `${path}.body.tmp`
    const fullPath = `${path}.tmp`
    const cleanUp = Effect.sync(() => {
      fs.rmSync(bodyPath, { force: true })
      fs.rmSync(fullPath, { force: true })
    })
    return yield* Effect.gen(function*() {
      const hash = createHash("sha256")
      const counts = noCounts()
      const fd = yield* Effect.try({ try: () => fs.openSync(bodyPath, "w", 0o600), catch: ioError(bodyPath) })
      yield* body.pipe(
        Stream.runForEach(({ line, role }) =>
          Effect.try({
            try: () => {
              const text = `${line}\n`
              fs.writeSync(fd, text)
              hash.update(text)
              counts[role]++
            },
            catch: ioError(bodyPath)
          })
        ),
        Effect.ensuring(Effect.sync(() => fs.closeSync(fd)))
      )
      const made = header(counts, hash.digest("hex"))
      yield* Effect.try({
        try: () => fs.writeFileSync(fullPath, `${JSON.stringify(made)}\n`, { mode: 0o600 }),
        catch: ioError(fullPath)
      })
      yield* Effect.tryPromise({
        try: () => pipeline(fs.createReadStream(bodyPath), fs.createWriteStream(fullPath, { flags: "a" })),
        catch: ioError(fullPath)
      })
      yield* Effect.try({ try: () => fs.renameSync(fullPath, path), catch: ioError(path) })
      return made
    }).pipe(Effect.ensuring(cleanUp))
  })

/** The lines of a file, numbered from 1, read lazily. */
export const lines = (
  path: string
): Stream.Stream<{ readonly number: number; readonly text: string }, BackupFileError> =>
  Stream.unwrap(Effect.sync(() => {
    const input = fs.createReadStream(path, { encoding: "utf8" })
    const reader = readline.createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })
    let number = 0
    return Stream.fromAsyncIterable(reader, ioError(path)).pipe(
      Stream.map((text) => ({ number: ++number, text })),
      Stream.ensuring(Effect.sync(() => {
        reader.close()
        input.destroy()
      }))
    )
  }))

const parseJson = (path: string, number: number, text: string) =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: () => new BackupInvalid({ path, line: number, reason: "not JSON" })
  })

/** The header of a backup file, checked. */
export const readHeader = (path: string): Effect.Effect<Header, BackupInvalid | BackupFileError> =>
  lines(path).pipe(
    Stream.take(1),
    Stream.runHead,
    Effect.flatMap((first) =>
      first._tag === "None"
        ? Effect.fail(new BackupInvalid({ path, line: 0, reason: "the file is empty" }))
        : parseJson(path, 1, first.value.text)
    ),
    Effect.flatMap((json) =>
      Schema.decodeUnknownEffect(Header)(json).pipe(
        Effect.mapError((error) =>
          new BackupInvalid({
            path,
            line: 1,
            reason: (json as { format?: unknown })?.format !== formatName
              ? `no ${formatName} header`
              : (json as { version?: unknown })?.version !== formatVersion
              ? `format version ${String((json as { version?: unknown }).version)}; this version reads ${formatVersion}`
              : `bad header: ${error.message}`
          })
        )
      )
    )
  )

/** The item lines of a backup file (after the header), each parsed into role and item JSON. */
export const items = (
  path: string
): Stream.Stream<
  { readonly number: number; readonly role: Role; readonly item: unknown; readonly text: string },
  BackupInvalid | BackupFileError
> =>
  lines(path).pipe(
    Stream.drop(1),
    Stream.mapEffect(({ number, text }) =>
      parseJson(path, number, text).pipe(
        Effect.flatMap((json) => Schema.decodeUnknownEffect(Line)(json)),
        Effect.mapError((error) =>
          error._tag === "BackupInvalid"
            ? error
            : new BackupInvalid({ path, line: number, reason: `not an item line: ${error.message}` })
        ),
        Effect.map((line) => ({ number, role: line.role, item: line.item, text }))
      )
    )
  )
