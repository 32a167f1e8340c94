/**
 * What the CLI reads from its user: values given literally, from a file (`@path`) or from stdin (`-`), durations
 * (`--ttl 30s`), points in the past (`--at`), and watch positions (`--from`). Bad input is an `InputInvalid`
 * naming what was wrong (exit code 2) before anything is written.
 */
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as Key from "../../../domain/Key.ts"
import type { PastPoint, WatchPosition } from "../../store/Store.ts"

/** Input the CLI cannot use: which argument and why. */
export class InputInvalid extends Schema.TaggedError<InputInvalid>()("InputInvalid", {
  input: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.input}: ${this.reason}`
  }
}

/** All of stdin, as bytes (binary-safe). */
export const readStdin = (input: string): Effect.Effect<Uint8Array, InputInvalid> =>
  Effect.tryPromise({
    try: async () => {
      const chunks: Array<Buffer> = []
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
      return new Uint8Array(Buffer.concat(chunks))
    },
    catch: (cause) => new InputInvalid({ input, reason: `cannot read stdin: ${String(cause)}` })
  })

/** A file's bytes. */
export const readFile = (input: string, file: string): Effect.Effect<Uint8Array, InputInvalid> =>
  Effect.try({
    try: () => new Uint8Array(fs.readFileSync(file)),
    catch: (cause) =>
      new InputInvalid({
        input,
        reason: `cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`
      })
  })

/**
 * A value argument: `-` reads stdin, `@path` reads a file, `@@text` is the literal `@text`, anything else is the
 * literal text (UTF-8). Files and stdin are taken byte for byte.
 */
export const value = (input: string, given: string): Effect.Effect<Uint8Array, InputInvalid> => {
  if (given === "-") return readStdin(input)
  if (given.startsWith("@@")) return Effect.succeed(new TextEncoder().encode(given.slice(1)))
  if (given.startsWith("@")) return readFile(input, given.slice(1))
  return Effect.succeed(new TextEncoder().encode(given))
}

/** Refuses more than one of several arguments reading stdin: only one can have it. */
export const oneStdin = (given: ReadonlyArray<string | undefined>): Effect.Effect<void, InputInvalid> =>
  given.filter((value) => value === "-").length > 1
    ? Effect.fail(new InputInvalid({ input: "-", reason: "only one value can come from stdin" }))
    : Effect.void

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** A duration in milliseconds: `500ms`, `30s`, `5m`, `2h`, `1d`, or a plain number of seconds. */
export const durationMillis = (input: string, given: string): Effect.Effect<number, InputInvalid> => {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(given.trim())
  const millis = match === null ? Number.NaN : Number(match[1]) * units[match[2] ?? "s"]!
  return Number.isFinite(millis) && millis > 0
    ? Effect.succeed(Math.round(millis))
    : Effect.fail(new InputInvalid({ input, reason: `"${given}" is not a duration like 30s, 5m, 2h or 1d` }))
}

/** The expiry (epoch ms) of a `--ttl`, counted from now. */
export const expiresIn = (given: string): Effect.Effect<number, InputInvalid> =>
  Effect.map(durationMillis("--ttl", given), (millis) => Date.now() + millis)

/**
 * A point in a key's past: a moment (an ISO 8601 date or time, or epoch milliseconds) or a revision (anything
 * else: revisions are UUIDs, which never read as a date).
 */
export const pastPoint = (given: string): PastPoint => {
  if (/^\d+$/.test(given)) return { _tag: "Time", millis: Number(given) }
  if (/^\d{4}-\d{2}-\d{2}/.test(given)) {
    const millis = Date.parse(given)
    if (Number.isFinite(millis)) return { _tag: "Time", millis }
  }
  return { _tag: "Revision", revision: given }
}

/** A watch position as printed by `watch -o json` (`position`), for `--from`: base64url of its JSON. */
export const encodePosition = (position: WatchPosition): string =>
  Buffer.from(JSON.stringify(position)).toString("base64url")

/** The position of `--from`. */
export const decodePosition = (given: string): Effect.Effect<WatchPosition, InputInvalid> =>
  Effect.try({
    try: () => {
      const parsed = JSON.parse(Buffer.from(given, "base64url").toString("utf8")) as Partial<WatchPosition>
      if (typeof parsed.arn !== "string" || typeof parsed.shards !== "object" || parsed.shards === null) {
        throw new Error("not a position")
      }
      return parsed as WatchPosition
    },
    catch: () =>
      new InputInvalid({
        input: "--from",
        reason: "not a watch position (use the `position` a previous `watch -o json` printed)"
      })
  })

/**
 * The last key starting with `prefix`: the prefix followed by the largest code points that fit a key. Unlike
 * Teleport's `RangeEnd` (the prefix with its last character incremented, inclusive), it takes in no key outside
 * the prefix, so `delete --prefix /a/b` never deletes a key `/a/c`.
 */
export const prefixEnd = (prefix: string): string => {
  const room = Key.maxKeyBytes - Key.toBytes(prefix).length
  if (room <= 0) return prefix
  return prefix + "\u{10FFFF}".repeat(Math.floor(room / 4)) + ["", "\u007F", "\u07FF", "\uFFFF"][room % 4]
}
