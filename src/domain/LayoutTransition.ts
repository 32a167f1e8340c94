/**
 * Changing a namespace's layout (see `Partitioning`) while its stores serve, as pure rules: which keys a change of
 * layout moves, which ranges may hold keys on the move, and what a store configured with some layout may do against
 * what the namespace's layout record says (settled on a layout, or migrating from one layout to another).
 *
 * The record is the one authority: a migration is begun by the runner (`PartitionMigration`), never by a store
 * opening, so a process started with a mistyped layout is refused rather than moving keys.
 */
import * as Key from "./Key.ts"
import * as Partitioning from "./Partitioning.ts"
import type { Layout, PartitionedPrefix } from "./Partitioning.ts"

/** A change of layout: keys routed differently by `from` and `to` move from their old partition to their new one. */
export interface Transition {
  readonly from: Layout
  readonly to: Layout
}

/** What a namespace's layout record says: settled on `layout`, or (with `to`) migrating from it to `to`. */
export interface Recorded {
  readonly layout: Layout
  readonly to?: Layout | undefined
  /**
   * When the migration to `to` was recorded (epoch ms, the runner's clock; see `LayoutLease.movesFrom`); undefined
   * for one recorded before the record kept it.
   */
  readonly begin?: number | undefined
}

const sameEntry = (a: PartitionedPrefix, b: PartitionedPrefix): boolean =>
  a.prefix === b.prefix && a.name === b.name && (a.buckets ?? 1) === (b.buckets ?? 1)

/**
 * The prefixes whose keys may move: those of entries one layout has and the other has not (as they are). A key under
 * none of them is covered by the same entry in both layouts (or by none), so it stays where it is.
 */
export const changedPrefixes = (transition: Transition): ReadonlyArray<string> => {
  const only = (mine: Layout, theirs: Layout) =>
    mine.filter((entry) => !theirs.some((other) => sameEntry(entry, other))).map((entry) => entry.prefix)
  return [...new Set([...only(transition.from, transition.to), ...only(transition.to, transition.from)])]
    .sort(Key.compare)
}

/** Whether a stored key's partition differs between the two layouts: it moves. */
export const moves = (transition: Transition, storedKey: string): boolean =>
  Partitioning.partitionOf(transition.from, storedKey) !== Partitioning.partitionOf(transition.to, storedKey)

/**
 * Whether a sort-key range (inclusive bounds, as a query takes them) meets the span of a changed prefix, so it may
 * hold items of keys on the move.
 */
export const touches = (transition: Transition, lower: Uint8Array, upper: Uint8Array): boolean =>
  changedPrefixes(transition).some((prefix) => {
    const start = Key.toBytes(prefix)
    const end = new Uint8Array([...start, 0xff])
    return Buffer.compare(upper, start) >= 0 && Buffer.compare(lower, end) <= 0
  })

/** What a store configured with some layout does when it opens, given the record. */
export type Opening =
  /** Serve the configured layout as it is, recording it first when `record` (a namespace's first layout). */
  | { readonly _tag: "Settled"; readonly record: boolean }
  /**
   * Serve the configured layout while keys still move to it from `from` (see `Transition`), the migration recorded
   * at `begin` (see `Recorded`).
   */
  | { readonly _tag: "Migrating"; readonly from: Layout; readonly begin?: number | undefined }
  /** Refuse to open, saying why and what to do. */
  | { readonly _tag: "Refused"; readonly reason: string }

/**
 * What a store configured with `configured` may do against the record (undefined: none). `storedUnder` names a
 * prefix of `configured` under which the namespace already holds keys in its one partition (asked only when there
 * is no record and a layout is configured): those would vanish from reads, so a migration must move them first.
 */
export const opening = (
  recorded: Recorded | undefined,
  configured: Layout,
  storedUnder: string | undefined
): Opening => {
  const target = `[${Partitioning.describe(configured)}]`
  if (recorded === undefined) {
    if (configured.length === 0) return { _tag: "Settled", record: false }
    if (storedUnder === undefined) return { _tag: "Settled", record: true }
    return {
      _tag: "Refused",
      reason: `the namespace already holds keys under ${storedUnder} in its one partition: partitioning the ` +
        "prefix would hide them. They need a migration into the new layout first: run `dynastate partition-migrate` " +
        "with this layout"
    }
  }
  if (recorded.to === undefined) {
    if (Partitioning.same(recorded.layout, configured)) return { _tag: "Settled", record: false }
    return {
      _tag: "Refused",
      reason: `the namespace is laid out as [${Partitioning.describe(recorded.layout)}], but this store is ` +
        `configured with ${target}: every process of a namespace must route keys alike, or a key would fork across ` +
        "partitions. Configure the recorded layout; changing it needs a migration of the keys it moves (stop every " +
        "process with the old layout, then run `dynastate partition-migrate` with the new one)"
    }
  }
  if (Partitioning.same(recorded.to, configured)) {
    return { _tag: "Migrating", from: recorded.layout, begin: recorded.begin }
  }
  return {
    _tag: "Refused",
    reason: `the namespace is migrating from [${Partitioning.describe(recorded.layout)}] to ` +
      `[${Partitioning.describe(recorded.to)}], but this store is configured with ${target}: only stores with the ` +
      "new layout may serve it now (they move each key before writing it)"
  }
}

/** What the migration runner does first, given the record and the layout it migrates to. */
export type Beginning =
  /** Record the transition from `from` (when `record`: it is not recorded yet), then move the keys. */
  | { readonly _tag: "Begin"; readonly from: Layout; readonly record: boolean }
  /** Nothing to move: the record already settles on the target. */
  | { readonly _tag: "Settled" }
  /** Another migration is under way, to another layout. */
  | { readonly _tag: "Refused"; readonly reason: string }

/** How the runner starts a migration to `target` against the record (undefined: none, the one-partition layout). */
export const beginning = (recorded: Recorded | undefined, target: Layout): Beginning => {
  if (recorded === undefined) {
    return target.length === 0
      ? { _tag: "Settled" }
      : { _tag: "Begin", from: [], record: true }
  }
  if (recorded.to === undefined) {
    return Partitioning.same(recorded.layout, target)
      ? { _tag: "Settled" }
      : { _tag: "Begin", from: recorded.layout, record: true }
  }
  if (Partitioning.same(recorded.to, target)) return { _tag: "Begin", from: recorded.layout, record: false }
  return {
    _tag: "Refused",
    reason: `a migration to [${Partitioning.describe(recorded.to)}] is under way: finish it (run ` +
      "`dynastate partition-migrate` with that layout) before migrating to another"
  }
}
