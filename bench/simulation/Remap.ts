/**
 * A what-if layout for the partition model: the requests of a run against one partition key, re-mapped as if a key
 * prefix were spread over N hash buckets, each its own partition-key value. A key under the prefix goes to bucket
 * hash(key) mod N (the store's own hash) in each partition it has items in (the live events, the history area, the
 * graves, the chunks of its large values); a range read over the prefix becomes one read per bucket. The bench runs
 * the partitioned store itself; this re-mapping of the one-partition trace is printed beside each partitioned run as
 * a cross-check of the model: where the two agree, the ceiling follows from how the keys hash, not from anything the
 * partitioned store adds.
 *
 * Re-mapping rules, and their approximations:
 * - A touch of one key moves whole to its bucket; touches the store does not file by key (data keys, leases, chunk
 *   reads by digest) stay where they were.
 * - A range read inside the prefix is split evenly over the N buckets, each at least the minimum a read costs (half a
 *   unit, one when strongly consistent): the items of a range hash evenly, but every bucket's `Query` is billed
 *   on its own. A range reaching beyond the prefix keeps a share on the original value too; a whole-partition read
 *   (no sort-key bounds) goes to every bucket and to the original value.
 */
import * as Key from "../../src/domain/Key.ts"
import * as Partitioning from "../../src/domain/Partitioning.ts"
import type { KeyRef, Touch, TracedRequest } from "./Touches.ts"

/** A prefix spread over hash buckets, in the partitions whose partition-key value `partitions` accepts. */
export interface Bucketing {
  readonly prefix: string
  readonly buckets: number
  /** The partition-key values that follow the layout (see {@link namespacePartitions}). */
  readonly partitions: (table: string, pk: string) => boolean
}

/** FNV-1a (32 bits) of a key's UTF-8 bytes: the store's own bucket hash, so a what-if bucket is the real one. */
export const hash = (key: string): number => Partitioning.hash(key)

/** The bucket of a key among `buckets`. */
export const bucketOf = (key: string, buckets: number): number => hash(key) % buckets

/** The partition-key value of bucket `bucket` of `pk` (a label: the model only compares them). */
export const bucketPartition = (pk: string, bucket: number): string => `${pk}#${bucket}`

/**
 * The partitions of a namespace that a partitioned layout would split, as issue 14 asks ("history, graves, … all
 * follow"): its live events, history, graves and the chunks of large values (each filed under its event's key).
 * Data keys are not filed by key and stay whole.
 */
export const namespacePartitions = (table: string, namespace: string) => (tableName: string, pk: string): boolean =>
  tableName === table &&
  (pk === namespace || ["history", "graves", "chunks"].some((suffix) => pk === `${namespace}\u0000${suffix}`))

/** Whether `bytes` starts with `prefix`. */
const startsWith = (bytes: Uint8Array, prefix: Uint8Array): boolean =>
  bytes.length >= prefix.length && Buffer.compare(bytes.subarray(0, prefix.length), prefix) === 0

/** How a range's sort-key bounds meet the prefix: not at all, wholly inside it, or partly. */
const overlap = (key: KeyRef & { readonly _tag: "Range" }, prefix: Uint8Array): "none" | "inside" | "partly" => {
  const below = Buffer.compare(key.upper, prefix) < 0
  const above = Buffer.compare(key.lower, prefix) > 0 && !startsWith(key.lower, prefix)
  if (below || above) return "none"
  return startsWith(key.lower, prefix) && startsWith(key.upper, prefix) ? "inside" : "partly"
}

const fanOut = (touch: Touch, layout: Bucketing, keepOriginal: boolean): Array<Touch> => {
  const shares = layout.buckets + (keepOriginal ? 1 : 0)
  const floor = touch.kind === "read" ? (touch.consistent ? 1 : 0.5) : 0
  const units = Math.max(floor, touch.units / shares)
  const buckets = Array.from(
    { length: layout.buckets },
    (_, bucket): Touch => ({ ...touch, pk: bucketPartition(touch.pk, bucket), units })
  )
  return keepOriginal ? [...buckets, { ...touch, units }] : buckets
}

/** One touch under the layout. */
export const remapTouch = (touch: Touch, layout: Bucketing): Array<Touch> => {
  if (!layout.partitions(touch.table, touch.pk)) return [touch]
  const prefix = Key.toBytes(layout.prefix)
  switch (touch.key._tag) {
    case "Key":
      return touch.key.key.startsWith(layout.prefix)
        ? [{ ...touch, pk: bucketPartition(touch.pk, bucketOf(touch.key.key, layout.buckets)) }]
        : [touch]
    case "Range": {
      const meets = overlap(touch.key, prefix)
      return meets === "none" ? [touch] : fanOut(touch, layout, meets === "partly")
    }
    case "All":
      return fanOut(touch, layout, true)
    case "None":
      return [touch]
  }
}

/** A trace under the layout. */
export const remap = (requests: ReadonlyArray<TracedRequest>, layout: Bucketing): Array<TracedRequest> => {
  if (!Number.isInteger(layout.buckets) || layout.buckets < 1) {
    throw new RangeError(`a bucketing needs a positive whole number of buckets, got ${layout.buckets}`)
  }
  return requests.map((request) => ({ ...request, touches: request.touches.flatMap((t) => remapTouch(t, layout)) }))
}
