/**
 * How long superseded events are kept in the history area once compacted:
 * forever, not at all, or for a duration (after which DynamoDB's TTL removes
 * them). Written in configuration as `forever`, `none`, or a whole number with
 * a unit: `30d`, `12h`, `90m`, `3600s` (also `ms`).
 */
import { Result } from "effect"

/** Keep compacted history forever, drop it at once, or keep it for `millis`. */
export type Retention =
  | { readonly _tag: "Forever" }
  | { readonly _tag: "None" }
  | { readonly _tag: "For"; readonly millis: number }

/** Keep every superseded event (the default). */
export const forever: Retention = { _tag: "Forever" }

/** Keep no history: superseded events are deleted when compacted. */
export const none: Retention = { _tag: "None" }

/** Keep superseded events for `millis` after they are compacted. */
export const forMillis = (millis: number): Retention => ({ _tag: "For", millis })

const unitMillis: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/**
 * Reads a duration as written in configuration: a positive whole number followed by `ms`, `s`, `m`, `h` or `d`
 * (`30s`, `10m`). Fails with the reason the text is refused. Shared by every duration setting.
 */
export const parseDuration = (text: string): Result.Result<number, string> => {
  const trimmed = text.trim()
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(trimmed)
  if (match === null) {
    return Result.fail(`expected a duration such as 30d, 12h, 90m, 30s, 500ms; got ${JSON.stringify(text)}`)
  }
  const millis = Number(match[1]) * unitMillis[match[2]!]!
  if (millis === 0) return Result.fail(`a duration of ${trimmed} is zero`)
  if (!Number.isSafeInteger(millis)) return Result.fail(`${trimmed} is too long`)
  return Result.succeed(millis)
}

/** The configuration text of a duration (the inverse of {@link parseDuration}, in the largest exact unit). */
export const formatDuration = (millis: number): string => {
  const unit = (["d", "h", "m", "s"] as const).find((unit) => millis % unitMillis[unit]! === 0) ?? "ms"
  return `${millis / unitMillis[unit]!}${unit}`
}

/**
 * Reads a retention as written in configuration: `forever`, `none`, or a
 * duration (see {@link parseDuration}). Fails with the reason the text is refused.
 */
export const parse = (text: string): Result.Result<Retention, string> => {
  const trimmed = text.trim()
  if (trimmed === "forever") return Result.succeed(forever)
  if (trimmed === "none") return Result.succeed(none)
  if (!/^(\d+)(ms|s|m|h|d)$/.test(trimmed)) {
    return Result.fail(
      `expected "forever", "none" or a duration such as 30d, 12h, 90m, 3600s; got ${JSON.stringify(text)}`
    )
  }
  return Result.match(parseDuration(trimmed), {
    onSuccess: (millis) => Result.succeed(forMillis(millis)),
    onFailure: (reason) =>
      Result.fail(/zero/.test(reason) ? `a retention of ${trimmed} keeps nothing: write "none" for that` : reason)
  })
}

/** The configuration text of a retention (the inverse of {@link parse}, in the largest exact unit). */
export const format = (retention: Retention): string => {
  switch (retention._tag) {
    case "Forever":
      return "forever"
    case "None":
      return "none"
    case "For":
      return formatDuration(retention.millis)
  }
}
