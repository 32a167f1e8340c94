/**
 * The generators of the model test: keys, values, expiries, ranges, and the
 * symbolic picks (a live key, a known key, the latest or a seen revision)
 * that commands resolve against the model when they run.
 */
import fc from "fast-check"
import { compareUtf8, prefixEnd } from "./ReferenceModel.ts"
import type { ReferenceModel } from "./ReferenceModel.ts"

/** Key segments: prefixes of each other, 1- to 4-byte UTF-8, and U+FB00 whose UTF-16 order differs from its UTF-8 order against 𝄞. */
export const segments = ["a", "b", "ab", "é", "𝄞", "ﬀ"] as const

/**
 * Hierarchical keys over {@link segments}: every depth-1 key `/s`, and a few
 * depth-2 and depth-3 keys below them, so that keys collide often and many
 * are prefixes of others (`/a` < `/a/a` < `/a/é` < `/a/é/𝄞` < `/ab`).
 */
export const keyArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...segments).map((s) => `/${s}`) },
  { weight: 3, arbitrary: fc.constantFrom("/a/a", "/a/é", "/𝄞/ab", "/𝄞/ﬀ") },
  { weight: 1, arbitrary: fc.constantFrom("/a/é/𝄞", "/𝄞/ab/a") }
)

/**
 * The key a single-key command acts on: a fixed one, or, resolved when it
 * runs, the n-th live key or the n-th key ever written (live, deleted or
 * expired), or the fallback if there is none.
 */
export type KeyPick = { readonly _tag: "Key"; readonly key: string } | {
  readonly _tag: "Live" | "Known"
  readonly index: number
  readonly fallback: string
}

export const targetArb: fc.Arbitrary<KeyPick> = fc.oneof(
  { weight: 3, arbitrary: keyArb.map((key) => ({ _tag: "Key", key }) as const) },
  {
    weight: 2,
    arbitrary: fc.record({ index: fc.nat({ max: 99 }), fallback: keyArb }).map((r) => ({ _tag: "Live", ...r }) as const)
  },
  {
    weight: 2,
    arbitrary: fc.record({ index: fc.nat({ max: 99 }), fallback: keyArb }).map((r) =>
      ({ _tag: "Known", ...r }) as const
    )
  }
)
export const showKey = (pick: KeyPick) => (pick._tag === "Key" ? pick.key : `${pick._tag.toLowerCase()}#${pick.index}`)
export const resolveKey = (model: ReferenceModel, pick: KeyPick): string => {
  if (pick._tag === "Key") return pick.key
  const keys = pick._tag === "Live" ? model.liveKeys() : [...model.lastKnown.keys()].sort(compareUtf8)
  return keys.length === 0 ? pick.fallback : keys[pick.index % keys.length]!
}

/** Pseudo-random bytes from a seed (xorshift), so big values shrink by length and seed, not byte by byte. */
const patterned = (length: number, seed: number): Uint8Array => {
  const out = new Uint8Array(length)
  let state = seed | 1
  for (let i = 0; i < length; i++) {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    out[i] = state & 0xff
  }
  return out
}

/** Values of 0–2048 bytes, mostly tiny (so random compare values sometimes match). */
export const valueArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 2 }) },
  { weight: 2, arbitrary: fc.uint8Array({ minLength: 3, maxLength: 64 }) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 1024, max: 2048 }), fc.nat()).map(([length, seed]) => patterned(length, seed))
  }
)

/** An expiry relative to the clock when the command runs: none, or now-5 … now+50, often right at the clock (expired at `now`). */
export const expiryArb: fc.Arbitrary<number | undefined> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.integer({ min: -5, max: 5 }) },
  { weight: 1, arbitrary: fc.integer({ min: 6, max: 50 }) }
)

/** A revision to present: the key's latest (live or not), the empty one, or any seen earlier in the run. */
export type RevisionPick = { readonly _tag: "Latest" } | { readonly _tag: "Empty" } | {
  readonly _tag: "Seen"
  readonly index: number
}

export const revisionArb: fc.Arbitrary<RevisionPick> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ _tag: "Latest" } as const) },
  { weight: 1, arbitrary: fc.constant({ _tag: "Empty" } as const) },
  { weight: 2, arbitrary: fc.nat({ max: 1000 }).map((index) => ({ _tag: "Seen", index }) as const) }
)
export const showRevision = (
  pick: RevisionPick
) => (pick._tag === "Seen" ? `seen#${pick.index}` : pick._tag.toLowerCase())
export const bogusRevision = "00000000-0000-7000-8000-000000000000"
export const resolveRevision = (model: ReferenceModel, key: string, pick: RevisionPick): string =>
  pick._tag === "Empty"
    ? ""
    : pick._tag === "Latest"
    ? model.lastKnown.get(key)?.revision ?? bogusRevision
    : model.revisions[pick.index % Math.max(1, model.revisions.length)] ?? bogusRevision
export const shortRevision = (
  revision: string
) => (revision === "" ? "<empty>" : revision === bogusRevision ? "<never issued>" : revision.slice(-8))

/** An inclusive key range: two keys (in order, or not), one key, or a prefix. */
export interface RangeSpec {
  readonly start: string
  readonly end: string
}
export const rangeArb: fc.Arbitrary<RangeSpec> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.tuple(keyArb, keyArb).map((
      [a, b]
    ) => (compareUtf8(a, b) <= 0 ? { start: a, end: b } : { start: b, end: a }))
  },
  { weight: 1, arbitrary: fc.tuple(keyArb, keyArb).map(([start, end]) => ({ start, end })) },
  { weight: 1, arbitrary: keyArb.map((key) => ({ start: key, end: key })) },
  {
    weight: 3,
    arbitrary: fc.tuple(keyArb, fc.constantFrom("", "/")).map(([k, tail]) => ({
      start: k + tail,
      end: prefixEnd(k + tail)
    }))
  }
)
export const limitArb = fc.option(fc.nat({ max: 5 }), { nil: undefined, freq: 3 })
export const viaArb = fc.constantFrom(0, 1)
export const expiresAt = (
  model: ReferenceModel,
  expiry: number | undefined
) => (expiry === undefined ? undefined : model.now + expiry)
