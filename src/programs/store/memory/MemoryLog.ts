/**
 * The state of an in-memory store: every key's events, oldest first (seq n at
 * index n - 1), the keys in the store's order, and one global log of appends
 * in the order they happened, whose positions watches resume from.
 * Synchronous and unsynchronised: the store serialises every access.
 */
import type { Event } from "../../../domain/Event.ts"
import * as Key from "../../../domain/Key.ts"
import * as KeyState from "../../../domain/KeyState.ts"

/** Where one appended event sits: its key and seq. */
export interface LogEntry {
  readonly key: string
  readonly seq: number
}

/** Every event of the store. Nothing is ever removed: there is no compaction in memory. */
export interface MemoryLog {
  readonly events: Map<string, Array<Event>>
  /** Every key ever written, in UTF-8 byte order (`Key.compare`), for range reads. */
  readonly sorted: Array<string>
  /** Appends in order; an event's position is its index here plus one. */
  readonly appended: Array<LogEntry>
}

/** An empty log. */
export const make = (): MemoryLog => ({ events: new Map(), sorted: [], appended: [] })

/** The state of a key: its newest event and seq. */
export const stateOf = (log: MemoryLog, key: string): KeyState.KeyState =>
  KeyState.fromLatest(key, log.events.get(key)?.at(-1))

/** Every event of a key, oldest first. */
export const eventsOf = (log: MemoryLog, key: string): ReadonlyArray<Event> => log.events.get(key) ?? []

/** The first index of `sorted` whose key is at or after `key` (or after it, when `after`). */
const search = (sorted: ReadonlyArray<string>, key: string, after: boolean): number => {
  let low = 0
  let high = sorted.length
  while (low < high) {
    const mid = (low + high) >>> 1
    const order = Key.compare(sorted[mid]!, key)
    if (order < 0 || (after && order === 0)) low = mid + 1
    else high = mid
  }
  return low
}

/**
 * Appends a key's next event and returns its position in the global log. The
 * event's seq must follow the key's newest: the store decides under its lock,
 * so a gap or a repeat is a bug, not a race.
 */
export const append = (log: MemoryLog, event: Event): number => {
  let events = log.events.get(event.key)
  if (events === undefined) {
    events = []
    log.events.set(event.key, events)
    log.sorted.splice(search(log.sorted, event.key, false), 0, event.key)
  }
  if (event.seq !== events.length + 1) {
    throw new Error(`MemoryLog: ${event.key} is at seq ${events.length}, cannot append seq ${event.seq}`)
  }
  events.push(event)
  return log.appended.push({ key: event.key, seq: event.seq })
}

/** Replaces a stored event in place (shredding its value); its key, seq and position stay. */
export const replace = (log: MemoryLog, event: Event): void => {
  const events = log.events.get(event.key)
  if (events === undefined || events[event.seq - 1] === undefined) {
    throw new Error(`MemoryLog: no event ${event.key}@${event.seq} to replace`)
  }
  events[event.seq - 1] = event
}

/** The event at a position of the global log (1-based). */
export const at = (log: MemoryLog, position: number): Event => {
  const entry = log.appended[position - 1]!
  return log.events.get(entry.key)![entry.seq - 1]!
}

/** The keys with `start <= key <= end` ever written, in the given direction. */
export const keysBetween = (log: MemoryLog, start: string, end: string, descending = false): ReadonlyArray<string> => {
  const keys = log.sorted.slice(search(log.sorted, start, false), search(log.sorted, end, true))
  return descending ? keys.reverse() : keys
}

const eventText = (event: Event): string =>
  JSON.stringify([
    event.key,
    event.seq,
    event.revision,
    event.op,
    event.value === undefined ? null : Buffer.from(event.value).toString("hex"),
    event.expires ?? null,
    event.timestamp,
    event.valueRevision ?? null,
    event.shredded?.scope ?? null
  ])

/** A canonical text of every stored event, to compare the whole state before and after an operation. */
export const snapshot = (log: MemoryLog): string =>
  log.sorted.flatMap((key) => eventsOf(log, key).map(eventText)).join("\n")
