/**
 * The migration that changes a namespace's layout (see `Partitioning`, `LayoutTransition`) while its stores serve:
 * it records in the layout record that the namespace migrates from its layout to the event table's, moves every key
 * whose partition changes (see `Relocation`: its live events, history copies, grave, freed-seq marker and chunks,
 * keeping seqs, revisions, values and expiries), and once no old partition holds such a key, records the new layout
 * as settled. Stores configured with the new layout serve meanwhile, reading a moving key at both places and moving
 * it before writing it (see `MigratingTable`); stores configured with the old layout refuse to open from the moment
 * the migration is recorded. Stores already running with the old layout stop serving within their layout lease (see
 * `LayoutLease`), and the run moves nothing before they have lost it: `begin + drain` (12 min on AWS by default).
 *
 * Resumable: the record says a migration is under way, each key's move is idempotent and a pass looks for what is
 * left in the old partitions, so running it again after an interruption finishes the job.
 */
import { Clock, Effect, Result, Stream } from "effect"
import type { RelocationConflict, StorageFailure, TableError, Throttled } from "../../domain/Errors.ts"
import * as Key from "../../domain/Key.ts"
import * as LayoutLease from "../../domain/LayoutLease.ts"
import * as LayoutTransition from "../../domain/LayoutTransition.ts"
import type { Transition } from "../../domain/LayoutTransition.ts"
import type { Layout } from "../../domain/Partitioning.ts"
import * as SortKey from "../../domain/SortKey.ts"
import { ConfigInvalid } from "../../infra/config/ConfigInvalid.ts"
import { DataKeys } from "../../infra/crypto/DataKeys.ts"
import { Dynamo } from "../../infra/Dynamo.ts"
import { EventTable } from "../../infra/EventTable.ts"
import * as LayoutRecord from "../../infra/LayoutRecord.ts"
import * as Relocation from "../../infra/Relocation.ts"

/** Where a layout migration stands. */
export interface PartitionProgress {
  /** The layouts migrated from and to. */
  readonly transition: Transition
  /** Keys found in an old partition so far (a key found again by a later pass counts again). */
  readonly found: number
  /** Keys of those now in their new partition (moved by this run, by a writer, or before). */
  readonly moved: number
  /** Keys that could not be moved (see `RelocationConflict`, logged). */
  readonly failed: number
  /** Set on the last report: whether nothing is left in an old partition (the new layout is then settled). */
  readonly done?: boolean | undefined
  /**
   * Set on a first report when keys may not move yet: how long the run waits for processes with the old layout to
   * lose their layout lease (see `LayoutLease.movesFrom`).
   */
  readonly waitMillis?: number | undefined
}

/** How hard to migrate, and what the namespace's processes are bound by. */
export interface PartitionMigrationOptions {
  /** Keys moved at once (default 8). */
  readonly concurrency?: number | undefined
  /**
   * The layout lease of the namespace's processes (`storage.layout_lease` and `write_timeout`, on AWS's margins):
   * no key moves before they have lost it (`LayoutLease.defaultLease` by default: 12 min after the record).
   */
  readonly lease?: LayoutLease.LayoutLease | undefined
}

/**
 * How long from now until keys of the namespace's recorded migration may move: 0 when they may (or no migration
 * with a begin time is recorded), else the time processes with the old layout need to lose their layout lease.
 */
export const untilMoves = (
  options: Pick<PartitionMigrationOptions, "lease"> = {}
): Effect.Effect<number, ConfigInvalid | Throttled | StorageFailure, EventTable | Dynamo> =>
  Effect.gen(function*() {
    const table = yield* EventTable
    const recorded = yield* LayoutRecord.readState(table.location)
    if (recorded?.to === undefined || recorded.begin === undefined) return 0
    const from = LayoutLease.movesFrom(recorded.begin, options.lease ?? LayoutLease.defaultLease)
    return Math.max(0, from - (yield* Clock.currentTimeMillis))
  })

/** Failures of a migration run; running it again resumes it. */
export type PartitionMigrationError = ConfigInvalid | Relocation.RelocationError | TableError

/** Passes before giving up on items that keep appearing in old partitions (a compaction lagging behind). */
const maxPasses = 3

/** The keys an old-layout table still holds under the changed prefixes that change partition. */
const keysToMove = (source: EventTable["Service"], transition: Transition) =>
  Effect.gen(function*() {
    const keys = new Set<string>()
    const add = (stream: Stream.Stream<{ readonly key: string }, TableError>) =>
      Stream.runForEach(stream, (stored) =>
        Effect.sync(() => {
          if (LayoutTransition.moves(transition, stored.key)) keys.add(stored.key)
        }))
    for (const prefix of LayoutTransition.changedPrefixes(transition)) {
      const range = { lower: Key.toBytes(prefix), upper: SortKey.prefixUpperBound(prefix), descending: false }
      yield* add(source.scan(range))
      yield* add(source.graves(range.lower, range.upper))
      yield* add(source.scan({ ...range, area: "history" }))
    }
    return [...keys].sort(Key.compare)
  })

/** Records the migration to `to` unless it is recorded already; the transition (undefined: settled on `to`). */
const record = (table: EventTable["Service"], to: Layout) =>
  Effect.gen(function*() {
    const location = table.location
    for (let attempt = 0; attempt < 2; attempt++) {
      const recorded = yield* LayoutRecord.readState(location)
      const beginning = LayoutTransition.beginning(recorded, to)
      if (beginning._tag === "Refused") {
        return yield* new ConfigInvalid({ field: LayoutRecord.layoutField, reason: beginning.reason })
      }
      if (beginning._tag === "Settled") return undefined
      if (!beginning.record || (yield* LayoutRecord.begin(location, recorded, to))) {
        if (beginning.record) {
          yield* Effect.logInfo(`recorded a layout migration of namespace ${location.namespace}`)
        }
        return { from: beginning.from, to } satisfies Transition
      }
      // Another runner (or a first store) changed the record: judge it again.
    }
    return yield* new ConfigInvalid({
      field: LayoutRecord.layoutField,
      reason: "the layout record kept changing while the migration began"
    })
  })

/**
 * Records that the namespace of the event table migrates to the table's layout, moving nothing: stores configured
 * with that layout may open (in migrating mode) from then on, and stores with the old one are refused. What
 * {@link migrate} does first; on its own, for a rollout that starts the new processes before the keys move. The
 * transition, or undefined when the namespace is settled on that layout already.
 */
export const begin: Effect.Effect<
  Transition | undefined,
  ConfigInvalid | Throttled | StorageFailure,
  EventTable | Dynamo
> = Effect.gen(function*() {
  const table = yield* EventTable
  const to = table.location.partitions ?? []
  const valid = LayoutRecord.check(to)
  if (Result.isFailure(valid)) return yield* valid.failure
  return yield* record(table, to)
})

/**
 * Migrates the namespace of the event table to the table's layout (its location's `partitions`): a stream of
 * progress reports, one per key moved and a last one with `done`. A namespace already settled on that layout
 * reports `done` at once, having moved nothing.
 */
export const migrate = (
  options: PartitionMigrationOptions = {}
): Stream.Stream<PartitionProgress, PartitionMigrationError, EventTable | DataKeys | Dynamo> =>
  Stream.unwrap(Effect.gen(function*() {
    const target = yield* EventTable
    const dataKeys = yield* DataKeys
    const dynamo = yield* Dynamo
    const to = target.location.partitions ?? []
    const valid = LayoutRecord.check(to)
    if (Result.isFailure(valid)) return yield* valid.failure
    const transition = yield* record(target, to)
    if (transition === undefined) {
      return Stream.make({ transition: { from: to, to }, found: 0, moved: 0, failed: 0, done: true })
    }
    const source = yield* Effect.provide(
      Effect.service(EventTable),
      EventTable.layer({ ...target.location, partitions: transition.from })
    )
    const relocation = Relocation.make(dynamo, dataKeys)
    const progress = { transition, found: 0, moved: 0, failed: 0 }
    const waitMillis = yield* untilMoves(options).pipe(Effect.provideService(Dynamo, dynamo))
    const moveOne = (key: string) =>
      Effect.gen(function*() {
        const outcome = yield* Effect.result(
          relocation.relocate({ location: source.location, key }, { location: target.location, key }, undefined)
        )
        if (outcome._tag === "Success") return true
        if (outcome.failure._tag !== "RelocationConflict") return yield* Effect.fail(outcome.failure)
        const conflict: RelocationConflict = outcome.failure
        yield* Effect.logWarning(`not moved: ${conflict.message}`)
        return false
      })
    const pass = (round: number): Stream.Stream<PartitionProgress, PartitionMigrationError> =>
      Stream.concat(
        Stream.unwrap(Effect.map(keysToMove(source, transition), (keys) => {
          progress.found += keys.length
          return Stream.fromIterable(keys).pipe(
            Stream.mapEffect(moveOne, { concurrency: options.concurrency ?? 8 }),
            Stream.map((moved): PartitionProgress => {
              if (moved) progress.moved++
              else progress.failed++
              return { ...progress }
            })
          )
        })),
        Stream.unwrap(Effect.gen(function*() {
          const left = (yield* keysToMove(source, transition)).length > 0
          if (left && progress.failed === 0 && round < maxPasses) return pass(round + 1)
          if (!left) {
            yield* LayoutRecord.finish(target.location, to).pipe(Effect.provideService(Dynamo, dynamo))
            yield* Effect.logInfo(`namespace ${target.location.namespace} is settled on its new layout`)
          }
          return Stream.make({ ...progress, done: !left })
        }))
      )
    if (waitMillis === 0) return pass(1)
    // Nothing moves before every process with the old layout has lost its lease (see `LayoutLease`).
    const waiting = Effect.andThen(
      Effect.logInfo(
        `namespace ${target.location.namespace}: waiting ${waitMillis} ms for processes with the old layout to ` +
          "lose their layout lease before moving keys"
      ),
      Effect.sleep(waitMillis)
    )
    const first: PartitionProgress = { ...progress, waitMillis }
    return Stream.concat(
      Stream.make(first),
      Stream.unwrap(Effect.as(waiting, pass(1)))
    )
  }))

/**
 * Runs {@link migrate} to its end, calling `onProgress` with each report; returns the last report (with `done`).
 * Interrupted, it leaves every key either moved or not (each move is one transaction plus idempotent copies and
 * removals) and the record saying the migration is under way: run it again.
 */
export const run = (
  options: PartitionMigrationOptions & {
    readonly onProgress?: (progress: PartitionProgress) => Effect.Effect<void>
  } = {}
): Effect.Effect<PartitionProgress, PartitionMigrationError, EventTable | DataKeys | Dynamo> =>
  Effect.gen(function*() {
    let last: PartitionProgress | undefined
    yield* Stream.runForEach(migrate(options), (progress) =>
      Effect.gen(function*() {
        last = progress
        if (options.onProgress !== undefined) yield* options.onProgress(progress)
      }))
    return last!
  })
