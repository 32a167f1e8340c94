/**
 * Partitioned key spaces, as pure rules: which partition of a namespace a stored key lives in, which partitions a
 * sort-key range touches, and which layouts are sound. DynamoDB serves one partition-key value from partitions
 * capped at about 1,000 write and 3,000 read units a second; a prefix given its own partition, or spread over
 * hash buckets, takes its load off the namespace's one value. The partition keys themselves are the infra's
 * (`PartitionKeys`); here a partition is named by a suffix: `""` for the namespace's default partition, `name` for a
 * prefix's own partition, `name.b` for bucket `b` of a bucketed one.
 *
 * Routing works on stored keys (after sealing, see `SealedKeys`): every process of a namespace must route alike,
 * which the layout record in the table makes sure of (see `LayoutRecord`).
 */
import { Result } from "effect"
import * as Key from "./Key.ts"
import type { SealedPrefix } from "./SealedKeys.ts"

/** A key prefix with a partition of its own, or spread over `buckets` hash buckets. */
export interface PartitionedPrefix {
  /** Every stored key starting with it (the prefix itself included) lives in this prefix's partitions. */
  readonly prefix: string
  /** Names the partition keys: 1-40 of A-Z a-z 0-9 _ -, unique within a layout. */
  readonly name: string
  /** Hash buckets, 1 (the default: one partition of its own) to {@link maxBuckets}. */
  readonly buckets?: number | undefined
}

/** A namespace's layout: its partitioned prefixes (none: everything in the one default partition, as ever). */
export type Layout = ReadonlyArray<PartitionedPrefix>

/**
 * The most buckets one prefix may be spread over: a range over a bucketed prefix queries every bucket, so this
 * bounds a range read's fan-out (64 buckets carry about 64,000 write units a second).
 */
export const maxBuckets = 64

/** The suffix of the namespace's default partition, where every key outside a partitioned prefix lives. */
export const defaultPartition = ""

/** One thing wrong with a layout: where (`partitions[1].name`) and what. */
export interface LayoutProblem {
  readonly field: string
  readonly reason: string
}

const namePattern = /^[A-Za-z0-9_-]{1,40}$/

/**
 * Checks a layout, reporting every problem: each prefix a valid, non-empty key (no NUL), each name valid and
 * unique, buckets a whole number in 1..{@link maxBuckets}, and no prefix inside another (a key would have two
 * partitions).
 */
export const validate = (layout: Layout, field = "partitions"): Result.Result<Layout, ReadonlyArray<LayoutProblem>> => {
  const problems: Array<LayoutProblem> = []
  for (const [index, entry] of layout.entries()) {
    const at = `${field}[${index}]`
    const prefix = Key.validate(entry.prefix, `${at}.prefix`)
    if (Result.isFailure(prefix)) {
      problems.push({
        field: `${at}.prefix`,
        reason: `a partitioned prefix must be a valid key: ${prefix.failure.reason}`
      })
    }
    if (typeof entry.name !== "string" || !namePattern.test(entry.name)) {
      problems.push({ field: `${at}.name`, reason: "a partition name is 1-40 of A-Z a-z 0-9 _ - (no NUL, no dot)" })
    } else if (layout.findIndex((other) => other.name === entry.name) !== index) {
      problems.push({ field: `${at}.name`, reason: `the name ${entry.name} is used twice` })
    }
    const buckets = entry.buckets ?? 1
    if (!Number.isInteger(buckets) || buckets < 1 || buckets > maxBuckets) {
      problems.push({ field: `${at}.buckets`, reason: `buckets must be a whole number from 1 to ${maxBuckets}` })
    }
    if (Result.isFailure(prefix)) continue
    // Each pair once: a later entry equal to this one, or any other entry under it.
    const inner = layout.findIndex((other, position) =>
      typeof other.prefix === "string" && other.prefix.startsWith(entry.prefix) &&
      (other.prefix === entry.prefix ? position > index : position !== index)
    )
    if (inner >= 0) {
      const nested = layout[inner]!.prefix
      problems.push({
        field: at,
        reason: nested === entry.prefix
          ? `the prefix ${entry.prefix} is partitioned twice`
          : `partitioned prefixes must not nest: ${nested} lies under ${entry.prefix}`
      })
    }
  }
  return problems.length === 0 ? Result.succeed(layout) : Result.fail(problems)
}

/**
 * Checks a layout against the sealed prefixes it is used with: a partitioned prefix strictly inside a sealed one
 * would never receive a key (sealing stores the keys under it as `sealed ‖ U+0001 ‖ MAC`, outside the partitioned
 * prefix), so it is refused. A sealed prefix inside a partitioned one (or equal to it) is sound: its stored keys
 * still start with the partitioned prefix.
 */
export const checkSealed = (
  layout: Layout,
  sealed: ReadonlyArray<SealedPrefix>,
  field = "partitions"
): ReadonlyArray<LayoutProblem> =>
  layout.flatMap((entry, index) => {
    const outer = sealed.find((seal) =>
      entry.prefix.length > seal.prefix.length && entry.prefix.startsWith(seal.prefix)
    )
    return outer === undefined ? [] : [{
      field: `${field}[${index}].prefix`,
      reason: `the partitioned prefix ${entry.prefix} lies inside the sealed prefix ${outer.prefix}: its keys are ` +
        `stored sealed, outside it; partition ${outer.prefix} (or a prefix around it) instead`
    }]
  })

/** The layout in a canonical order (by prefix) with buckets spelled out: what the layout record compares. */
export const canonical = (layout: Layout): Layout =>
  [...layout]
    .map((entry) => ({ prefix: entry.prefix, name: entry.name, buckets: entry.buckets ?? 1 }))
    .sort((a, b) => Key.compare(a.prefix, b.prefix))

/** Whether two layouts route every key alike. */
export const same = (a: Layout, b: Layout): boolean => describe(a) === describe(b)

/** A layout in words, for errors and logs: `/nodes/ → nodes, /sessions/ → sessions (8 buckets)`; `none`. */
export const describe = (layout: Layout): string =>
  layout.length === 0 ? "none (one partition)" : canonical(layout)
    .map((entry) => `${entry.prefix} → ${entry.name}${entry.buckets === 1 ? "" : ` (${entry.buckets} buckets)`}`)
    .join(", ")

/** The partitioned prefix a stored key lies under, if any. */
export const coveringEntry = (layout: Layout, storedKey: string): PartitionedPrefix | undefined =>
  layout.find((entry) => storedKey.startsWith(entry.prefix))

/** A stable 32-bit hash of a stored key (FNV-1a over its UTF-8 bytes): the same in every process and version. */
export const hash = (storedKey: string): number => {
  let state = 0x811c9dc5
  for (const byte of Key.toBytes(storedKey)) {
    state ^= byte
    state = Math.imul(state, 0x01000193) >>> 0
  }
  return state
}

/** The partition suffix of bucket `bucket` of an entry (its own partition when it has one bucket). */
const suffixOf = (entry: PartitionedPrefix, bucket: number): string =>
  (entry.buckets ?? 1) === 1 ? entry.name : `${entry.name}.${bucket}`

/** Every partition suffix of an entry. */
export const entryPartitions = (entry: PartitionedPrefix): ReadonlyArray<string> =>
  Array.from({ length: entry.buckets ?? 1 }, (_, bucket) => suffixOf(entry, bucket))

/** The partition a stored key lives in: its prefix's (a bucket by its hash), or the default one. */
export const partitionOf = (layout: Layout, storedKey: string): string => {
  if (layout.length === 0) return defaultPartition
  const entry = coveringEntry(layout, storedKey)
  if (entry === undefined) return defaultPartition
  const buckets = entry.buckets ?? 1
  return suffixOf(entry, buckets === 1 ? 0 : hash(storedKey) % buckets)
}

/** Every partition of a layout, the default one first. */
export const allPartitions = (layout: Layout): ReadonlyArray<string> => [
  defaultPartition,
  ...layout.flatMap(entryPartitions)
]

const compareBytes = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b)

/** The sort-key span of a prefix's keys: from the prefix's bytes to the prefix followed by 0xFF (never in UTF-8). */
const spanOf = (prefix: string): { readonly lower: Uint8Array; readonly upper: Uint8Array } => {
  const bytes = Key.toBytes(prefix)
  const upper = new Uint8Array(bytes.length + 1)
  upper.set(bytes, 0)
  upper[bytes.length] = 0xff
  return { lower: bytes, upper }
}

/** Bytes after the key in an event sort key: a 0x00 separator, then the inverted seq (see `SortKey`). */
const suffixBytes = Key.sortKeySuffixBytes

/**
 * The one key a sort-key range holds events (or the grave, filed under `key ‖ 0x00`) of, when both bounds name the
 * same key: a get, a key's history, compaction's read of a key. Keys hold no NUL, so no other key's sort keys lie
 * between. Such a range goes to the key's own bucket alone, not to every bucket of its prefix.
 */
const singleKeyOf = (range: { readonly lower: Uint8Array; readonly upper: Uint8Array }): string | undefined => {
  const { lower, upper } = range
  // A grave's sort key: the key (no NUL in it, unlike an event's sort key) and one 0x00.
  const filed = lower.subarray(0, lower.length - 1)
  if (lower.length > 1 && lower[lower.length - 1] === 0 && !filed.includes(0) && compareBytes(lower, upper) === 0) {
    return Key.fromBytes(filed)
  }
  const split = lower.length - suffixBytes
  const sameKey = lower.length === upper.length && split > 0 && lower[split] === 0 && upper[split] === 0 &&
    compareBytes(lower.subarray(0, split), upper.subarray(0, split)) === 0
  return sameKey ? Key.fromBytes(lower.subarray(0, split)) : undefined
}

/**
 * The partitions a sort-key range (inclusive bounds) may hold events of: the key's own when it names one key; else
 * those of each partitioned prefix whose span it meets, and the default partition unless the range lies wholly
 * inside one prefix's span (keys hold no NUL, so a sort key inside a prefix's span is an event of a key under it).
 */
export const partitionsOfRange = (
  layout: Layout,
  range: { readonly lower: Uint8Array; readonly upper: Uint8Array }
): ReadonlyArray<string> => {
  if (layout.length === 0) return [defaultPartition]
  if (compareBytes(range.lower, range.upper) > 0) return []
  const single = singleKeyOf(range)
  if (single !== undefined) return [partitionOf(layout, single)]
  const touched: Array<string> = []
  let inside = false
  for (const entry of layout) {
    const span = spanOf(entry.prefix)
    if (compareBytes(range.lower, span.upper) > 0 || compareBytes(range.upper, span.lower) < 0) continue
    touched.push(...entryPartitions(entry))
    if (compareBytes(range.lower, span.lower) >= 0 && compareBytes(range.upper, span.upper) <= 0) inside = true
  }
  return inside ? touched : [defaultPartition, ...touched]
}
