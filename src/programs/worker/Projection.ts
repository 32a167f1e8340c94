/**
 * Projections: code that reacts to the store's events, run by the projection
 * worker (or the Lambda handler) in per-key order, at least once, and rebuilt
 * from the event table when needed (see `Rebuild.ts`).
 */
import { Schema } from "effect"
import type { Effect } from "effect"
import type { Event } from "../../domain/Event.ts"
import type { StoredEvent } from "../../infra/EventRecord.ts"

/** A named reaction to the events of some key prefixes. */
export interface Projection<E = unknown> {
  /** Unique among the projections of a worker (its per-key progress is kept by name). */
  readonly name: string
  /** Keys starting with any of these; every key when empty. */
  readonly prefixes: ReadonlyArray<string>
  /**
   * Applies one event. Within one worker process the events of a key arrive in seq order, and the worker skips
   * those at or below the last seq it applied for the key; across processes nothing orders them. A key's events
   * may come again after a restart or a takeover, and may come out of order or at the same time from two places:
   * a worker whose lease lapsed in a long batch still applying beside the shard's new owner (leases fence
   * checkpoints, not side effects), sibling shards of a split read by different workers, a rebuild beside the
   * stream. So a projection must:
   * - be idempotent per (key, seq): applying an event again changes nothing;
   * - keep the highest seq it applied per key and ignore events at or below it, deletions included: a deleted
   *   key's seq must outlive the key, or a late older put brings it back;
   * - make that check part of the write when its storage is shared (a condition on the stored seq, or on the
   *   very state it read, in the same request or transaction), since a read-then-write races with another apply
   *   of the same key and can leave state of both behind.
   * A custom {@link rebuild} must likewise not undo what applies beside it brought past its copy of the table.
   * The index and replicated views and the expiry projection keep per-key seqs (the last two in memory, bounded
   * for keys without a value or expiry); compaction needs none, each of its steps being conditional on the event
   * it read.
   *
   * `stored` is the event as the stream delivered it, when the worker has it (not in replays and rebuilds): its
   * item, still encrypted, which compaction moves without reading it from the table again.
   */
  readonly apply: (event: Event, stored?: StoredEvent) => Effect.Effect<void, E>
  /**
   * Whether {@link apply} reads `event.value`; true when left out. A projection that goes by the rest of the event
   * (key, seq, op, expiry, revisions) says `false`: its events then come without `value`, whatever its size, and
   * the chunks of a large value (see `ValueChunks`) are read only when a projection covering its key reads values.
   * Its event items are authenticated all the same (a large value's manifest is decrypted).
   */
  readonly readsValues?: boolean | undefined
  /**
   * Rebuilds the projection's state from the table, after data was missed (trimmed stream) or on first start.
   * Without it, `Rebuild.rebuild` replays every covered key's newest event through {@link apply}.
   */
  readonly rebuild?: Effect.Effect<void, E> | undefined
  /**
   * Clears the projection's state before a generic replay (`Rebuild.rebuild` of a projection with no
   * {@link rebuild}), so keys that no longer exist anywhere in the table leave it too. Optional: a replay
   * already carries every key's deletion as its newest event (a tombstone), so most projections need none.
   */
  readonly reset?: Effect.Effect<void, E> | undefined
}

/** Defines a projection. */
export const make = <E>(projection: Projection<E>): Projection<E> => projection

/** Whether a projection is interested in a key. */
export const covers = (projection: Projection<unknown>, key: string): boolean =>
  projection.prefixes.length === 0 || projection.prefixes.some((prefix) => key.startsWith(prefix))

/** Whether a projection reads the values of the events it is given (see {@link Projection.readsValues}). */
export const readsValues = (projection: Projection<unknown>): boolean => projection.readsValues !== false

/** Whether any of the projections covering a key reads values: only then are a large value's chunks read. */
export const valuesWanted = (projections: ReadonlyArray<Projection<unknown>>, key: string): boolean =>
  projections.some((projection) => readsValues(projection) && covers(projection, key))

/** An event as a projection is given it: without its value when the projection reads none. */
export const eventFor = (projection: Projection<unknown>, event: Event): Event =>
  readsValues(projection) || event.value === undefined ? event : { ...event, value: undefined }

/** Two projections of one worker share a name (their per-key progress would mix). */
export class DuplicateProjectionName extends Schema.TaggedError<DuplicateProjectionName>()("DuplicateProjectionName", {
  projection: Schema.String
}) {
  override get message() {
    return `two projections are named "${this.projection}"; projection names must be unique within a worker`
  }
}

/** The first name used by more than one of the projections, if any. */
export const duplicateName = (projections: ReadonlyArray<Projection<unknown>>): string | undefined => {
  const seen = new Set<string>()
  for (const projection of projections) {
    if (seen.has(projection.name)) return projection.name
    seen.add(projection.name)
  }
  return undefined
}
