/**
 * Keys: strings such as `/users/alice`, ordered by their UTF-8 bytes.
 *
 * A key is stored as the prefix of a binary DynamoDB sort key, so it must fit
 * in the 1024 bytes DynamoDB allows there after the 9 bytes the store appends,
 * and it must not contain NUL (the separator) or a lone surrogate (which has
 * no UTF-8 encoding and would silently turn into U+FFFD).
 */
import { Result } from "effect"
import { BadParameter } from "./Errors.ts"

/** The separator used by {@link join} and Teleport-style hierarchical keys. */
export const separator = "/"

/** DynamoDB's limit for a sort key, in bytes. */
export const sortKeyLimitBytes = 1024

/** Bytes the store appends to a key in the sort key: NUL plus an 8-byte sequence. */
export const sortKeySuffixBytes = 9

/** The largest key, in UTF-8 bytes. */
export const maxKeyBytes = sortKeyLimitBytes - sortKeySuffixBytes

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

/** The UTF-8 bytes of a key. */
export const toBytes = (key: string): Uint8Array => encoder.encode(key)

/** How many UTF-8 bytes a key has, without encoding it (a well-formed string: lone surrogates count as 3). */
export const byteLength = (key: string): number => {
  let bytes = 0
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i)
    if (code < 0x80) bytes += 1
    else if (code < 0x800) bytes += 2
    else if (code >= 0xd800 && code < 0xdc00 && i + 1 < key.length) {
      const next = key.charCodeAt(i + 1)
      if (next >= 0xdc00 && next < 0xe000) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

/** Writes the UTF-8 bytes of a key at the start of `target` (which must have room: see {@link byteLength}). */
export const writeBytes = (key: string, target: Uint8Array): void => {
  encoder.encodeInto(key, target)
}

/** The key whose UTF-8 bytes these are. */
export const fromBytes = (bytes: Uint8Array): string => decoder.decode(bytes)

/** Checks a key, naming the field in the error so a caller can see which argument was wrong. */
export const validate = (key: string, field = "key"): Result.Result<string, BadParameter> => {
  if (typeof key !== "string" || key.length === 0) {
    return Result.fail(new BadParameter({ field, reason: "a key must be a non-empty string" }))
  }
  if (key.includes("\u0000")) {
    return Result.fail(new BadParameter({ field, reason: "a key must not contain a NUL character" }))
  }
  if (!key.isWellFormed()) {
    return Result.fail(new BadParameter({ field, reason: "a key must not contain a lone surrogate" }))
  }
  const bytes = byteLength(key)
  if (bytes > maxKeyBytes) {
    return Result.fail(
      new BadParameter({ field, reason: `a key may have at most ${maxKeyBytes} UTF-8 bytes, this one has ${bytes}` })
    )
  }
  return Result.succeed(key)
}

/** Builds a hierarchical key: `join("users", "alice")` is `/users/alice`. */
export const join = (...parts: ReadonlyArray<string>): string =>
  separator + parts.map((part) => part.replace(/^\/+|\/+$/g, "")).join(separator)

/**
 * The largest valid key: U+10FFFF as often as fits, then the largest
 * three-byte character. Every key sorts at or before it.
 */
export const maxKey: string = "\u{10FFFF}".repeat(Math.floor(maxKeyBytes / 4)) +
  ["", "\u007F", "\u07FF", "\uFFFF"][maxKeyBytes % 4]

/**
 * The end of the range of keys that start with `prefix`: the prefix with its
 * last code point incremented, as Teleport's `RangeEnd`. Range ends are
 * inclusive, so that one key itself is included too, as in Teleport. A prefix
 * of nothing but U+10FFFF has no such successor; its range ends at
 * {@link maxKey}.
 */
export const rangeEnd = (prefix: string): string => {
  const points = Array.from(prefix)
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!
    let next = last + 1
    if (next === 0xd800) next = 0xe000 // skip the surrogate block, which has no UTF-8 form
    if (next <= 0x10ffff) return points.join("") + String.fromCodePoint(next)
  }
  return maxKey
}

/** Compares keys by their UTF-8 bytes (the store's order), unlike `<` on strings (UTF-16 order). */
export const compare = (a: string, b: string): -1 | 0 | 1 => {
  const x = toBytes(a)
  const y = toBytes(b)
  const n = Math.min(x.length, y.length)
  for (let i = 0; i < n; i++) {
    if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1
  }
  return x.length === y.length ? 0 : x.length < y.length ? -1 : 1
}

/** Whether `key` starts with `prefix`. */
export const hasPrefix = (key: string, prefix: string): boolean => key.startsWith(prefix)
