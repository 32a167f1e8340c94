/**
 * Reading the past: a key's events from the history area and the live range,
 * decrypted, oldest first; and the item as it was at a revision or a time.
 */
import { Clock, Effect, Option, Stream } from "effect"
import { HistoryGap, NotFound } from "../../domain/Errors.ts"
import type { TableError } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import { itemRevision, liveItem } from "../../domain/Event.ts"
import type { Item } from "../../domain/Item.ts"
import * as SortKey from "../../domain/SortKey.ts"
import type { KeyringError } from "../../infra/crypto/Keyring.ts"
import type { DecodeOptions, EventTable, ReadError, StoredEvent } from "../../infra/EventTable.ts"
import type { HistoryArea } from "../../infra/HistoryArea.ts"

/** A point in a key's past: right after the event that made a revision, or a moment. */
export type PastPoint =
  | { readonly _tag: "Revision"; readonly revision: string }
  | { readonly _tag: "Time"; readonly millis: number }

/**
 * A key's stored events, oldest first, each once: the live range, the history
 * area (copies whose retention ran out are left out: DynamoDB's TTL deletes
 * late and in no order) and the key's grave. The live range is read first:
 * compaction copies an event to history (or buries a tombstone) before or as
 * it leaves the live range, so whichever moment it moves, a later read has it.
 */
const storedEvents = (
  table: EventTable["Service"],
  area: HistoryArea["Service"],
  key: string,
  before?: string | undefined
): Effect.Effect<ReadonlyArray<StoredEvent>, TableError> =>
  Effect.gen(function*() {
    // A key being relocated (see `Relocation`) has its events under its old stored key, its new one, or both while
    // it moves (the same seq and revision): the old one is read first, so whichever moment the move happens, the
    // new one read after it has what left.
    const earlier = before === undefined ? [] : yield* storedEvents(table, area, before)
    const live = yield* Stream.runCollect(
      table.scan({ lower: SortKey.lowerBound(key), upper: SortKey.upperBound(key), descending: true })
    )
    const now = yield* Clock.currentTimeMillis
    const archived = [...yield* Stream.runCollect(area.archived(key))].filter((stored) =>
      stored.retainedUntil === undefined || stored.retainedUntil > now
    )
    const prefix = SortKey.keyPrefix(key)
    const buried = yield* Stream.runCollect(table.graves(prefix, prefix))
    const bySeq = new Map<number, StoredEvent>()
    for (const stored of [...earlier, ...archived, ...buried, ...live]) bySeq.set(stored.seq, stored)
    return [...bySeq.values()].sort((a, b) => a.seq - b.seq)
  })

/** The first hole in a key's stored seqs, if any: compaction and retention only remove the oldest events. */
const firstGap = (key: string, stored: ReadonlyArray<StoredEvent>): HistoryGap | undefined => {
  for (let index = 1; index < stored.length; index++) {
    const after = stored[index - 1]!.seq
    const before = stored[index]!.seq
    if (before !== after + 1) return new HistoryGap({ key, after, before })
  }
  return undefined
}

/** A key's events, oldest first, each once, decrypted; `HistoryGap` if an event between two stored ones is gone. */
export const events = (
  table: EventTable["Service"],
  area: HistoryArea["Service"],
  key: string,
  /** The key's old stored key while it is relocated (see `Relocation`): its events are joined in by seq. */
  before?: string | undefined
): Stream.Stream<Event, ReadError | HistoryGap> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const stored = yield* storedEvents(table, area, key, before)
      const gap = firstGap(key, stored)
      if (gap !== undefined) return yield* gap
      return Stream.fromIterable(stored).pipe(Stream.mapEffect((item) => table.decode(item)))
    })
  )

/** Events of a key between two seqs, for filling a gap in what a stream delivered. */
export interface Between {
  /** The events found, in seq order; unreadable ones (shredded, failing to decrypt) are left out and listed. */
  readonly events: ReadonlyArray<Event>
  readonly unreadable: ReadonlyArray<{ readonly seq: number; readonly reason: string }>
  /** Whether every seq in between is still stored (retention may have removed some). */
  readonly complete: boolean
}

/**
 * The events of `key` after seq `after` and before seq `before`, decrypting only those (their large values' chunks
 * left unread with `readChunks: false`).
 */
export const eventsBetween = (
  table: EventTable["Service"],
  area: HistoryArea["Service"],
  key: string,
  after: number,
  before: number,
  options?: DecodeOptions
): Effect.Effect<Between, TableError | KeyringError> =>
  Effect.gen(function*() {
    const wanted = (yield* storedEvents(table, area, key)).filter((stored) => stored.seq > after && stored.seq < before)
    const found: Array<Event> = []
    const unreadable: Array<{ seq: number; reason: string }> = []
    for (const stored of wanted) {
      const decoded = yield* Effect.result(table.decode(stored, options))
      if (decoded._tag === "Success") found.push(decoded.success)
      else if (decoded.failure._tag === "Shredded" || decoded.failure._tag === "DecryptionFailed") {
        unreadable.push({ seq: stored.seq, reason: decoded.failure.message })
      } else return yield* Effect.fail(decoded.failure)
    }
    return { events: found, unreadable, complete: wanted.length === before - after - 1 }
  })

/** The item a key held at a past point; `NotFound` if it was absent, deleted or expired then. */
export const itemAt = (
  table: EventTable["Service"],
  area: HistoryArea["Service"],
  key: string,
  at: PastPoint,
  before?: string | undefined
): Effect.Effect<Item, NotFound | ReadError | HistoryGap> =>
  Effect.gen(function*() {
    const past = events(table, area, key, before).pipe(
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
