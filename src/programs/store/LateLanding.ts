/**
 * Late acknowledgements (see `WriteFence`): a write acknowledged later than the write timeout after its decision
 * may have been held up (a frozen process, a slow network) while compaction freed a seq it appended to. Single-key
 * appends and atomic writes check where such a write landed the same way, here.
 */
import { Clock, Effect } from "effect"
import type { Event } from "../../domain/Event.ts"
import { isLate, LateWriteUndone } from "../../domain/WriteFence.ts"
import type { WriteFence } from "../../domain/WriteFence.ts"
import type { EventTable } from "../../infra/EventTable.ts"

/**
 * Confirms where the events of one write decided at `decidedAt` landed, if they were acknowledged late. If any
 * landed in a freed seq, every one of them not yet followed by a newer event is deleted again (an event already
 * built on stays), so none takes effect, and the write fails with `LateWriteUndone`.
 */
export const confirm = (
  table: EventTable["Service"],
  fence: WriteFence,
  events: ReadonlyArray<Event>,
  decidedAt: number
) =>
  // Nearly every write is on time: only a late one runs the generator below, and the clock is read in place.
  Clock.clockWith((clock) => confirmAt(table, fence, events, decidedAt, clock.currentTimeMillisUnsafe()) ?? Effect.void)

/**
 * {@link confirm} at a known time of acknowledgement: nothing (undefined) for a write on time, so a caller that has
 * the clock at hand runs no effect for it; for a late one, the check that undoes it if it landed on a freed seq.
 */
export const confirmAt = (
  table: EventTable["Service"],
  fence: WriteFence,
  events: ReadonlyArray<Event>,
  decidedAt: number,
  acknowledgedAt: number
) => isLate(fence, decidedAt, acknowledgedAt) ? undoIfFreed(table, events, decidedAt, acknowledgedAt) : undefined

const undoIfFreed = (
  table: EventTable["Service"],
  events: ReadonlyArray<Event>,
  decidedAt: number,
  acknowledgedAt: number
) =>
  Effect.gen(function*() {
    const landings = yield* Effect.forEach(events, (event) => table.landing(event), { concurrency: 16 })
    const freed = events.find((_, index) => landings[index] === "Freed")
    if (freed === undefined) return
    yield* Effect.forEach(
      events.filter((_, index) => landings[index] !== "Superseded"),
      (event) => table.undo(event),
      { concurrency: 16, discard: true }
    )
    return yield* new LateWriteUndone({ key: freed.key, seq: freed.seq, lateMillis: acknowledgedAt - decidedAt })
  })
