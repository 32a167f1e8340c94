/**
 * The shard leases of one projection worker process. It announces itself to
 * the other workers of its group (an expiring item in the lease table,
 * renewed by the heartbeat, withdrawn on shutdown), takes the shards its
 * stream reader offers up to its fair share (the rules are in
 * `domain/LeaseBalance.ts`), renews what it holds, hands surplus shards off
 * between batches, and gives everything back on shutdown.
 *
 * A hand-off waits for the batch in flight (batches and hand-offs share one
 * permit), so the released checkpoint covers everything this worker applied
 * and nothing after it is applied here: batches of the shard still buffered
 * are stale (the reading they came from is no longer held) and dropped. The
 * next owner resumes after the checkpoint, with a new epoch that fences this
 * worker's writes.
 */
import { Clock, Effect, Fiber, Schedule, Semaphore } from "effect"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import * as LeaseBalance from "../../domain/LeaseBalance.ts"
import type { Dynamo } from "../../infra/Dynamo.ts"
import * as ProjectionLeases from "../../infra/ProjectionLeases.ts"
import type { LeaseLocation, ShardLease } from "../../infra/ProjectionLeases.ts"
import type { ShardCoordinator } from "../../infra/streams/StreamReader.ts"
import type { ShardPosition } from "../../infra/streams/StreamsApi.ts"

/** How a worker holds its leases. */
export interface LeasingOptions {
  readonly owner: string
  readonly leases: LeaseLocation
  /** A lease not renewed for this long may be taken over. */
  readonly leaseMillis: number
  /** How long a free shard is left to under-loaded workers before this one takes it beyond its share. */
  readonly strandedMillis: number
}

/** How the shards are shared, as this worker last saw it. */
export interface LeasingStatus {
  readonly ownedShards: number
  readonly fairShare: number
  readonly liveWorkers: number
  /** The shards held now, each with the reading it is held by (see `ShardCoordinator.acquire`). */
  readonly held: ReadonlyArray<{ readonly shardId: string; readonly reading: number }>
  /** When the heartbeat (renewals, announcement, balance) last went through, and why it failed since, if it did. */
  readonly heartbeat: { readonly lastSuccessAt: number; readonly failure: string | undefined }
}

/** A worker's leases. */
export interface ShardLeasing {
  readonly coordinator: ShardCoordinator<ProjectionLeases.LeaseLost | Throttled | StorageFailure>
  /** Whether a batch may be applied: its shard is held, by the reading the batch came from. */
  readonly holds: (batch: { readonly arn: string; readonly shardId: string; readonly reading: number }) => boolean
  /** Runs one batch step (apply and checkpoint) so that no hand-off happens in its middle. */
  readonly exclusive: <A, E, R>(step: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** True once after this worker took over a shard another worker had applied part of. */
  readonly tookOver: Effect.Effect<boolean>
  readonly status: Effect.Effect<LeasingStatus>
  /** Stops the heartbeat, withdraws the announcement and releases every lease (call after the reader stopped). */
  readonly shutdown: Effect.Effect<void>
}

interface Held {
  readonly arn: string
  readonly shardId: string
  readonly lease: ShardLease
  readonly reading: number
  /**
   * Local time until which this worker may still apply batches of the shard: a third of a lease period before
   * the lease, as last taken or renewed, could look expired to others (whose clocks may run a little ahead).
   */
  validUntil: number
  /** The newest applied position not recorded yet: the next renewal (or the release) records it. */
  pending: string | undefined
  /** Local time of the last checkpoint write, on its own or with a renewal. */
  checkpointedAt: number
}

/** The local deadline of a lease taken or renewed with a request that started at `startedAt`. */
const validUntil = (startedAt: number, leaseMillis: number) => startedAt + leaseMillis - Math.ceil(leaseMillis / 3)

// Shard ids are unique within a stream only; leases are kept per stream.
const leaseId = (arn: string, shardId: string) => `${arn}#${shardId}`

/** Announces the worker and starts its heartbeat (in the calling scope). */
export const make = Effect.fnUntraced(function*(options: LeasingOptions) {
  const { owner, leases: location, leaseMillis } = options
  const heartbeatMillis = Math.max(100, Math.floor(leaseMillis / 3))
  // A batch's own checkpoint write only when the heartbeat has not recorded progress for a period.
  const checkpointMillis = heartbeatMillis
  const context = yield* Effect.context<Dynamo>()
  const withDynamo = Effect.provide(context)
  const clock = yield* Clock.Clock
  const scope = yield* Effect.scope
  const owned = new Map<string, Held>()
  const permit = yield* Semaphore.make(1)
  let memory = LeaseBalance.emptyMemory
  let takenOver = false
  let seen = { fairShare: 0, liveWorkers: 1 }
  let heartbeatState: LeasingStatus["heartbeat"] = { lastSuccessAt: yield* Clock.currentTimeMillis, failure: undefined }
  let handOffFiber: Fiber.Fiber<void> | undefined
  let handingOff = false

  const drop = (id: string, held: Held) => {
    if (owned.get(id) !== held) return
    owned.delete(id)
    memory = LeaseBalance.forget(memory, id)
  }

  /** The group's leases and live workers, as stored now. */
  const look = Effect.gen(function*() {
    const listing = yield* ProjectionLeases.list(location)
    const now = yield* Clock.currentTimeMillis
    const leases = listing.leases.map((lease): LeaseBalance.Lease => ({
      id: leaseId(lease.arn, lease.shardId),
      owner: lease.owner,
      expiresAt: lease.expiresAt,
      finished: lease.finished
    }))
    const workers = LeaseBalance.liveWorkers(listing.workers, leases, owner, now)
    seen = {
      fairShare: LeaseBalance.fairShare(LeaseBalance.activeShards(leases, owned.keys()), workers.length),
      liveWorkers: workers.length
    }
    return { leases, workers, announcements: listing.workers, now }
  })

  const coordinator: ShardLeasing["coordinator"] = {
    acquire: (arn, shard, reading) =>
      Effect.gen(function*() {
        const id = leaseId(arn, shard.shardId)
        const startedAt = yield* Clock.currentTimeMillis
        const current = yield* ProjectionLeases.read(location, arn, shard.shardId)
        const now = yield* Clock.currentTimeMillis
        const stored: LeaseBalance.Lease = {
          id,
          owner: current.owner,
          expiresAt: current.expiresAt,
          finished: current.finished
        }
        const mine = new Set(owned.keys())
        // Only a free shard needs the whole group's picture (a Query); the others are decided on their own lease.
        const free = LeaseBalance.standing(stored, owner, mine, now) === "free"
        const view = free ? yield* look : { leases: [stored], workers: [owner], now }
        const lease = view.leases.find((listed) => listed.id === id)
        const decision = LeaseBalance.decideAcquire({
          shard: id,
          lease,
          leases: view.leases,
          workers: view.workers,
          me: owner,
          mine,
          memory,
          now: view.now,
          strandedMillis: options.strandedMillis
        })
        memory = LeaseBalance.remember(memory, id, decision, view.now, view.workers)
        if (LeaseBalance.mustRegister(decision, lease)) {
          yield* ProjectionLeases.register(location, arn, shard.shardId, shard.parentShardId)
        }
        if (decision._tag === "Leave") return undefined
        const taken = yield* ProjectionLeases.take(location, arn, current, owner, leaseMillis, shard.parentShardId)
        if (taken === undefined) return undefined
        // Taking over another worker's shard: state kept in memory (upcoming expiries) missed what it applied.
        if (current.owner !== owner && taken.checkpoint !== undefined) takenOver = true
        owned.set(id, {
          arn,
          shardId: shard.shardId,
          lease: taken,
          reading,
          validUntil: validUntil(startedAt, leaseMillis),
          pending: undefined,
          checkpointedAt: 0
        })
        if (decision.reason !== "mine") {
          const active = LeaseBalance.activeShards(view.leases, owned.keys(), id)
          seen = { fairShare: LeaseBalance.fairShare(active, view.workers.length), liveWorkers: view.workers.length }
          yield* Effect.logInfo(
            `took shard ${shard.shardId} (${decision.reason}): ${owned.size} held, fair share ${seen.fairShare} of ${seen.liveWorkers} workers`
          )
        }
        const position: ShardPosition = taken.checkpoint === undefined
          ? { _tag: "TrimHorizon" }
          : { _tag: "After", sequenceNumber: taken.checkpoint }
        return position
      }).pipe(withDynamo),
    isFinished: (arn, shardId) =>
      Effect.map(ProjectionLeases.read(location, arn, shardId).pipe(withDynamo), (lease) => lease.finished),
    checkpoint: (arn, shardId, sequenceNumber, ended, reading) =>
      Effect.gen(function*() {
        const id = leaseId(arn, shardId)
        const held = owned.get(id)
        // Only the reading that applied the batch may record it: a newer one of the same shard resumed elsewhere.
        if (
          held === undefined || (reading !== undefined && held.reading !== reading)
        ) return yield* new ProjectionLeases.LeaseLost({ shardId })
        const now = yield* Clock.currentTimeMillis
        // Progress is recorded at most once per heartbeat period, by the renewal when it can be: a write per batch
        // costs a write unit per batch (most of a put's overhead under light load). What is not recorded yet is
        // applied again by the next owner after a crash (delivery is at least once); a hand-off or a shutdown
        // records it with the release.
        if (!ended && (sequenceNumber === undefined || now - held.checkpointedAt < checkpointMillis)) {
          if (sequenceNumber !== undefined) held.pending = sequenceNumber
          return
        }
        yield* ProjectionLeases.checkpoint(location, arn, held.lease, owner, sequenceNumber, ended).pipe(
          Effect.tapErrorTag("LeaseLost", () => Effect.sync(() => drop(id, held)))
        )
        if (held.pending === sequenceNumber) held.pending = undefined
        held.checkpointedAt = now
        if (ended) drop(id, held)
      }).pipe(withDynamo),
    keeps: (arn, shardId) => owned.has(leaseId(arn, shardId))
  }

  // Hands shards off one by one, each between two batches; the release is the last write this worker makes for it.
  const handOff = (ids: ReadonlyArray<string>) =>
    Effect.forEach(ids, (id) =>
      Effect.gen(function*() {
        const held = owned.get(id)
        if (held === undefined) return
        drop(id, held)
        yield* ProjectionLeases.release(location, held.arn, held.lease, owner, held.pending).pipe(
          Effect.catch((error) =>
            Effect.logWarning(
              `could not release shard ${held.shardId} (${error._tag}); it is free once its lease expires`
            )
          )
        )
        yield* Effect.logInfo(
          `handed shard ${held.shardId} off: ${owned.size} held, fair share ${seen.fairShare} of ${seen.liveWorkers} workers`
        )
      }).pipe((step) => permit.withPermit(step), Effect.uninterruptible), { discard: true })

  // Each lease on its own: one that fails (throttled) must not keep the others from being renewed.
  const renewAll = Effect.suspend(() =>
    Effect.forEach([...owned], ([id, held]) =>
      Effect.gen(function*() {
        const startedAt = yield* Clock.currentTimeMillis
        const pending = held.pending
        yield* ProjectionLeases.renew(location, held.arn, held.lease, owner, leaseMillis, pending)
        held.validUntil = validUntil(startedAt, leaseMillis)
        if (pending !== undefined) {
          // A batch acknowledged meanwhile left a newer position for the next renewal.
          if (held.pending === pending) held.pending = undefined
          held.checkpointedAt = startedAt
        }
      }).pipe(
        Effect.catchTag("LeaseLost", () =>
          owned.get(id) === held
            ? Effect.sync(() => drop(id, held)).pipe(
              Effect.andThen(Effect.logWarning(`lost the lease of shard ${held.shardId}`))
            )
            : Effect.void),
        Effect.catch((error) => Effect.logWarning(`renewing the lease of shard ${held.shardId} failed (${error._tag})`))
      ), { discard: true })
  )

  let announced = false
  const announceSelf = Effect.gen(function*() {
    const present = yield* ProjectionLeases.announce(location, owner, leaseMillis, !announced)
    announced = true
    // Someone removed our announcement (we looked dead to them): make it again.
    if (!present) yield* ProjectionLeases.announce(location, owner, leaseMillis, true)
  })

  const rebalance = Effect.gen(function*() {
    const view = yield* look
    // Announcements of workers that died long ago (a graceful shutdown removes its own).
    for (const announcement of view.announcements) {
      if (announcement.owner !== owner && announcement.expiresAt < view.now - 10 * leaseMillis) {
        yield* ProjectionLeases.withdraw(location, announcement.owner, announcement.expiresAt)
      }
    }
    const decision = LeaseBalance.decideRelease({
      leases: view.leases,
      workers: view.workers,
      mine: [...owned.keys()],
      memory
    })
    memory = decision.memory
    // The hand-off waits for the batch in flight: it runs on its own so renewals never wait for a batch.
    if (decision.release.length > 0 && !handingOff) {
      handingOff = true
      handOffFiber = yield* handOff(decision.release).pipe(
        withDynamo,
        Effect.ensuring(Effect.sync(() => (handingOff = false))),
        Effect.forkIn(scope)
      )
    }
  })

  const heartbeat = renewAll.pipe(
    Effect.andThen(announceSelf),
    Effect.andThen(rebalance),
    withDynamo,
    Effect.andThen(Clock.currentTimeMillis),
    Effect.map((now) => {
      heartbeatState = { lastSuccessAt: now, failure: undefined }
    }),
    Effect.catch((error) =>
      Effect.sync(() => {
        heartbeatState = { ...heartbeatState, failure: error._tag }
      }).pipe(Effect.andThen(Effect.logWarning(`lease heartbeat failed: ${error._tag}`)))
    )
  )

  yield* ProjectionLeases.ensureTable(location.table).pipe(withDynamo)
  yield* announceSelf.pipe(withDynamo)
  const heartbeatFiber = yield* heartbeat.pipe(
    Effect.repeat(Schedule.spaced(heartbeatMillis)),
    Effect.forkIn(scope)
  )

  const shutdown = Effect.gen(function*() {
    yield* Fiber.interrupt(heartbeatFiber)
    if (handOffFiber !== undefined) yield* Fiber.interrupt(handOffFiber)
    // Withdrawn first: the others then count one worker less as they take the released shards.
    yield* ProjectionLeases.withdraw(location, owner).pipe(Effect.ignore)
    const held = [...owned.values()]
    owned.clear()
    yield* Effect.forEach(
      held,
      (lease) => ProjectionLeases.release(location, lease.arn, lease.lease, owner, lease.pending).pipe(Effect.ignore),
      {
        discard: true
      }
    )
    yield* Effect.logInfo(`released ${held.length} shard leases`)
  }).pipe(withDynamo)

  return {
    coordinator,
    holds: (batch) => {
      const id = leaseId(batch.arn, batch.shardId)
      const held = owned.get(id)
      if (held === undefined || held.reading !== batch.reading) return false
      // Renewals kept failing: stop before the lease can look expired to others; the shard is taken again from its checkpoint.
      if (clock.currentTimeMillisUnsafe() >= held.validUntil) {
        drop(id, held)
        return false
      }
      return true
    },
    exclusive: (step) => permit.withPermit(step),
    tookOver: Effect.sync(() => {
      const was = takenOver
      takenOver = false
      return was
    }),
    status: Effect.sync(() => ({
      ownedShards: owned.size,
      ...seen,
      held: [...owned.values()].map((held) => ({ shardId: held.shardId, reading: held.reading })),
      heartbeat: heartbeatState
    })),
    shutdown
  } satisfies ShardLeasing
})
