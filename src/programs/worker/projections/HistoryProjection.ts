/**
 * The history projection: compaction (see `Compaction`) run by the worker on
 * every event. What has not settled when an event is applied is scheduled
 * and compacted once it has. The schedule lives in memory, so the rebuild
 * (run when the worker starts, after a trimmed stream and after a takeover)
 * starts one pass over every key in the background, which schedules what it
 * finds unsettled; stream processing does not wait for it.
 *
 * It needs no per-key seq to stay correct when events arrive out of order,
 * twice or from two workers at once: compacting as of an older seq does a
 * part of what compacting as of a newer one does, every step is conditional
 * on the very event it read, and a grave never replaces a newer one.
 *
 * A key's live events are read once (a `Query`); from then on the events the
 * stream delivers in seq order are moved as delivered, with no read.
 */
import type { Fiber } from "effect"
import { Clock, Effect, Queue } from "effect"
import type { Event } from "../../../domain/Event.ts"
import { carriesValue } from "../../../domain/Event.ts"
import { defaultWriteFence, isSafe, minimumSettleMillis } from "../../../domain/WriteFence.ts"
import type { StoredEvent } from "../../../infra/EventRecord.ts"
import { EventTable } from "../../../infra/EventTable.ts"
import { HistoryArea } from "../../../infra/HistoryArea.ts"
import { storedSize } from "../../../infra/streams/StreamEvents.ts"
import * as MinHeap from "../../collections/MinHeap.ts"
import { compactAll, compactEvents, compactKeyRead, defaultCompactionOptions } from "../Compaction.ts"
import type { CompactionOptions, Pending } from "../Compaction.ts"
import * as Projection from "../Projection.ts"

export type { Retention } from "../../../domain/Retention.ts"

/**
 * How many bytes of stream-delivered events compaction keeps in memory to move them without reading them again
 * (events waiting to settle stay for the settle time: at 10 minutes, this holds about 30,000 1 KiB events).
 */
const knownBudgetBytes = 32 * 1024 * 1024

/** How long to wait before trying a key again after compaction failed on it. */
const retryMillis = 1000

/** The compaction projection; its timer and rebuild passes run in the caller's scope. */
export const make = (options: CompactionOptions = defaultCompactionOptions) =>
  Effect.gen(function*() {
    const area = yield* HistoryArea
    const table = yield* EventTable
    const fence = options.writerFence ?? defaultWriteFence
    if (!isSafe(options.settleMillis, fence)) {
      yield* Effect.logWarning(
        `compaction settles events for ${options.settleMillis} ms; writers deciding within ${fence.maxStateAgeMillis} ms ` +
          `with ${fence.writeTimeoutMillis} ms appends need more than ${minimumSettleMillis(fence)} ms on AWS: ` +
          "a writer deciding on a stale cached state could lose a write (see WriteFence)"
      )
    }
    // Per key, the newest event to compact as of; the heap orders turns by due time, one live turn per key.
    const waiting = new Map<string, { seq: number; tombstone: boolean; readonly dueAt: number }>()
    const turns = MinHeap.make((turn: { readonly key: string; readonly dueAt: number }) => turn.dueAt)
    const wake = yield* Queue.sliding<void>(1)

    const schedule = (pending: Pending) => {
      const known = waiting.get(pending.key)
      if (known !== undefined) {
        // Its turn comes first; whatever has not settled by then is scheduled again.
        if (pending.seq > known.seq) {
          known.seq = pending.seq
          known.tombstone = pending.tombstone
        }
        return
      }
      waiting.set(pending.key, { seq: pending.seq, tombstone: pending.tombstone, dueAt: pending.dueAt })
      turns.push({ key: pending.key, dueAt: pending.dueAt })
      Queue.offerUnsafe(wake, undefined)
    }

    /*
     * What the stream delivered of each key that is still live, so compaction moves events without reading them
     * again: per key, its live events up to the newest one seen (consecutive seqs, oldest first), with nothing older
     * live. A key is known once a read of its live range showed everything up to an event, or it was buried with
     * nothing older left; it stays known while its events arrive in seq order. Events that left the live range
     * by someone else's hand (another worker, `dynastate compact`) are moved again at worst, each step still
     * conditional on the very event. Least recently used keys go first past the byte budget.
     */
    const known = new Map<string, { events: Array<StoredEvent>; through: number; bytes: number }>()
    let knownBytes = 0
    const forget = (key: string) => {
      const entry = known.get(key)
      if (entry === undefined) return
      known.delete(key)
      knownBytes -= entry.bytes
    }
    const remember = (key: string, events: ReadonlyArray<StoredEvent>, through: number) => {
      forget(key)
      const entry = { events: [...events], through, bytes: 0 }
      for (const stored of events) entry.bytes += storedSize(stored)
      known.set(key, entry)
      knownBytes += entry.bytes
      trim()
    }
    const trim = () => {
      while (knownBytes > knownBudgetBytes && known.size > 0) forget(known.keys().next().value!)
    }
    /** The stream's next event of a key it knows: kept, if it follows what is known. */
    const learn = (key: string, stored: StoredEvent) => {
      const entry = known.get(key)
      if (entry === undefined || stored.seq !== entry.through + 1) return forget(key)
      known.delete(key) // re-inserted: least recently used first
      known.set(key, entry)
      entry.events.push(stored)
      entry.through = stored.seq
      const bytes = storedSize(stored)
      entry.bytes += bytes
      knownBytes += bytes
      trim()
    }
    /** Drops what left the live range: every known event up to `gone`. */
    const left = (key: string, gone: number) => {
      const entry = known.get(key)
      if (entry === undefined) return
      while (entry.events.length > 0 && entry.events[0]!.seq <= gone) {
        const bytes = storedSize(entry.events.shift()!)
        entry.bytes -= bytes
        knownBytes -= bytes
      }
    }

    const compactKnown = (key: string, seq: number, tombstone: boolean) =>
      Effect.gen(function*() {
        const entry = known.get(key)
        if (entry !== undefined && entry.through >= seq) {
          const events = entry.events.filter((stored) => stored.seq <= seq)
          const compacted = yield* compactEvents(area, key, events, seq, tombstone, options)
          if (compacted.gone === undefined) forget(key)
          else left(key, compacted.gone)
          return compacted.dueAt
        }
        forget(key)
        const compacted = yield* compactKeyRead(area, key, seq, tombstone, options)
        // The read showed every live event up to `seq`, this one included, or it was buried: known from here.
        if (compacted.gone === seq || compacted.read.at(-1)?.seq === seq) {
          remember(key, compacted.read.filter((stored) => stored.seq > (compacted.gone ?? 0)), seq)
        }
        return compacted.dueAt
      }).pipe(
        // What a failed step left is not known.
        Effect.tapError(() => Effect.sync(() => forget(key)))
      )

    // A failure (throttling, say) only delays a key: it never reaches the worker, which would quarantine it.
    const compact = (key: string, seq: number, tombstone: boolean) =>
      compactKnown(key, seq, tombstone).pipe(
        Effect.map((dueAt) => {
          if (dueAt !== undefined) schedule({ key, seq, tombstone, dueAt })
        }),
        Effect.catch((error) =>
          Effect.logWarning(`compaction of ${key} failed (${error._tag}); trying again shortly`).pipe(
            Effect.andThen(Clock.currentTimeMillis),
            Effect.map((now) => schedule({ key, seq, tombstone, dueAt: now + retryMillis }))
          )
        )
      )

    const timer = Effect.gen(function*() {
      while (true) {
        const next = turns.peek()
        if (next === undefined) {
          yield* Queue.take(wake)
          continue
        }
        const now = yield* Clock.currentTimeMillis
        if (next.dueAt > now) {
          yield* Effect.race(Queue.take(wake), Effect.sleep(next.dueAt - now))
          continue
        }
        turns.pop()
        const entry = waiting.get(next.key)
        if (entry === undefined || entry.dueAt !== next.dueAt) continue
        waiting.delete(next.key)
        yield* compact(next.key, entry.seq, entry.tombstone)
      }
    })
    yield* Effect.forkScoped(timer)

    const scope = yield* Effect.scope
    let pass: Fiber.Fiber<void> | undefined
    const rebuild = Effect.suspend(() => {
      if (pass !== undefined && pass.pollUnsafe() === undefined) return Effect.void
      // What the pass read of a key the stream has not told about yet is known from here.
      return compactAll(table, area, options, undefined, (key, seq, live) => {
        if (!known.has(key)) remember(key, live, seq)
      }).pipe(
        Effect.map((done) => {
          for (const pending of done.pending) schedule(pending)
        }),
        Effect.catch((error) =>
          Effect.logWarning(`a compaction pass over every key failed (${error._tag}); the next rebuild tries again`)
        ),
        Effect.forkIn(scope),
        Effect.map((fiber) => {
          pass = fiber
        })
      )
    })

    return Projection.make({
      name: "history",
      prefixes: [],
      // It moves events as stored, by seqs and ops: a large value's chunks are not read for it.
      readsValues: false,
      apply: (event: Event, stored?: StoredEvent) =>
        Effect.suspend(() => {
          if (stored !== undefined && stored.seq === event.seq && stored.key === event.key) learn(event.key, stored)
          else forget(event.key)
          return compact(event.key, event.seq, !carriesValue(event))
        }),
      rebuild
    })
  })
