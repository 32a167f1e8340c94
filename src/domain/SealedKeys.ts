/**
 * Sealed key segments, as pure rules: which keys a sealed prefix covers, how a key splits into the part kept in
 * clear and the secret part stored as a keyed MAC, what the stored key looks like, and which sealed prefixes a
 * key range touches. The MAC itself is the infra's (`KeySealer`); nothing here needs a key or does I/O.
 *
 * A stored sealed key is `prefix ‖ U+0001 ‖ base64url(MAC)` followed, in `segment` mode, by the rest of the key
 * after the sealed segment (in clear). Every key under a sealed prefix is sealed, so the stored keys under it are
 * all of that form: none of them can be a user's key stored in clear.
 */
import { Result } from "effect"
import { BadParameter } from "./Errors.ts"
import * as Key from "./Key.ts"

/** A prefix whose next path segment (`segment`) or whole remainder (`rest`) is stored sealed. */
export interface SealedPrefix {
  /** A key prefix ending in `/`, such as `/tokens/`. */
  readonly prefix: string
  readonly seal: "segment" | "rest"
}

/** What a sealed part starts with in a stored key: a control character, so sealed parts sort together. */
export const marker = "\u0001"

/** Characters of a MAC in base64url without padding (HMAC-SHA256: 32 bytes). */
export const macChars = 43

const sealedPart = new RegExp(`^${marker}[A-Za-z0-9_-]{${macChars}}`)

/** Where a key is stored: as it is, already in its sealed form (a stored key handed back), or to be sealed. */
export type Placement =
  | { readonly _tag: "Clear" }
  | { readonly _tag: "Stored"; readonly sealed: SealedPrefix }
  | { readonly _tag: "Seal"; readonly sealed: SealedPrefix; readonly secret: string; readonly rest: string }

/**
 * Checks a configuration of sealed prefixes: each a valid key ending in `/`, without the marker, `segment` or
 * `rest`, and none inside another (a key would be sealed twice).
 */
export const validate = (
  prefixes: ReadonlyArray<SealedPrefix>,
  field = "sealed"
): Result.Result<ReadonlyArray<SealedPrefix>, BadParameter> => {
  for (const [index, entry] of prefixes.entries()) {
    const name = `${field}[${index}]`
    const valid = Key.validate(entry.prefix, `${name}.prefix`)
    if (Result.isFailure(valid)) return Result.fail(valid.failure)
    if (!entry.prefix.endsWith("/") || entry.prefix.includes(marker)) {
      return Result.fail(
        new BadParameter({ field: `${name}.prefix`, reason: "a sealed prefix must end in / and hold no U+0001" })
      )
    }
    if (entry.seal !== "segment" && entry.seal !== "rest") {
      return Result.fail(new BadParameter({ field: `${name}.seal`, reason: `seal must be "segment" or "rest"` }))
    }
    const inner = prefixes.findIndex((other, at) => at !== index && other.prefix.startsWith(entry.prefix))
    if (inner >= 0) {
      return Result.fail(
        new BadParameter({
          field: name,
          reason: `sealed prefixes must not nest: ${prefixes[inner]!.prefix} lies under ${entry.prefix}`
        })
      )
    }
  }
  return Result.succeed(prefixes)
}

/** The sealed prefix a key lies under, if any (the prefix itself is no key under it). */
export const coveringPrefix = (prefixes: ReadonlyArray<SealedPrefix>, key: string): SealedPrefix | undefined =>
  prefixes.find((entry) => key.length > entry.prefix.length && key.startsWith(entry.prefix))

/** How `key` is stored under `prefixes`. */
export const place = (prefixes: ReadonlyArray<SealedPrefix>, key: string): Placement => {
  const sealed = coveringPrefix(prefixes, key)
  if (sealed === undefined) return { _tag: "Clear" }
  const after = key.slice(sealed.prefix.length)
  if (isSealedPart(sealed, after)) return { _tag: "Stored", sealed }
  if (sealed.seal === "rest") return { _tag: "Seal", sealed, secret: after, rest: "" }
  const slash = after.indexOf("/")
  return slash < 0
    ? { _tag: "Seal", sealed, secret: after, rest: "" }
    : { _tag: "Seal", sealed, secret: after.slice(0, slash), rest: after.slice(slash) }
}

/** Whether the part of a key after its sealed prefix is a sealed part (a stored key, not a caller's). */
const isSealedPart = (sealed: SealedPrefix, after: string): boolean => {
  if (!sealedPart.test(after)) return false
  const tail = after.slice(1 + macChars)
  return sealed.seal === "rest" ? tail === "" : tail === "" || tail.startsWith("/")
}

/** The stored key of a key to seal, given its MAC in base64url. */
export const storedKey = (placement: Extract<Placement, { _tag: "Seal" }>, mac: string): string =>
  placement.sealed.prefix + marker + mac + placement.rest

/** The UTF-8 bytes of a key's stored form: the same for every MAC, so sizes are known before any key is derived. */
export const storedBytes = (prefixes: ReadonlyArray<SealedPrefix>, key: string): number => {
  const placement = place(prefixes, key)
  return placement._tag === "Seal"
    ? Key.toBytes(storedKey(placement, "A".repeat(macChars))).length
    : Key.toBytes(key).length
}

/**
 * The sealed prefixes whose keys a range `start..end` (inclusive) may hold: their stored keys are in MAC order,
 * so such a range reads the prefix whole and sorts it by the real keys.
 */
export const touchedBy = (
  prefixes: ReadonlyArray<SealedPrefix>,
  start: string,
  end: string
): ReadonlyArray<SealedPrefix> =>
  prefixes.filter((entry) =>
    Key.compare(end, entry.prefix) > 0 && (Key.compare(start, entry.prefix) <= 0 || start.startsWith(entry.prefix))
  )

/**
 * For a range inside one sealed segment (`segment` mode: both ends under `prefix/segment/`), the segment: the
 * range's stored keys are then the segment's sealed form followed by the clear rest, in the same order.
 */
export const sharedSegment = (
  prefixes: ReadonlyArray<SealedPrefix>,
  start: string,
  end: string
): Extract<Placement, { _tag: "Seal" }> | undefined => {
  const first = place(prefixes, start)
  const last = place(prefixes, end)
  if (first._tag !== "Seal" || last._tag !== "Seal" || first.sealed !== last.sealed) return undefined
  if (first.sealed.seal !== "segment" || first.secret !== last.secret) return undefined
  return first.rest.startsWith("/") && last.rest.startsWith("/") ? first : undefined
}

/**
 * Whether `start` ends in whole sealed segments (`segment` mode, `prefix/segment/…`): the keys it is a prefix of
 * are then exactly the stored keys starting with its stored form.
 */
export const wholeSegmentPrefix = (prefixes: ReadonlyArray<SealedPrefix>, start: string): boolean => {
  const placement = place(prefixes, start)
  return placement._tag === "Seal" && placement.sealed.seal === "segment" && placement.rest.startsWith("/")
}
