/**
 * Graves: what is left of a deleted key once its tombstone leaves the live
 * range. One small item per key in a partition of its own
 * (`<namespace>\0graves`), holding a copy of the tombstone's attributes.
 *
 * A key whose live range is empty is absent; its grave says which seq its
 * next event must take, so a re-created key continues its numbering and
 * every consumer's per-key "last applied seq" stays right. A tombstone holds
 * no value, so the grave holds nothing secret.
 */
import * as SortKey from "../domain/SortKey.ts"
import type { AttributeMap } from "./Dynamo.ts"
import { Attr } from "./EventRecord.ts"
import type { Location } from "./EventRecord.ts"

/** The attribute holding the buried tombstone's own sort key. */
export const tombstoneSortAttr = "tsk"

/** The partition holding a namespace's graves. NUL never occurs in a namespace. */
export const gravePartition = (location: Location): string => `${location.namespace}\u0000graves`

/** The primary key of a key's grave (there is at most one: a newer burial replaces it). */
export const graveKey = (location: Location, key: string): AttributeMap => ({
  [Attr.partition]: { S: gravePartition(location) },
  [Attr.sort]: { B: SortKey.keyPrefix(key) }
})

/** The grave of a live tombstone item. */
export const fromTombstone = (location: Location, key: string, tombstone: AttributeMap): AttributeMap => ({
  ...tombstone,
  ...graveKey(location, key),
  [tombstoneSortAttr]: tombstone[Attr.sort]!
})

/** The tombstone item a grave was made from, as it stood in the live range (so it decodes as that event). */
export const toTombstone = (location: Location, grave: AttributeMap): AttributeMap => {
  const { [tombstoneSortAttr]: sortKey, ...rest } = grave
  return { ...rest, [Attr.partition]: { S: location.namespace }, [Attr.sort]: sortKey ?? { B: new Uint8Array() } }
}
