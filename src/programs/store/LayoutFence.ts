/**
 * The layout lease a running store keeps (see `LayoutLease`): a fiber re-reads the namespace's layout record every
 * third of the lease, and the store's event table and history area serve an operation only while the store's layout
 * was confirmed within the lease (a clock compare per call, no I/O). A record that no longer allows the layout
 * supersedes the store for good (`LayoutSuperseded`); reads of the record that fail (throttled, unreachable) renew
 * nothing, so operations fail once the lease lapses (`Throttled` when the last read was, else `StorageFailure`),
 * until a read succeeds again. A lease that lapsed with no read failed (the process was paused past it, or its timers
 * starved) is renewed by the call that finds it so: that call reads the record itself.
 *
 * A store opening in migrating mode also waits, since its writes move keys, until every process with the old layout
 * has lost its lease ({@link LayoutFence.awaitMoves}).
 *
 * The record also lists the sealed prefixes a sealing migration began on (see `LayoutRecord.readRecord`): a store
 * configured without one of them is superseded as well (`LayoutSuperseded` naming the sealed prefix), and whatever
 * moves a key to its sealed form waits for the drain after the prefix's begin ({@link awaitFrom}).
 *
 * The lease keeps real time, whatever clock the program runs on: it measures the time in which other processes act,
 * so a `TestClock` moved forward in a test must neither lapse it nor stall its re-reading.
 */
import { Clock, Deferred, Effect, Exit, Stream } from "effect"
import type { Scope } from "effect"
import { LayoutSuperseded, StorageFailure, Throttled } from "../../domain/Errors.ts"
import type { TableError } from "../../domain/Errors.ts"
import * as LayoutLease from "../../domain/LayoutLease.ts"
import type { Recorded } from "../../domain/LayoutTransition.ts"
import * as Partitioning from "../../domain/Partitioning.ts"
import type { SealedPrefix } from "../../domain/SealedKeys.ts"
import { Dynamo } from "../../infra/Dynamo.ts"
import type { Location } from "../../infra/EventRecord.ts"
import { EventTable } from "../../infra/EventTable.ts"
import { HistoryArea } from "../../infra/HistoryArea.ts"
import * as LayoutRecord from "../../infra/LayoutRecord.ts"

/** A running store's hold on its layout. */
export interface LayoutFence {
  /**
   * Succeeds while the store may serve; `LayoutSuperseded` for good, or while the lease lapsed `Throttled` (the last
   * read of the record was throttled) or `StorageFailure`.
   */
  readonly check: Effect.Effect<void, TableError>
  /**
   * `effect`, run only once `check` passes: while the lease stands that is a comparison of two times, with no effect
   * of its own (every read and write of the store comes through here).
   */
  readonly guard: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TableError, R>
  /** Waits until a recorded migration lets keys move (at once when none is recorded, or it has no begin time). */
  readonly awaitMoves: Effect.Effect<void>
}

const realClock = Clock.Clock.defaultValue()

/** Now, in real time (see the module's doc): what a lease is confirmed at and checked against. */
export const realTimeMillis = (): number => realClock.currentTimeMillisUnsafe()

const onRealClock = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, Clock.Clock, realClock)

interface State {
  confirmedAt: number
  superseded: string | undefined
  /** The sealed prefix the record lists that the store lacks, once it superseded the store. */
  sealedPrefix: string | undefined
  lastFailure: { readonly throttled: boolean; readonly message: string } | undefined
}

/**
 * Waits until `from` (epoch ms, see `LayoutLease.movesFrom`): at once when it is past. Says once, when it has to
 * wait, what for (`what`: what moves then).
 */
export const awaitFrom = (from: number, what: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    let logged = false
    while (true) {
      const now = yield* Clock.currentTimeMillis
      if (now >= from) return
      if (!logged) {
        logged = true
        yield* Effect.logInfo(
          `${what} from ${new Date(from).toISOString()} (in ${from - now} ms), when every process that may still ` +
            "write them where they are has lost its layout lease"
        )
      }
      yield* Effect.sleep(from - now)
    }
  }).pipe(onRealClock)

/**
 * Starts the lease of a store serving `location` (its `partitions`) with the sealed prefixes `sealed`, confirmed by a
 * read of the record sent at `confirmedAt` that said `recorded`. The re-reading fiber lives as long as the scope.
 */
export const start = Effect.fnUntraced(function*(
  location: Location,
  lease: LayoutLease.LayoutLease,
  sealed: ReadonlyArray<SealedPrefix>,
  opened: { readonly confirmedAt: number; readonly recorded: Recorded | undefined }
): Effect.fn.Return<LayoutFence, never, Dynamo | Scope.Scope> {
  const dynamo = yield* Dynamo
  const configured = location.partitions ?? []
  const state: State = {
    confirmedAt: opened.confirmedAt,
    superseded: undefined,
    sealedPrefix: undefined,
    lastFailure: undefined
  }
  const namespace = location.namespace
  const superseded = (recorded: string) =>
    new LayoutSuperseded({
      namespace,
      configured: Partitioning.describe(configured),
      recorded,
      sealedPrefix: state.sealedPrefix
    })
  const refresh = Effect.gen(function*() {
    const sentAt = yield* Clock.currentTimeMillis
    const read = yield* Effect.exit(
      LayoutRecord.readRecord(location).pipe(
        Effect.provideService(Dynamo, dynamo),
        Effect.timeoutOrElse({
          duration: lease.leaseMillis,
          orElse: () => Effect.fail(new StorageFailure({ operation: "GetItem", reason: "no answer within the lease" }))
        })
      )
    )
    if (Exit.isFailure(read)) {
      const failure = read.cause.reasons.find((reason) => reason._tag === "Fail")
      const message = failure?._tag === "Fail" ? failure.error.message : "the read failed unexpectedly"
      const throttled = failure?._tag === "Fail" && failure.error._tag === "Throttled"
      if (state.lastFailure === undefined) {
        yield* Effect.logWarning(
          `cannot read the layout record of namespace ${namespace}: ${message}; the store stops serving ` +
            `${lease.leaseMillis} ms after its last successful read unless a read succeeds before`
        )
      }
      state.lastFailure = { throttled, message }
      return
    }
    if (state.lastFailure !== undefined) {
      yield* Effect.logInfo(`the layout record of namespace ${namespace} is readable again`)
    }
    state.lastFailure = undefined
    const unsealed = LayoutLease.missingSealed(read.value.sealed, sealed)
    if (unsealed !== undefined || !LayoutLease.allows(read.value.layout, configured)) {
      state.sealedPrefix = unsealed
      state.superseded = LayoutLease.describeRecord(read.value.layout)
      yield* Effect.logError(superseded(state.superseded).message)
      return
    }
    state.confirmedAt = Math.max(state.confirmedAt, sentAt)
  })
  // One read of the record at a time, whoever asks for it (the re-reading fiber, or calls finding the lease lapsed):
  // the others wait for its outcome.
  let reading: Deferred.Deferred<void> | undefined
  const refreshOnce = Effect.suspend(() => {
    if (reading !== undefined) return Deferred.await(reading)
    const done = Deferred.makeUnsafe<void>()
    reading = done
    return refresh.pipe(
      onRealClock,
      Effect.ensuring(Effect.sync(() => {
        reading = undefined
        Deferred.doneUnsafe(done, Effect.void)
      }))
    )
  })
  const every = LayoutLease.refreshMillis(lease.leaseMillis)
  yield* Effect.gen(function*() {
    while (state.superseded === undefined) {
      yield* Effect.sleep(every)
      yield* refreshOnce
    }
  }).pipe(onRealClock, Effect.forkScoped)

  const standingNow = () => LayoutLease.standing(state, realTimeMillis(), lease.leaseMillis)
  const outcome = (standing: LayoutLease.Standing): Effect.Effect<void, TableError> => {
    if (standing._tag === "Serving") return Effect.void
    if (standing._tag === "Superseded") return Effect.fail(superseded(standing.recorded))
    const reason = `the layout record of namespace ${namespace} was last read ${standing.sinceMillis} ms ago, ` +
      `longer than the store's lease (${lease.leaseMillis} ms)` +
      (state.lastFailure === undefined ? "" : ` (${state.lastFailure.message})`) +
      ": the store serves again once it can read the record"
    return Effect.fail(
      state.lastFailure?.throttled === true
        ? new Throttled({ operation: "layout lease", reason })
        : new StorageFailure({ operation: "layout lease", reason })
    )
  }
  // Lapsed without a failed read: the re-reading did not get to run in time (the process was paused, or its timers
  // starved by work that never yields to them), so a call reads the record itself rather than fail. Once a read
  // failed, calls fail at once, as before: none waits on a record that cannot be read.
  const unread = (standing: LayoutLease.Standing) => standing._tag === "Lapsed" && state.lastFailure === undefined
  const renew = Effect.gen(function*() {
    // Two reads at most: one already in flight may have been sent before the pause, and then confirms too little.
    for (let attempt = 0; attempt < 2 && unread(standingNow()); attempt++) yield* refreshOnce
    return yield* outcome(standingNow())
  })
  const guard = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | TableError, R> =>
    Effect.suspend(() => {
      const standing = standingNow()
      if (standing._tag === "Serving") return effect
      return Effect.andThen(unread(standing) ? renew : outcome(standing), effect)
    })
  const check = guard(Effect.void)
  // The begin is the one the store opened with: a record changing it after supersedes the store anyway.
  const begin = opened.recorded?.begin
  const awaitMoves = begin === undefined
    ? Effect.void
    : awaitFrom(LayoutLease.movesFrom(begin, lease), `namespace ${namespace}: keys change partition`)
  return { check, guard, awaitMoves }
})

/** The event table serving only while the layout check passes: every call runs through `guard`. */
export const fenceTable = (
  table: EventTable["Service"],
  guard: LayoutFence["guard"]
): EventTable["Service"] =>
  EventTable.of({
    ...table,
    append: (event, deadline) => guard(table.append(event, deadline)),
    appendAfter: (event, after, deadline) => guard(table.appendAfter(event, after, deadline)),
    latest: (key) => guard(table.latest(key)),
    latestState: (key) => guard(table.latestState(key)),
    scan: (range) => Stream.unwrap(guard(Effect.succeed(table.scan(range)))),
    graves: (lower, upper) => Stream.unwrap(guard(Effect.succeed(table.graves(lower, upper)))),
    decode: (stored, options) => guard(table.decode(stored, options)),
    decodeAll: (stored, options) => guard(table.decodeAll(stored, options)),
    landing: (event) => guard(table.landing(event)),
    undo: (event) => guard(table.undo(event)),
    transact: (writes, token, deadline) => guard(table.transact(writes, token, deadline))
  })

/** The history area serving reads only while `check` succeeds (compaction's writes are the worker's, not fenced). */
export const fenceArea = (area: HistoryArea["Service"], check: LayoutFence["check"]): HistoryArea["Service"] =>
  HistoryArea.of({
    ...area,
    upTo: (key, seq) => Stream.unwrap(Effect.as(check, area.upTo(key, seq))),
    archived: (key) => Stream.unwrap(Effect.as(check, area.archived(key)))
  })
