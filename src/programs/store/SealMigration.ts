/**
 * The migration that seals an existing prefix in place while the store serves: every key stored in clear under a
 * configured sealed prefix is relocated to its sealed form (see `Relocation`), keeping its seqs, revisions, values
 * and expiries, its history and its grave. Stores serving meanwhile read such a prefix from both forms and move a key
 * before writing it (see `SealedFallback`), so no key reads as missing and no write is lost.
 *
 * Fenced like a partition migration (see `LayoutLease`): the run first records the prefixes it seals in the
 * namespace's record, so stores configured without them are refused and those running stop serving within their
 * layout lease, and it moves nothing before `begin + drain` (see `SealedFallback.fence`).
 *
 * Resumable: each key's move is idempotent and a run looks for what is left in clear, so running it again after an
 * interruption finishes the job.
 */
import { Effect, Stream } from "effect"
import { BadParameter } from "../../domain/Errors.ts"
import type { RelocationConflict, TableError } from "../../domain/Errors.ts"
import type { LayoutLease } from "../../domain/LayoutLease.ts"
import type { SealedPrefix } from "../../domain/SealedKeys.ts"
import * as SealedKeys from "../../domain/SealedKeys.ts"
import * as SortKey from "../../domain/SortKey.ts"
import type { ConfigInvalid } from "../../infra/config/ConfigInvalid.ts"
import { DataKeys } from "../../infra/crypto/DataKeys.ts"
import * as DataKeyStore from "../../infra/crypto/DataKeyStore.ts"
import * as KeySealer from "../../infra/crypto/KeySealer.ts"
import { Dynamo } from "../../infra/Dynamo.ts"
import { EventTable } from "../../infra/EventTable.ts"
import * as Relocation from "../../infra/Relocation.ts"
import * as SealedFallback from "./SealedFallback.ts"

/** Where a migration of one sealed prefix stands. */
export interface SealProgress {
  readonly prefix: string
  /** Keys found in clear under the prefix so far (a key found again by a later pass counts again). */
  readonly found: number
  /** Keys of those now stored sealed (moved by this run, by a writer, or before). */
  readonly moved: number
  /** Keys that could not be moved (see `RelocationConflict`: logged by their sealed form only). */
  readonly failed: number
  /** Set on the prefix's last report: whether nothing is left in clear under it. */
  readonly done?: boolean | undefined
}

/** What to migrate, and how hard. */
export interface SealMigrationOptions {
  /** Only these of the configured sealed prefixes (each must be one); all of them when absent. */
  readonly prefixes?: ReadonlyArray<string> | undefined
  /** Keys moved at once (default 8). */
  readonly concurrency?: number | undefined
  /**
   * The layout lease of the namespace's processes (`storage.layout_lease` and `write_timeout`, see
   * `StoreConfig.layoutLeaseOf`; `LayoutLease.defaultLease` by default): how long after recording the prefixes the
   * run waits before moving a key.
   */
  readonly lease?: LayoutLease | undefined
}

/** Failures of a migration run; running it again resumes it. */
export type SealMigrationError =
  | BadParameter
  | ConfigInvalid
  | KeySealer.SealError
  | Relocation.RelocationError
  | TableError

/** Passes over one prefix before giving up on items that keep appearing in clear (a compaction lagging behind). */
const maxPasses = 3

/** Every key with an item stored in clear under `prefix`: in the live range, a grave or the history area. */
const clearKeys = (table: EventTable["Service"], prefix: string) =>
  Effect.gen(function*() {
    const range = SealedFallback.clearRange(prefix)
    const keys = new Set<string>()
    const add = (stream: Stream.Stream<{ readonly key: string }, TableError>) =>
      Stream.runForEach(stream, (stored) => Effect.sync(() => keys.add(stored.key)))
    yield* add(table.scan(range))
    yield* add(table.graves(SortKey.keyPrefix(`${prefix}\u0002`), range.upper))
    yield* add(table.scan({ ...range, area: "history" }))
    // Only keys the store would seal (a stored form found in clear territory is no caller's key).
    return [...keys].filter((key) => key.startsWith(prefix) && key.length > prefix.length)
  })

/**
 * Seals every key stored in clear under the configured sealed prefixes `sealed` (those of the store's
 * configuration): a stream of progress reports, one per key moved and a last one per prefix with `done`.
 */
export const migrate = (
  sealed: ReadonlyArray<SealedPrefix>,
  options: SealMigrationOptions = {}
): Stream.Stream<SealProgress, SealMigrationError, EventTable | DataKeys | Dynamo> =>
  Stream.unwrap(Effect.gen(function*() {
    const table = yield* EventTable
    const dataKeys = yield* DataKeys
    const dynamo = yield* Dynamo
    const relocation = Relocation.make(dynamo, dataKeys)
    const valid = SealedKeys.validate(sealed)
    if (valid._tag === "Failure") return yield* valid.failure
    const chosen = options.prefixes === undefined
      ? sealed
      : yield* Effect.forEach(options.prefixes, (prefix, index) => {
        const entry = sealed.find((candidate) => candidate.prefix === prefix)
        return entry !== undefined ? Effect.succeed(entry) : Effect.fail(
          new BadParameter({ field: `prefixes[${index}]`, reason: `${prefix} is not a configured sealed prefix` })
        )
      })
    const sealer = yield* KeySealer.make(dataKeys, sealed)
    // Nothing moves before processes configured without the prefixes have lost their lease.
    const drained = yield* SealedFallback.fence(table.location, chosen, options.lease).pipe(
      Effect.provideService(Dynamo, dynamo)
    )
    yield* drained
    const place = { location: table.location }
    interface Counts {
      readonly prefix: string
      found: number
      moved: number
      failed: number
    }
    const movePrefix = (progress: Counts): Stream.Stream<SealProgress, SealMigrationError> =>
      Stream.unwrap(Effect.gen(function*() {
        const keys = yield* clearKeys(table, progress.prefix)
        progress.found += keys.length
        const moves = Stream.fromIterable(keys).pipe(
          Stream.mapEffect((key) =>
            Effect.gen(function*() {
              const stored = yield* sealer.seal(key)
              const outcome = yield* Effect.result(
                relocation.relocate({ ...place, key }, { ...place, key: stored }, key)
              )
              if (outcome._tag === "Success") return true
              if (outcome.failure._tag !== "RelocationConflict") return yield* Effect.fail(outcome.failure)
              const conflict: RelocationConflict = outcome.failure
              yield* Effect.logWarning(`not sealed: ${conflict.message}`)
              return false
            }), { concurrency: options.concurrency ?? 8 }),
          Stream.map((moved): SealProgress => {
            if (moved) progress.moved++
            else progress.failed++
            return { ...progress }
          })
        )
        return moves
      }))
    /**
     * Once nothing under the prefix is left in clear, the data keys of scopes drawn from clear keys (a scope policy
     * deeper than the prefix: `/users/alice@example.com`) encrypt nothing any more: they are destroyed and filed
     * under their sealed scope, so no data key item names a sealed segment either.
     */
    const retireClearScopes = (prefix: string) =>
      DataKeyStore.list(table.location).pipe(
        Stream.filter((record) =>
          SealedKeys.place(sealed, record.scope)._tag === "Seal" && record.scope.startsWith(prefix)
        ),
        Stream.runForEach((record) =>
          Effect.flatMap(sealer.seal(record.scope), (scope) => DataKeyStore.retire(table.location, record.id, scope))
        ),
        Effect.provideService(Dynamo, dynamo)
      )
    const sealPrefix = (progress: Counts, pass: number): Stream.Stream<SealProgress, SealMigrationError> =>
      Stream.concat(
        movePrefix(progress),
        Stream.unwrap(Effect.gen(function*() {
          const left = yield* SealedFallback.holdsClearKeys(table, progress.prefix)
          if (left && progress.failed === 0 && pass < maxPasses) return sealPrefix(progress, pass + 1)
          if (!left) yield* retireClearScopes(progress.prefix)
          return Stream.make({ ...progress, done: !left })
        }))
      )
    return Stream.fromIterable(chosen).pipe(
      Stream.flatMap((entry) => sealPrefix({ prefix: entry.prefix, found: 0, moved: 0, failed: 0 }, 1))
    )
  }))

/**
 * Runs {@link migrate} to its end, calling `onProgress` with each report; returns each prefix's last report (with
 * `done`). Interrupted, it leaves every key either moved or not (each move is one transaction plus idempotent
 * copies and removals): run it again.
 */
export const run = (
  sealed: ReadonlyArray<SealedPrefix>,
  options: SealMigrationOptions & { readonly onProgress?: (progress: SealProgress) => Effect.Effect<void> } = {}
): Effect.Effect<ReadonlyArray<SealProgress>, SealMigrationError, EventTable | DataKeys | Dynamo> =>
  Effect.gen(function*() {
    const last = new Map<string, SealProgress>()
    yield* Stream.runForEach(migrate(sealed, options), (progress) =>
      Effect.gen(function*() {
        last.set(progress.prefix, progress)
        if (options.onProgress !== undefined) yield* options.onProgress(progress)
      }))
    return [...last.values()]
  })
