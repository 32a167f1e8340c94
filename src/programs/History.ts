/**
 * Reading the past: a key's events from the history area and the live range,
 * decrypted, oldest first; and the item as it was at a revision or a time.
 */
import { Effect, Option, Stream } from "effect"
import { NotFound } from "../domain/Errors.ts"
import type { Event } from "../domain/Event.ts"
import { itemRevision, liveItem } from "../domain/Event.ts"
import type { Item } from "../domain/Item.ts"
import * as SortKey from "../domain/SortKey.ts"
import type { EventTable, ReadError, StoredItem } from "../infra/EventTable.ts"
import type { HistoryArea } from "../infra/HistoryArea.ts"

/** A point in a key's past: right after the event that made a revision, or a moment. */
export type PastPoint =
  | { readonly _tag: "Revision"; readonly revision: string }
  | { readonly _tag: "Time"; readonly millis: number }

/**
 * A key's events, oldest first, each once. The live range is read before the
 * history area: compaction copies an event to history before removing it from
 * the live range, so whichever moment it moves, one of the two reads has it.
 */
export const events = (
  table: EventTable["Service"],
  area: HistoryArea["Service"],
  key: string
): Stream.Stream<Event, ReadError> =>
  Stream.unwrap(Effect.gen(function*() {
    const live = yield* Stream.runCollect(
      table.scan({ lower: SortKey.lowerBound(key), upper: SortKey.upperBound(key), descending: true })
    )
    const archived = yield* Stream.runCollect(area.archived(key))
    const bySeq = new Map<number, StoredItem>()
    for (const stored of [...archived, ...live]) bySeq.set(stored.seq, stored)
    return Stream.fromIterable([...bySeq.values()].sort((a, b) => a.seq - b.seq)).pipe(
      Stream.mapEffect((stored) => table.decode(stored))
    )
  }))

/** The item a key held at a past point; `NotFound` if it was absent, deleted or expired then. */
export const itemAt = (
  table: EventTable["Service"],
  area: HistoryArea["Service"],
  key: string,
  at: PastPoint
): Effect.Effect<Item, NotFound | ReadError> =>
  Effect.gen(function*() {
    const past = events(table, area, key).pipe(
      at._tag === "Time"
        ? Stream.takeWhile((event) => event.timestamp <= at.millis)
        : Stream.takeUntil((event) => event.revision === at.revision || itemRevision(event) === at.revision)
    )
    const last = yield* Stream.runLast(past)
    if (Option.isNone(last)) return yield* new NotFound({ key })
    const event = last.value
    if (at._tag === "Revision" && event.revision !== at.revision && itemRevision(event) !== at.revision) {
      return yield* new NotFound({ key })
    }
    const item = liveItem(event, at._tag === "Time" ? at.millis : event.timestamp)
    return item ?? (yield* new NotFound({ key }))
  })
