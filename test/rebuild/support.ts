/**
 * Helpers of the rebuild tests: an in-memory projection that keeps, per key,
 * the newest event it was given (guarded by seq, as `Projection.apply` asks),
 * and records every call, so tests can compare its state with the log.
 */
import { Effect } from "effect"
import { carriesValue } from "../../src/domain/Event.ts"
import type { Event } from "../../src/domain/Event.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"

const decoder = new TextDecoder()
export const bytes = (value: string): Uint8Array => new TextEncoder().encode(value)

/** The state a projection keeps for a key: the seq of the newest event applied and its value (undefined: deleted). */
export interface Entry {
  readonly seq: number
  readonly value: string | undefined
}

/** An in-memory projection of `prefixes`, with its state and a log of every call (apply, reset). */
export const memoryProjection = (name: string, prefixes: ReadonlyArray<string>) => {
  const state = new Map<string, Entry>()
  const calls: Array<string> = []
  const applied: Array<Event> = []
  const apply = (event: Event) =>
    Effect.sync(() => {
      calls.push(`apply ${event.key}@${event.seq}`)
      applied.push(event)
      const current = state.get(event.key)
      if (current !== undefined && current.seq >= event.seq) return
      state.set(event.key, {
        seq: event.seq,
        value: carriesValue(event) && event.value ? decoder.decode(event.value) : undefined
      })
    })
  const projection = Projection.make({ name, prefixes, apply })
  return { state, calls, applied, projection }
}

/** The entries of a state, sorted by key, for comparisons. */
export const entries = (state: ReadonlyMap<string, Entry>): Array<[string, Entry]> =>
  [...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
