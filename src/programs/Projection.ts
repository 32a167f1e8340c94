/**
 * Projections: code that reacts to the store's events, run by the projection
 * worker (or the Lambda handler) in per-key order, at least once.
 */
import type { Effect } from "effect"
import type { Event } from "../domain/Event.ts"

/** A named reaction to the events of some key prefixes. */
export interface Projection<E = unknown> {
  readonly name: string
  /** Keys starting with any of these; every key when empty. */
  readonly prefixes: ReadonlyArray<string>
  /**
   * Applies one event. Events of a key arrive in seq order, at least once: the
   * worker skips those at or below the last seq it applied for the key in this
   * process, but after a restart a few may come again, so storage a projection
   * writes to should be idempotent per (key, seq).
   */
  readonly apply: (event: Event) => Effect.Effect<void, E>
  /** Rebuilds the projection's state from the table, after data was missed (trimmed stream) or on first start. */
  readonly rebuild?: Effect.Effect<void, E> | undefined
}

/** Defines a projection. */
export const make = <E>(projection: Projection<E>): Projection<E> => projection

/** Whether a projection is interested in a key. */
export const covers = (projection: Projection<unknown>, key: string): boolean =>
  projection.prefixes.length === 0 || projection.prefixes.some((prefix) => key.startsWith(prefix))
