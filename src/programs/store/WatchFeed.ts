/**
 * The order one stream reader keeps for its watchers, shared with this process's own writes: a write the
 * process acknowledged goes to its watchers at once, without waiting for the stream, when that cannot break its
 * key's order; its stream record then comes as a repeat and is dropped (see `Watch`).
 */
import type { Event } from "../../domain/Event.ts"
import * as KeyOrder from "../collections/KeyOrder.ts"
import type { Acknowledgement } from "./WriteAcks.ts"

/**
 * Each key's order (see `KeyOrder`), and which key's event the reader is handing on right now (between taking
 * its seq and delivering it, while it reads a gap or decrypts).
 */
export interface WatchFeed {
  readonly order: KeyOrder.KeyOrder
  readonly busy: Set<string>
  /**
   * Own writes delivered ahead of the stream whose records the reader has not met yet (key to seq): a position
   * names them besides its shard positions, so a watch resumed from it skips them (see `WatchPosition.keys`).
   */
  readonly ahead: Map<string, number>
}

/** A feed with nothing delivered yet. */
export const make = (): WatchFeed => ({ order: KeyOrder.make(), busy: new Set(), ahead: new Map() })

/** The keys a position names besides its shard positions, if any. */
export const aheadOf = (feed: WatchFeed): Readonly<Record<string, number>> | undefined =>
  feed.ahead.size === 0 ? undefined : Object.fromEntries(feed.ahead)

/** The reader met a record of `key` at `seq`: an own write of the key up to it is no longer ahead of the stream. */
export const met = (feed: WatchFeed, key: string, seq: number): void => {
  const ahead = feed.ahead.get(key)
  if (ahead !== undefined && ahead <= seq) feed.ahead.delete(key)
}

/**
 * Delivers the events of an acknowledged write whose key has nothing still on the way: its previous event was
 * delivered (or it has none, at seq 1) and the reader is not handing one of its events on. Any other own write
 * (another process wrote the key in between, or the key was not seen since the watch began, so an event before
 * it may yet come) is left to the stream, which fills gaps in order.
 */
export const deliverOwnWrites = (feed: WatchFeed, deliver: (event: Event) => void) => (ack: Acknowledgement) => {
  for (const event of ack.events) {
    const last = feed.order.last(event.key)
    const next = last === undefined ? event.seq === 1 : event.seq === last + 1
    if (!next || feed.busy.has(event.key)) continue
    feed.order.delivered(event.key, event.seq)
    feed.ahead.set(event.key, event.seq)
    deliver(event)
  }
}
