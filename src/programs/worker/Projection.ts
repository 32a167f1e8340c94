/**
 * Projections: code that reacts to the store's events, run by the projection
 * worker (or the Lambda handler) in per-key order, at least once, and rebuilt
 * from the event table when needed (see `Rebuild.ts`).
 */
import { Schema } from "effect"
import type { Effect } from "effect"
import type { Event } from "../../domain/Event.ts"

/** A named reaction to the events of some key prefixes. */
export interface Projection<E = unknown> {
  /** Unique among the projections of a worker (its per-key progress is kept by name). */
  readonly name: string
  /** Keys starting with any of these; every key when empty. */
  readonly prefixes: ReadonlyArray<string>
  /**
   * Applies one event. Events of a key arrive in seq order, at least once: the
   * worker skips those at or below the last seq it applied for the key in this
   * process, but after a restart a few may come again, so storage a projection
   * writes to should be idempotent per (key, seq). A rebuild running beside a
   * worker may also hand a key's newest event after a later one of the worker:
   * keeping the highest seq applied per key, deletions included, and ignoring
   * events at or below it (as the index and replicated views do) makes both
   * safe. Forgetting a deleted key's seq would let a replayed older put bring
   * the key back.
   */
  readonly apply: (event: Event) => Effect.Effect<void, E>
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
