/**
 * The state of one key as its actor knows it: the newest event and its seq.
 */
import type { Event } from "./Event.ts"

/** The newest known event of a key; `seq` 0 and no event for a key never written. */
export interface KeyState {
  readonly key: string
  readonly seq: number
  readonly latest: Event | undefined
}

/** The state of a key that has never been written. */
export const empty = (key: string): KeyState => ({ key, seq: 0, latest: undefined })

/** The state after an event; events older than the known one are ignored, so replays are harmless. */
export const evolve = (state: KeyState, event: Event): KeyState =>
  event.seq > state.seq ? { key: state.key, seq: event.seq, latest: event } : state

/** The state a key is in when this is its newest event. */
export const fromLatest = (key: string, latest: Event | undefined): KeyState =>
  latest === undefined ? empty(key) : { key, seq: latest.seq, latest }
