/**
 * The layout lease: how a running store stays out of a layout migration's way, as pure rules.
 *
 * A store checks its partition layout against the namespace's layout record when it opens (see
 * `LayoutTransition.opening`), but a process keeps running: one serving layout A when a migration from A begins
 * would append a moved key's next event at its old partition (empty after the move, so the append's condition
 * passes) and fork it. So every store re-reads the record in the background (every third of its lease) and serves
 * an operation only while its layout was confirmed less than `leaseMillis` ago (a clock compare, no I/O):
 *
 * - a read that finds the record still allowing the store's layout renews the lease from the moment it was sent;
 * - a read that finds it no longer allowing it supersedes the store for good (`LayoutSuperseded`);
 * - failed reads renew nothing: once the lease lapses, operations fail until a read succeeds again.
 *
 * And the migration waits before it moves anything: say a stale process last confirmed its layout at c (its read
 * sent then, answered with the old record). That read was applied before the record's change, which was applied
 * at most `lateDeliveryMillis` after `begin` (the runner's clock when it sent the change; a signed request is
 * applied within its signature's validity or never), so c ≤ begin + lateDelivery + skew. The process sends its
 * last request before c + lease; the SDK's retries of it stop within the write timeout W (the writer gives up and
 * aborts); it is applied by then + lateDelivery. So no key moves before
 * `begin + lease + W + 2 × lateDelivery + skew` ({@link movesFrom}), and nothing of a stale process lands after.
 *
 * Sealing a prefix in place (see `SealMigration`) moves keys too, from their clear stored keys to their sealed ones:
 * the same record lists the sealed prefixes a sealing migration began on, with their begin, and a store configured
 * without one of them is superseded just the same ({@link missingSealed}); sealing moves nothing before the drain.
 */
import * as LayoutTransition from "./LayoutTransition.ts"
import type { Recorded } from "./LayoutTransition.ts"
import * as Partitioning from "./Partitioning.ts"
import type { Layout } from "./Partitioning.ts"
import { awsMargins, defaultWriteFence } from "./WriteFence.ts"
import type { Margins, WriteFence } from "./WriteFence.ts"

/** How long a store serves on one confirmation of its layout, and how long a migration waits for stale processes. */
export interface LayoutLease {
  /** An operation is served only while the layout was confirmed less than this long ago. */
  readonly leaseMillis: number
  /**
   * How long after a migration is recorded the first key may move (see {@link drainMillis}): the namespace's
   * processes' lease, write timeout and margins. Every process of a namespace must agree on it.
   */
  readonly drainMillis: number
}

/** The default lease: 30 s, as the write fence's `maxStateAgeMillis` (a process is at most that stale either way). */
export const defaultLeaseMillis = 30_000

/** How often a store re-reads the record: a third of its lease, so two reads in a row may fail before it lapses. */
export const refreshMillis = (leaseMillis: number): number => Math.max(1, Math.floor(leaseMillis / 3))

/** What a store knows of its layout's standing. */
export interface LeaseState {
  /** When the last read that found the layout allowed was sent (epoch ms, the store's clock). */
  readonly confirmedAt: number
  /** What the record says, once it no longer allows the store's layout (for good). */
  readonly superseded?: string | undefined
}

/** Whether a store may serve an operation now. */
export type Standing =
  | { readonly _tag: "Serving" }
  /** Not confirmed within the lease (reads of the record failed): retry once one succeeds. */
  | { readonly _tag: "Lapsed"; readonly sinceMillis: number }
  /** The record no longer allows the store's layout: restart with the recorded one. */
  | { readonly _tag: "Superseded"; readonly recorded: string }

/** The standing of a store at `now` (the hot path: a compare). */
export const standing = (state: LeaseState, now: number, leaseMillis: number): Standing =>
  state.superseded !== undefined
    ? { _tag: "Superseded", recorded: state.superseded }
    : now - state.confirmedAt < leaseMillis
    ? { _tag: "Serving" }
    : { _tag: "Lapsed", sinceMillis: now - state.confirmedAt }

/** The record, said for people: "laid out as [...]" or "migrating from [...] to [...]". */
export const describeRecord = (recorded: Recorded | undefined): string =>
  recorded === undefined
    ? "without a layout record"
    : recorded.to === undefined
    ? `laid out as [${Partitioning.describe(recorded.layout)}]`
    : `migrating from [${Partitioning.describe(recorded.layout)}] to [${Partitioning.describe(recorded.to)}]`

/**
 * Whether the record (read again while the store runs) still allows a store serving `configured`: exactly when a
 * store with that layout could open against it now (settled on it, or migrating to it), without recording
 * anything. A record that vanished allows only the store without a layout.
 */
export const allows = (recorded: Recorded | undefined, configured: Layout): boolean =>
  recorded === undefined
    ? configured.length === 0
    : LayoutTransition.opening(recorded, configured, undefined)._tag !== "Refused"

/**
 * The first of the sealed prefixes the record lists (`recorded`) that a store configured with the sealed prefixes
 * `configured` lacks: such a store would append to clear keys a sealing migration moves, so it must not serve.
 */
export const missingSealed = (
  recorded: ReadonlyArray<{ readonly prefix: string }>,
  configured: ReadonlyArray<{ readonly prefix: string }>
): string | undefined => recorded.find((entry) => !configured.some((mine) => mine.prefix === entry.prefix))?.prefix

/**
 * How long after the migration's `begin` (the runner's clock when it recorded the change) the first key may move:
 * every process serving the old layout has by then lost its lease, and everything it sent has landed (see the
 * module's comment). Every process of the namespace must use the same lease and write timeout.
 */
export const drainMillis = (
  leaseMillis: number,
  fence: Pick<WriteFence, "writeTimeoutMillis">,
  margins: Margins
): number => leaseMillis + fence.writeTimeoutMillis + 2 * margins.lateDeliveryMillis + margins.skewMillis

/** The lease of processes bound by `fence`, with `margins` (AWS's, or DynamoDB Local's on the machine itself). */
export const make = (
  leaseMillis: number,
  fence: Pick<WriteFence, "writeTimeoutMillis">,
  margins: Margins
): LayoutLease => ({
  leaseMillis,
  drainMillis: drainMillis(leaseMillis, fence, margins)
})

/** The default lease: 30 s, with the default write timeout, on AWS's margins (keys move 12 min after the record). */
export const defaultLease: LayoutLease = make(defaultLeaseMillis, defaultWriteFence, awsMargins)

/** The moment (epoch ms) from which keys may move, for a migration recorded at `begin` (see {@link drainMillis}). */
export const movesFrom = (begin: number, lease: LayoutLease): number => begin + lease.drainMillis
