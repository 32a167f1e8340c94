/**
 * Two workers of one group share the stream through shard leases: when the
 * holder dies the other takes over once the lease expires; when the holder
 * shuts down gracefully it releases the lease and the other takes over at
 * once. Either way nothing is lost, and the lease's epoch goes up by one on
 * every hand-off.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import type { Event } from "../../src/domain/Event.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"
import { openStore } from "../support/TestStore.ts"
import type { Applied, Env, WorkerHandle } from "./support.ts"
import { bytes, eventually, expectComplete, freshEnv, openLease, recorder, startWorker, workload } from "./support.ts"

const prefix = "/t/"
const keys = Array.from({ length: 6 }, (_, i) => `${prefix}k${i}`)
const resyncMillis = 300

/** Two workers A and B on a fresh table; resolves once one of them holds the shard and has applied a first workload. */
const pair = (label: string, leaseMillis: number) =>
  Effect.gen(function*() {
    const env = yield* freshEnv(label)
    const store = yield* openStore(env.location, { client: env.client })
    const seen = recorder("takeover", [prefix])
    const a = yield* startWorker(env, { group: label, projections: [seen.forWorker("A")], leaseMillis, resyncMillis })
    const b = yield* startWorker(env, { group: label, projections: [seen.forWorker("B")], leaseMillis, resyncMillis })
    yield* workload(store, keys, 40, 7)
    yield* expectComplete(env, store, seen.log, prefix)
    const lease = yield* openLease(env, label)
    const holder = lease.owner === a.owner ? a : b
    const other = holder === a ? b : a
    expect([a.owner, b.owner]).toContain(lease.owner)
    // Only the holder applied anything: a shard is read by one worker of the group.
    const byName = holder === a ? "A" : "B"
    expect(new Set(seen.log.map((applied) => applied.by))).toEqual(new Set([byName]))
    return { env, store, seen, holder, other, otherName: holder === a ? "B" : "A", lease }
  })

/** Polls the lease until `owner` holds it; returns when that was seen. */
const ownedBy = (env: Env, group: string, owner: string, timeoutMillis: number) =>
  eventually(
    `lease owned by ${owner}`,
    Effect.gen(function*() {
      const lease = yield* openLease(env, group)
      expect(lease.owner).toBe(owner)
      return { lease, at: Date.now() }
    }),
    timeoutMillis,
    20
  )

describe("takeover", () => {
  it.live(
    "the holder is killed: the other worker takes over within about a lease period and nothing is lost",
    () =>
      Effect.gen(function*() {
        const leaseMillis = 1500
        const { env, store, seen, holder, other, otherName } = yield* pair("takeover-kill", leaseMillis)
        yield* holder.kill
        const killedAt = Date.now()
        // A crash releases nothing: the lease still names the dead holder and has not expired.
        const atKill = yield* openLease(env, "takeover-kill")
        expect(atKill.owner).toBe(holder.owner)
        expect(atKill.expiresAt).toBeGreaterThan(killedAt)

        // Written while nobody reads (in parallel, so the takeover is timed from the kill alone).
        const writing = yield* Effect.forkChild(workload(store, keys, 40, 8))
        const taken = yield* ownedBy(env, "takeover-kill", other.owner, 10_000)
        yield* Fiber.join(writing)
        expect(taken.at).toBeGreaterThanOrEqual(atKill.expiresAt)
        expect(taken.at - killedAt).toBeLessThan(leaseMillis + resyncMillis + 1500)
        expect(taken.lease.epoch).toBe(atKill.epoch + 1)

        const { newest } = yield* expectComplete(env, store, seen.log, prefix)
        expect([...newest.values()].reduce((sum, n) => sum + n, 0)).toBeGreaterThanOrEqual(80)
        expect(seen.log.some((applied) => applied.by === otherName)).toBe(true)
      }),
    60_000
  )

  it.live(
    "the holder shuts down gracefully: it releases the lease and the other takes over at once, well before the lease would expire",
    () =>
      Effect.gen(function*() {
        const leaseMillis = 6000
        const { env, store, seen, holder, other, otherName, lease } = yield* pair("takeover-graceful", leaseMillis)
        const stoppingAt = Date.now()
        yield* holder.stop
        const released = yield* openLease(env, "takeover-graceful")
        expect(released.owner === other.owner || released.expiresAt <= Date.now()).toBe(true)

        // The takeover is timed on its own: the writes after it take their own time (about 1.7 s for 40 here).
        const taken = yield* ownedBy(env, "takeover-graceful", other.owner, 5_000)
        expect(taken.at - stoppingAt).toBeLessThan(leaseMillis / 2)
        expect(taken.lease.epoch).toBe(lease.epoch + 1)
        yield* workload(store, keys, 40, 9)
        yield* expectComplete(env, store, seen.log, prefix)
        expect(seen.log.some((applied) => applied.by === otherName)).toBe(true)
      }),
    60_000
  )

  /**
   * ProjectionWorker.make registers the lease-release finalizer after forking the reader and the heartbeat
   * into the same scope, so on shutdown it runs first: the lease is given up while the reader is still in
   * the middle of a batch (and the heartbeat still runs). Here a batch is held in flight during shutdown.
   */
  it.live(
    "graceful shutdown releases the lease only after its in-flight batch, so no other worker applies it concurrently",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("takeover-inflight")
        const store = yield* openStore(env.location, { client: env.client })
        const group = "takeover-inflight"
        const log: Array<Applied> = []
        const entered = yield* Deferred.make<void>()
        const proceed = yield* Deferred.make<void>()
        let batchDoneAt = Number.POSITIVE_INFINITY
        const slow = Projection.make({
          name: "slow",
          prefixes: [prefix],
          apply: (event: Event) =>
            Effect.gen(function*() {
              log.push({ event, by: "A", at: Date.now() })
              if (event.key === `${prefix}block` && !(yield* Deferred.isDone(entered))) {
                yield* Deferred.succeed(entered, undefined)
                yield* Deferred.await(proceed)
                batchDoneAt = Date.now()
              }
            })
        })
        const a: WorkerHandle = yield* startWorker(env, { group, projections: [slow], leaseMillis: 3000, resyncMillis })
        yield* store.put({ key: `${prefix}block`, value: bytes("held") })
        yield* Deferred.await(entered).pipe(Effect.timeout("15 seconds"))

        const stopping = yield* Effect.forkChild(a.stop)
        yield* Effect.sleep(200)
        const duringBatch = yield* openLease(env, group)
        const readAt = Date.now()
        // Another worker of the group arrives while A's batch is still in flight.
        const seenByB = recorder("slow", [prefix], "B")
        yield* startWorker(env, { group, projections: [seenByB.projection], leaseMillis: 3000, resyncMillis })
        yield* eventually(
          "B applied the held event, or A's batch is held long enough",
          Effect.sync(() => {
            expect(seenByB.log.length).toBeGreaterThan(0)
          }),
          3000
        ).pipe(Effect.exit) // `eventually` dies when B (rightly) never gets the event in time
        const bAppliedDuringBatch = seenByB.log.length > 0
        yield* Deferred.succeed(proceed, undefined)
        yield* Fiber.join(stopping)

        expect({
          leaseReleasedDuringBatch: duringBatch.owner !== a.owner || duringBatch.expiresAt <= readAt,
          otherWorkerAppliedDuringBatch: bAppliedDuringBatch && seenByB.log[0]!.at < batchDoneAt
        }).toEqual({ leaseReleasedDuringBatch: false, otherWorkerAppliedDuringBatch: false })
      }),
    60_000
  )

  /**
   * The same finalizer order lets the heartbeat renew the lease after it was released: a slow answer to
   * the release request gives the heartbeat time to fire, and the renewal (conditional only on owner and
   * epoch, which a release keeps) sets the expiry a whole lease period ahead again.
   */
  it.live(
    "a graceful shutdown leaves the lease released even when the release request answers slowly",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("takeover-slow-release")
        const store = yield* openStore(env.location, { client: env.client })
        const group = "takeover-slow-release"
        const leaseMillis = 1500
        const isRelease = (command: string, input: unknown) =>
          command === "UpdateItemCommand" &&
          (input as { UpdateExpression?: string }).UpdateExpression === "SET expiresAt = :zero"
        const a = yield* startWorker(env, {
          group,
          leaseMillis,
          resyncMillis,
          responseDelay: (command, input) => (isRelease(command, input) ? leaseMillis : 0)
        })
        yield* store.put({ key: `${prefix}x`, value: bytes("x") })
        yield* eventually(
          "A holds the lease",
          Effect.flatMap(openLease(env, group), (lease) => Effect.sync(() => expect(lease.owner).toBe(a.owner))),
          10_000
        )
        yield* a.stop
        const after = yield* openLease(env, group)
        const now = Date.now()
        expect({ owner: after.owner === a.owner, expiresInMillis: Math.max(0, after.expiresAt - now) }).toEqual({
          owner: true,
          expiresInMillis: 0
        })
      }),
    60_000
  )
})
