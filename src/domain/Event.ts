/**
 * Events: the immutable records the store appends. The current state of a key
 * is its newest event; a key's events are numbered densely by `seq` from 1.
 */
import type { Item } from "./Item.ts"
import { isExpired } from "./Item.ts"

/** What an event did to its key. */
export type EventOp = "put" | "delete" | "expire" | "keep-alive"

/** All event operations, for validation of stored records. */
export const eventOps: ReadonlyArray<EventOp> = ["put", "delete", "expire", "keep-alive"]

/**
 * One appended event, with its value in plaintext (encryption happens at the
 * storage boundary). `revision` is the event's globally unique id.
 */
export interface Event {
  readonly key: string
  readonly seq: number
  readonly revision: string
  readonly op: EventOp
  readonly value?: Uint8Array | undefined
  readonly expires?: number | undefined
  readonly timestamp: number
  /**
   * For `keep-alive`: the revision of the value it keeps. A keep-alive only
   * extends an item, so the item keeps its revision and leases stay valid.
   */
  readonly valueRevision?: string | undefined
  /**
   * Set when the value was shredded (its data key destroyed): the event still
   * says what happened to the key, but the value is gone for good.
   */
  readonly shredded?: { readonly scope: string } | undefined
  /**
   * The key as its caller named it, when `key` is its sealed form (see `SealedKeys`): stored encrypted beside the
   * value, so it reads back wherever the value does.
   */
  readonly realKey?: string | undefined
}

/** An event the domain decided on, before the store numbers and names it. */
export interface EventDraft {
  readonly op: EventOp
  readonly value?: Uint8Array | undefined
  readonly expires?: number | undefined
  readonly valueRevision?: string | undefined
}

/** Whether the event leaves a value behind (as opposed to a tombstone). */
export const carriesValue = (event: Pick<Event, "op">): boolean => event.op === "put" || event.op === "keep-alive"

/** The revision of the item an event carries: its own, or for a keep-alive the kept value's. */
export const itemRevision = (event: Event): string => event.valueRevision ?? event.revision

/** The key a caller knows an event by: its real key when it is stored sealed. */
export const callerKey = (event: Event): string => event.realKey ?? event.key

/** An event as its caller knows it: under its real key, when it is stored sealed. */
export const reveal = (event: Event): Event => {
  if (event.realKey === undefined) return event
  const { realKey, ...rest } = event
  return { ...rest, key: realKey }
}

/** The item an event leaves behind at `now`, if it is live, under the key its caller knows it by. */
export const liveItem = (event: Event | undefined, now: number): Item | undefined => {
  if (event === undefined || !carriesValue(event) || event.value === undefined) return undefined
  if (isExpired(event.expires, now)) return undefined
  return { key: callerKey(event), value: event.value, expires: event.expires, revision: itemRevision(event) }
}

/**
 * The revision of the item an event leaves present at `now`, whether or not
 * its value can still be read (it may have been shredded); `undefined` when
 * the key is absent, deleted or expired. Write decisions go by this: a
 * shredded item still exists, so it can be deleted or overwritten.
 */
export const presentRevision = (event: Event | undefined, now: number): string | undefined =>
  event !== undefined && carriesValue(event) && (event.value !== undefined || event.shredded !== undefined) &&
    !isExpired(event.expires, now)
    ? itemRevision(event)
    : undefined

/** Whether the event carries a value that has expired by `now` and has no `expire` event yet. */
export const isDueForExpiry = (event: Event | undefined, now: number): boolean =>
  event !== undefined && carriesValue(event) && isExpired(event.expires, now)
