/**
 * Graves: what is left of a deleted key once its tombstone leaves the live
 * range. One small item per key in a partition of its own
 * (`<namespace>\0graves`), holding a copy of the tombstone's attributes.
 *
 * A key whose live range is empty is absent; its grave says which seq its
 * next event must take, so a re-created key continues its numbering and
 * every consumer's per-key "last applied seq" stays right. A tombstone holds
 * no value (only its authentication, an encrypted empty value), so the grave holds nothing secret.
 */
import { GetItemCommand } from "@aws-sdk/client-dynamodb"
import { Effect, Result } from "effect"
import * as SortKey from "../domain/SortKey.ts"
import type { AttributeMap, Dynamo } from "./Dynamo.ts"
import { Attr, attributesOf, peek } from "./EventRecord.ts"
import type { Location, StoredEvent, StoredItem } from "./EventRecord.ts"
import { areaPartition, keyArea, liveOfArea } from "./PartitionKeys.ts"

/** The attribute holding the buried tombstone's own sort key. */
export const tombstoneSortAttr = "tsk"

/**
 * The partition holding the graves of a namespace's default partition; each partition of a partitioned key space
 * has its own beside it (see `PartitionKeys`). NUL never occurs in a namespace.
 */
export const gravePartition = (location: Location): string => areaPartition(location.namespace, "graves")

/** The primary key of a key's grave (there is at most one: a newer burial replaces it), in its partition's graves. */
export const graveKey = (location: Location, key: string): AttributeMap => ({
  [Attr.partition]: { S: keyArea(location, key, "graves") },
  [Attr.sort]: { B: SortKey.keyPrefix(key) }
})

/** Reads a key's grave (consistently), if it has one: the one read of a grave by key. */
export const read = (dynamo: Dynamo["Service"], location: Location, key: string) =>
  Effect.map(
    dynamo.call("GetItem", (client, abortSignal) =>
      client.send(
        new GetItemCommand({ TableName: location.table, Key: graveKey(location, key), ConsistentRead: true }),
        { abortSignal }
      )),
    (output): AttributeMap | undefined => output.Item
  )

/** The grave of a live tombstone item, beside the live partition the tombstone is in (read from the item itself). */
export const fromTombstone = (location: Location, key: string, tombstone: StoredItem): AttributeMap => {
  const attributes = attributesOf(tombstone)
  const live = attributes[Attr.partition]?.S ?? location.namespace
  return {
    ...attributes,
    [Attr.partition]: { S: areaPartition(live, "graves") },
    [Attr.sort]: { B: SortKey.keyPrefix(key) },
    [tombstoneSortAttr]: attributes[Attr.sort]!
  }
}

/** The tombstone item a grave was made from, as it stood in the live range (so it decodes as that event). */
export const toTombstone = (location: Location, grave: AttributeMap): AttributeMap => {
  const { [tombstoneSortAttr]: sortKey, ...rest } = grave
  const live = liveOfArea(grave[Attr.partition]?.S ?? "", "graves") ?? location.namespace
  return { ...rest, [Attr.partition]: { S: live }, [Attr.sort]: sortKey ?? { B: new Uint8Array() } }
}

/**
 * The tombstone a grave holds, as the event it was in the live range; a failure says how the grave is
 * corrupt (no tombstone sort key, filed under another key, or holding anything but a tombstone).
 */
export const buriedTombstone = (location: Location, grave: AttributeMap): Result.Result<StoredEvent, string> => {
  const parsed = peek(toTombstone(location, grave))
  if (Result.isFailure(parsed)) return Result.fail("a grave has no tombstone sort key")
  const tombstone = parsed.success
  if (Buffer.compare(SortKey.keyPrefix(tombstone.key), grave[Attr.sort]?.B ?? new Uint8Array()) !== 0) {
    return Result.fail(`the grave of ${tombstone.key} is filed under another key`)
  }
  return tombstone.op === "delete" || tombstone.op === "expire"
    ? Result.succeed(tombstone)
    : Result.fail(`the grave of ${tombstone.key} does not hold a tombstone`)
}
