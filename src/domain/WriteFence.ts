/**
 * The write fence: how writers and compaction stay out of each other's way.
 *
 * An append is conditional on its sort key (key, seq) being free. Compaction
 * frees sort keys: it moves superseded events out of the live range and buries
 * tombstones. A writer acting on a stale idea of a key's newest seq N would
 * append N+1 — and if N+1 was written, superseded and moved meanwhile, the
 * condition passes and an acknowledged write lands below the key's newest
 * event, invisible (or, over a buried tombstone, a decision made on a value
 * that was deleted). DynamoDB cannot check a second item in a single-item
 * write, so the fence is in time instead:
 *
 * - a writer decides only from a state confirmed at most `maxStateAgeMillis`
 *   ago (read from the table, or its own append), and gives an append at most
 *   `writeTimeoutMillis` to complete;
 * - compaction moves event s only when event s+1 is at least `settleMillis`
 *   old, and buries a tombstone only when it is at least `settleMillis` old.
 *
 * Why that is enough: say writer A confirmed at time c that a key's newest
 * event is N−1. Whatever lands after c was decided no earlier than c − W (an
 * event's timestamp is its writer's decision time, and an append lands
 * within W of it), so compaction cannot free its successor's sort key before
 * c − W + settle. A decides by c + M and its append lands by c + M + W. So
 * `settleMillis` > M + 2W, plus the clock skew between machines, keeps every
 * stale append from landing in a freed seq (see {@link isSafe}). A process
 * frozen for longer than the margin between deciding and sending (a paused
 * VM) is the one case no time-based fence covers; the defaults leave minutes.
 */

/** The writer's side of the fence. */
export interface WriteFence {
  /** A cached state confirmed longer ago than this is read again before a write is decided on it. */
  readonly maxStateAgeMillis: number
  /** An append (or transaction) not answered within this fails, and the state it was decided on is dropped. */
  readonly writeTimeoutMillis: number
}

/** Writers' defaults: a key written at least every 30 s is decided from cache. */
export const defaultWriteFence: WriteFence = { maxStateAgeMillis: 30_000, writeTimeoutMillis: 30_000 }

/** Compaction's default: an event moves five minutes after it was superseded. */
export const defaultSettleMillis = 5 * 60_000

/** Clock skew between machines the defaults tolerate (NTP keeps real skew in milliseconds). */
export const toleratedSkewMillis = 60_000

/** Whether compaction waiting `settleMillis` is safe for writers bound by `fence`, given `skewMillis` of clock skew. */
export const isSafe = (settleMillis: number, fence: WriteFence, skewMillis: number = toleratedSkewMillis): boolean =>
  settleMillis > fence.maxStateAgeMillis + 2 * fence.writeTimeoutMillis + skewMillis

/** Whether an event with this timestamp has settled at `now`: what follows it may be compacted. */
export const hasSettled = (timestamp: number, now: number, settleMillis: number): boolean =>
  timestamp <= now - settleMillis
