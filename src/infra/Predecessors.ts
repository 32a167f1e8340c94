/**
 * Strict writes' predecessor checks (see `WriteMode`): the transaction items that make an append land only if the
 * event it was decided after is still in place, each in the partition its key takes (see `PartitionKeys`).
 */
import type { TransactWriteItem } from "@aws-sdk/client-dynamodb"
import * as SortKey from "../domain/SortKey.ts"
import { Attr } from "./EventRecord.ts"
import type { Location } from "./EventRecord.ts"
import * as GraveRecord from "./GraveRecord.ts"
import * as HistoryRecord from "./HistoryRecord.ts"
import { keyPartition } from "./PartitionKeys.ts"

/** The attribute of a grave that a strict append after its tombstone sets (see `Predecessor`). */
const followedAttr = "fol"

/**
 * The event a write was decided after, for strict writes (see `WriteMode`): still the key's newest event in the
 * live range with this revision, still the tombstone in the key's grave (and not yet followed by a strict
 * append), or no event at all: no grave, and nothing at seq 1 in the history area (compaction moves a key's seq 1
 * there, or leaves a marker for it, before freeing it).
 */
export type Predecessor =
  | { readonly _tag: "None" }
  | { readonly _tag: "Live"; readonly seq: number; readonly revision: string }
  | { readonly _tag: "Buried"; readonly revision: string }

/** The transaction items at `location` that check (or, for a strict append after a grave, claim) a predecessor. */
export const items = (
  location: Location,
  key: string,
  after: Predecessor,
  follower: string | undefined
): ReadonlyArray<TransactWriteItem> => {
  const grave = { TableName: location.table, Key: GraveRecord.graveKey(location, key) }
  const absent = { ConditionExpression: "attribute_not_exists(#sk)", ExpressionAttributeNames: { "#sk": Attr.sort } }
  switch (after._tag) {
    case "None":
      // No grave, and no seq 1 moved to history: compaction frees a key's seq 1 without a grave, and a first
      // append delayed past that would land under the key's newer events, unseen.
      return [
        { ConditionCheck: { ...grave, ...absent } },
        {
          ConditionCheck: {
            TableName: location.table,
            Key: HistoryRecord.firstSeqKey(location, key),
            ...absent
          }
        }
      ]
    case "Live":
      return [{
        ConditionCheck: {
          TableName: location.table,
          Key: {
            [Attr.partition]: { S: keyPartition(location, key) },
            [Attr.sort]: { B: SortKey.encode(key, after.seq) }
          },
          ConditionExpression: "#rev = :rev",
          ExpressionAttributeNames: { "#rev": Attr.revision },
          ExpressionAttributeValues: { ":rev": { S: after.revision } }
        }
      }]
    case "Buried": {
      // The grave stays until the next burial, so the first strict append after it marks it followed: a writer
      // still deciding on the buried tombstone cannot then append into a seq freed after that append.
      const condition = {
        ConditionExpression: "#rev = :rev AND attribute_not_exists(#followed)",
        ExpressionAttributeNames: { "#rev": Attr.revision, "#followed": followedAttr },
        ExpressionAttributeValues: { ":rev": { S: after.revision } }
      }
      return [
        follower === undefined
          ? { ConditionCheck: { ...grave, ...condition } }
          : {
            Update: {
              ...grave,
              ...condition,
              UpdateExpression: "SET #followed = :follower",
              ExpressionAttributeValues: { ...condition.ExpressionAttributeValues, ":follower": { S: follower } }
            }
          }
      ]
    }
  }
}
