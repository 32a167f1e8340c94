/**
 * Compaction: moves each key's superseded events out of the live range into
 * the history area, oldest first and never the newest value, so reads of
 * current state stay short however long a key's history grows. A deleted
 * key's tombstone leaves last, for the key's grave, once all its older events
 * are gone: at no moment can an older value show through, so a deleted key
 * never comes back, and the grave keeps its seq numbering going.
 *
 * Only settled events move: event s once event s+1 is `settleMillis` old, a
 * tombstone once it is itself that old. That is compaction's side of the write
 * fence (see `WriteFence`): a writer deciding on a state it confirmed recently
 * can never find a sort key freed under it.
 */
import { Clock, Context, Effect, Layer, Stream } from "effect"
import type { StorageFailure, TableError, Throttled } from "../../domain/Errors.ts"
import type { Retention } from "../../domain/Retention.ts"
import { defaultSettleMillis, hasSettled } from "../../domain/WriteFence.ts"
import type { WriteFence, WriteMode } from "../../domain/WriteFence.ts"
import type { StoredEvent } from "../../infra/EventRecord.ts"
import { EventTable } from "../../infra/EventTable.ts"
import { HistoryArea } from "../../infra/HistoryArea.ts"
import { freedMarkerMillis } from "../../infra/HistoryRecord.ts"
import * as NewestEvents from "../store/NewestEvents.ts"

/** How compaction keeps what it moves, and how long it lets events settle first. */
export interface CompactionOptions {
  readonly retention: Retention
  /** Must exceed every writer's fence plus late delivery and clock skew (`WriteFence.isSafe`). */
  readonly settleMillis: number
  /** The fence the table's writers decide within, which `settleMillis` is checked against at start. */
  readonly writerFence?: WriteFence | undefined
  /**
   * How the table's writers append. With history off, a freed seq 1 gets a marker only for `strict` writers (and
   * when unknown): a strict first append checks it, while a fenced one is covered by the fence and its landing check,
   * so `fenced` saves a write unit per key.
   */
  readonly writerMode?: WriteMode | undefined
}

/** Keep history forever; move events ten minutes after they were superseded (writers with the default fence). */
export const defaultCompactionOptions: CompactionOptions = {
  retention: { _tag: "Forever" },
  settleMillis: defaultSettleMillis
}

/** Whether a stored event is a tombstone, read from its clear `op` (a forged one fails when its grave is read). */
const isTombstone = (stored: StoredEvent): boolean => stored.op === "delete" || stored.op === "expire"

/** What compacting a key did. */
export interface Compacted {
  /** When to come back for what had not settled yet, if anything. */
  readonly dueAt: number | undefined
  /**
   * The highest seq that left the live range (moved, dropped or buried) in this call, 0 if none did; undefined when
   * what is live is no longer known (the tombstone was gone already: another compactor got there first).
   */
  readonly gone: number | undefined
}

/**
 * Compacts `key` as of its event `seq` (`tombstone` when that event is one), given the key's live events up to
 * `seq`, oldest first and consecutive, with nothing older live: as a `Query` of the live range returns them, or as
 * the stream delivered them to a worker that saw everything before them leave. The settled events before `seq`
 * move into the history area (or are dropped, with retention "None"), then the tombstone is buried if it has
 * settled too. Every step is conditional on the very event (its event id), so events that left meanwhile are not
 * moved twice.
 */
export const compactEvents = Effect.fnUntraced(function*(
  area: HistoryArea["Service"],
  key: string,
  events: ReadonlyArray<StoredEvent>,
  seq: number,
  tombstone: boolean,
  options: CompactionOptions
): Effect.fn.Return<Compacted, Throttled | StorageFailure> {
  const now = yield* Clock.currentTimeMillis
  const expiresAt = options.retention._tag === "For" ? Math.ceil((now + options.retention.millis) / 1000) : undefined
  let gone = 0
  for (const [index, stored] of events.entries()) {
    // What decides whether `stored` may go: itself for a tombstone at `seq`, else its successor (live: `seq` at the latest).
    const reference = stored.seq === seq ? stored : events[index + 1]
    if (reference === undefined || (stored.seq === seq && !tombstone)) return { dueAt: undefined, gone }
    // The clear timestamp: undefined when missing or malformed (such an item never decodes either).
    const timestamp = reference.timestamp
    if (timestamp === undefined) {
      yield* Effect.logWarning(
        `event ${reference.seq} of ${key} has no valid timestamp; it and what precedes it stay live`
      )
      return { dueAt: undefined, gone }
    }
    if (!hasSettled(timestamp, now, options.settleMillis)) return { dueAt: timestamp + options.settleMillis, gone }
    if (stored.seq === seq) {
      const buried = yield* area.bury(stored, options.retention._tag === "None" ? undefined : { expiresAt })
      return { dueAt: undefined, gone: buried ? seq : undefined }
    }
    if (options.retention._tag !== "None") yield* area.archive(stored, expiresAt)
    // No copy kept: a marker in its place, so a strict first append decided before the key existed stays refused.
    else if (stored.seq === 1 && options.writerMode !== "fenced") {
      yield* area.markFreed(key, Math.ceil((now + freedMarkerMillis) / 1000))
    }
    // Gone already is another compactor's doing, and what it did is what this one would. Another event in its seq
    // landed there late (see `WriteFence`): what is live is not what `events` says, and burying a tombstone over an
    // event still live would bring that event back, so the caller reads the key again and comes back at once.
    if ((yield* area.removeLive(stored)) === "replaced") return { dueAt: now, gone: undefined }
    gone = stored.seq
  }
  return { dueAt: undefined, gone }
})

/**
 * Compacts `key` as of its event `seq` (`tombstone` when that event is one), reading its live events up to `seq`
 * first (see {@link compactEvents}). Returns when to come back for what had not settled yet, if anything, and the
 * events that were read.
 */
export const compactKeyRead = Effect.fnUntraced(function*(
  area: HistoryArea["Service"],
  key: string,
  seq: number,
  tombstone: boolean,
  options: CompactionOptions
): Effect.fn.Return<Compacted & { readonly read: ReadonlyArray<StoredEvent> }, TableError> {
  // Oldest first; the live events of a key up to `seq` are consecutive.
  const read = [...yield* Stream.runCollect(area.upTo(key, seq))]
  const compacted = yield* compactEvents(area, key, read, seq, tombstone, options)
  return { ...compacted, read }
})

/**
 * Compacts `key` as of its event `seq` (`tombstone` when that event is one), reading its live events first.
 * Returns when to come back for what had not settled yet, if anything.
 */
export const compactKey = (
  area: HistoryArea["Service"],
  key: string,
  seq: number,
  tombstone: boolean,
  options: CompactionOptions
): Effect.Effect<number | undefined, TableError> =>
  Effect.map(compactKeyRead(area, key, seq, tombstone, options), (compacted) => compacted.dueAt)

/** A key compaction has to come back to, and when. */
export interface Pending {
  readonly key: string
  readonly seq: number
  readonly tombstone: boolean
  readonly dueAt: number
}

/** What a pass over every key did. */
export interface CompactionPass {
  /** Keys looked at (the live range's keys; buried ones are done). */
  readonly keys: number
  /** Keys with events not settled yet, to come back to. */
  readonly pending: ReadonlyArray<Pending>
}

/**
 * Every live event of the namespace, one key at a time, each key's events oldest first: one paged read of the live
 * range, in which a key's events are adjacent (newest first, so reversed).
 */
const liveKeys = (table: EventTable["Service"]) =>
  table.scan(NewestEvents.coveredRanges([])[0]!).pipe(
    Stream.groupAdjacentBy((stored) => stored.key),
    Stream.map(([key, events]) => ({ key, events: [...events].reverse() }))
  )

/**
 * Compacts every key of the namespace from one read of its live range (each key as of its newest event, from the
 * events that read returned, as {@link compactEvents} takes them), reporting `progress(done, total)` after each key
 * when asked to (the total takes a read of its own). `compacted` hears what each key kept live.
 */
export const compactAll = (
  table: EventTable["Service"],
  area: HistoryArea["Service"],
  options: CompactionOptions,
  progress: ((done: number, total: number) => Effect.Effect<void>) | undefined,
  compacted: (key: string, seq: number, live: ReadonlyArray<StoredEvent>) => void = () => {}
): Effect.Effect<CompactionPass, TableError> =>
  Effect.gen(function*() {
    const total = progress === undefined ? 0 : yield* Stream.runFold(liveKeys(table), () => 0, (count) => count + 1)
    let done = 0
    const pending: Array<Pending> = []
    yield* liveKeys(table).pipe(
      Stream.runForEach(({ events, key }) =>
        Effect.gen(function*() {
          const newest = events[events.length - 1]!
          const tombstone = isTombstone(newest)
          const outcome = yield* compactEvents(area, key, events, newest.seq, tombstone, options)
          if (outcome.dueAt !== undefined) pending.push({ key, seq: newest.seq, tombstone, dueAt: outcome.dueAt })
          if (outcome.gone !== undefined) {
            compacted(key, newest.seq, events.filter((stored) => stored.seq > outcome.gone!))
          }
          done++
          if (progress !== undefined) yield* progress(done, total)
        })
      )
    )
    return { keys: done, pending }
  })

/** Compaction of the whole namespace at once: the history projection's rebuild, and `dynastate compact`. */
export class Compaction extends Context.Service<Compaction, {
  /** Compacts all keys; `progress(done, total)` after each. */
  readonly all: (
    progress: (done: number, total: number) => Effect.Effect<void>,
    options?: Partial<CompactionOptions>
  ) => Effect.Effect<CompactionPass, TableError>
}>()("dynastate/Compaction") {
  static readonly layer: Layer.Layer<Compaction, never, EventTable | HistoryArea> = Layer.effect(
    Compaction,
    Effect.gen(function*() {
      const table = yield* EventTable
      const area = yield* HistoryArea
      return Compaction.of({
        all: (progress, options) => compactAll(table, area, { ...defaultCompactionOptions, ...options }, progress)
      })
    })
  )
}
