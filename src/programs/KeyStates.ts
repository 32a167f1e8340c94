/**
 * The newest event of every key under a prefix, deleted keys included: what
 * a projection is rebuilt from. A deleted key whose tombstone was buried has
 * no events in the live range, so reading the live range alone would never
 * tell a rebuilt view that the key is gone.
 */
import { Stream } from "effect"
import type { StorageFailure, Throttled } from "../domain/Errors.ts"
import * as Key from "../domain/Key.ts"
import type { EventTable, StoredItem } from "../infra/EventTable.ts"
import { newestPerKey, sortKeyRange } from "./Ranges.ts"

/**
 * Buried tombstones first, then the newest live event of each key, each group
 * in key order. A key deleted and then re-created appears twice, its tombstone
 * first: applied in this order, every key ends in its current state.
 */
export const newestEvents = (
  table: EventTable["Service"],
  prefix: string
): Stream.Stream<StoredItem, Throttled | StorageFailure> =>
  Stream.concat(
    table.graves(prefix),
    newestPerKey(table.scan(sortKeyRange({ start: prefix, end: Key.rangeEnd(prefix) })), false)
  )
