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
 * event's timestamp is its writer's decision time, and an append is sent
 * within W of it), so compaction cannot free its successor's sort key before
 * c − W + settle. A decides by c + M and sends its append by c + M + W.
 *
 * The client's timeout bounds how long the writer waits, not when a request
 * already on the wire is applied: a request delayed in the network can still
 * reach DynamoDB after the writer gave up. AWS refuses a SigV4 request whose
 * signature is more than five minutes old ({@link signatureValidityMillis}),
 * and the SDK signs each attempt as it sends it, so an append lands by
 * c + M + W + 5 min. So `settleMillis` > M + 2W + 5 min, plus the clock skew
 * between machines, keeps every stale append from landing in a freed seq (see
 * {@link isSafe}). A process frozen for longer than the margin between
 * deciding and sending (a paused VM) is the one case no time-based fence
 * covers; the defaults leave minutes. For it, a writer whose append is
 * acknowledged later than its write timeout checks where it landed
 * ({@link Landing}) and takes it back from a freed seq ({@link LateWriteUndone});
 * and the strict {@link WriteMode} checks each append's predecessor in the
 * same transaction, with no time assumption.
 */

import { Schema } from "effect"

/** The writer's side of the fence. */
export interface WriteFence {
  /** A cached state confirmed longer ago than this is read again before a write is decided on it. */
  readonly maxStateAgeMillis: number
  /** An append (or transaction) not answered within this fails, and the state it was decided on is dropped. */
  readonly writeTimeoutMillis: number
}

/**
 * How writers keep out of compaction's way. `fenced` (the default): single-item appends, safe by the time fence
 * above. `strict`: every append is a transaction that also checks the event it was decided after is still the
 * key's newest (see `EventTable.Predecessor`), with no time assumption, at about twice the write cost.
 */
export type WriteMode = "fenced" | "strict"

/** Writers' defaults: a key written at least every 30 s is decided from cache. */
export const defaultWriteFence: WriteFence = { maxStateAgeMillis: 30_000, writeTimeoutMillis: 30_000 }

/**
 * How long after it was signed AWS still applies a request: a SigV4 signature older than five minutes is refused
 * ("Signature expired"), so no append lands later than this after its writer sent it.
 */
export const signatureValidityMillis = 5 * 60_000

/** Clock skew between machines the defaults tolerate (NTP keeps real skew in milliseconds). */
export const toleratedSkewMillis = 60_000

/** What the fence allows for besides the writers' own bounds. */
export interface Margins {
  /** Clock skew between the machines of writers, workers and AWS. */
  readonly skewMillis: number
  /** How long after sending a request may still be applied ({@link signatureValidityMillis} on AWS). */
  readonly lateDeliveryMillis: number
}

/** Margins for AWS: {@link toleratedSkewMillis} of skew, a request applied up to its signature's validity late. */
export const awsMargins: Margins = { skewMillis: toleratedSkewMillis, lateDeliveryMillis: signatureValidityMillis }

/**
 * Margins for DynamoDB Local on the machine itself (an `embedded` or loopback endpoint): one clock, and no network
 * to hold a request back.
 */
export const localMargins: Margins = { skewMillis: 0, lateDeliveryMillis: 0 }

/** The least settle time that keeps writers bound by `fence` safe under `margins` (see {@link isSafe}). */
export const minimumSettleMillis = (fence: WriteFence, margins: Margins = awsMargins): number =>
  fence.maxStateAgeMillis + 2 * fence.writeTimeoutMillis + margins.lateDeliveryMillis + margins.skewMillis

/** Whether compaction waiting `settleMillis` is safe for writers bound by `fence`, under `margins`. */
export const isSafe = (settleMillis: number, fence: WriteFence, margins: Margins = awsMargins): boolean =>
  settleMillis > minimumSettleMillis(fence, margins)

/**
 * Compaction's default: an event moves ten minutes after it was superseded, beyond what writers with the
 * default fence need on AWS (30 s + 2 × 30 s + 5 min + 1 min = 7.5 min).
 */
export const defaultSettleMillis = 10 * 60_000

/** Whether an event with this timestamp has settled at `now`: what follows it may be compacted. */
export const hasSettled = (timestamp: number, now: number, settleMillis: number): boolean =>
  timestamp <= now - settleMillis

/**
 * An append acknowledged so late after its writer decided it that it landed in a seq compaction had freed: below
 * the key's newest event (or over a buried tombstone), where it would have brought back an old state. The writer
 * deleted it again, so the write did not take effect; deciding again on a fresh read is safe.
 */
export class LateWriteUndone extends Schema.TaggedError<LateWriteUndone>()("LateWriteUndone", {
  key: Schema.String,
  seq: Schema.Number,
  /** How long after its decision the append was acknowledged. */
  lateMillis: Schema.Number
}) {
  override get message() {
    return `the write of ${JSON.stringify(this.key)} did not take effect: acknowledged ${this.lateMillis} ms after ` +
      `it was decided, it had landed in seq ${this.seq}, which compaction had freed, and was undone`
  }
}

/**
 * Where an append acknowledged late stands: still the key's newest event, superseded by an event decided after it
 * (both fine), or in a freed seq (below a newer event decided before it, or at or under the key's buried
 * tombstone), where it must be undone.
 */
export type Landing = "Newest" | "Superseded" | "Freed"

/** Whether an append's acknowledgement came so late after its decision that where it landed must be checked. */
export const isLate = (fence: WriteFence, decidedAt: number, acknowledgedAt: number): boolean =>
  acknowledgedAt - decidedAt > fence.writeTimeoutMillis
