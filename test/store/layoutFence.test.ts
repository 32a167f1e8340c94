/**
 * The layout lease on DynamoDB Local (see `LayoutLease`): a store already running with the old layout when a
 * migration begins keeps writing a cached key until its lease lapses, then fails with `LayoutSuperseded`; the
 * migration moves nothing before that, so the key is never forked and the new layout reads every acknowledged write.
 * And a store whose layout record cannot be read stops serving once its lease lapses, and serves again after.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { Layout } from "../../src/domain/Partitioning.ts"
import type { DataKeys } from "../../src/infra/crypto/DataKeys.ts"
import type { Dynamo } from "../../src/infra/Dynamo.ts"
import type { EventTable } from "../../src/infra/EventTable.ts"
import * as PartitionMigration from "../../src/programs/store/PartitionMigration.ts"
import { shortLease, shortLeaseOptions, writeUntilRefused } from "../support/Fencing.ts"
import { rawKeyItems } from "../support/RawTable.ts"
import { makeClient, openStore, tablePerFile, withLayout } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"
import { eventually } from "../worker/support.ts"

const { client, freshLocation } = tablePerFile("fence")
const bytes = (value: string) => new TextEncoder().encode(value)
const text = (value: Uint8Array) => new TextDecoder().decode(value)
const bucketed: Layout = [{ prefix: "/hot/", name: "hot", buckets: 4 }]

const lease = shortLease
const storeOptions = (partitions: Layout) => ({ partitions, ...shortLeaseOptions })

const withTable = <A, E>(
  location: TestTable,
  layout: Layout,
  effect: Effect.Effect<A, E, EventTable | DataKeys | Dynamo>
) => withLayout(location, layout, client, effect)

describe("the layout lease", () => {
  it.live(
    "fences a store running with the old layout: its writes stop before the key moves, and nothing forks",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const old = yield* openStore(location, { client, storeOptions: storeOptions([]) })
        yield* old.put({ key: "/hot/counter", value: bytes("0") })
        // The old store keeps writing its cached key while the migration is recorded and run.
        const writer = yield* Effect.forkChild(writeUntilRefused(old, "/hot/counter"))
        yield* Effect.sleep("200 millis")
        const startedAt = yield* Clock.currentTimeMillis
        const last = yield* withTable(
          location,
          bucketed,
          PartitionMigration.run({ concurrency: 2, lease })
        )
        expect(last).toMatchObject({ found: 1, moved: 1, failed: 0, done: true })
        // The runner waited out the old store's lease before moving anything.
        expect((yield* Clock.currentTimeMillis) - startedAt).toBeGreaterThanOrEqual(2_900)

        const { acked, failure } = yield* Fiber.join(writer).pipe(Effect.timeout("10 seconds"))
        expect(failure._tag).toBe("LayoutSuperseded")
        expect(failure.message).toContain("Restart it configured with the recorded layout")
        expect(acked.length).toBeGreaterThan(2)
        // Reads are fenced too, and a key the old store never wrote is not created in its old partition.
        expect((yield* Effect.flip(old.get("/hot/counter")))._tag).toBe("LayoutSuperseded")
        expect((yield* Effect.flip(old.put({ key: "/hot/new", value: bytes("x") })))._tag).toBe("LayoutSuperseded")
        expect(yield* Effect.promise(() => rawKeyItems(client, location, "/hot/new"))).toEqual([])

        // One dense history, every acknowledged write in it, nothing left in the old partition.
        const fresh = yield* openStore({ ...location, partitions: bucketed }, {
          client,
          storeOptions: storeOptions(bucketed)
        })
        expect(text((yield* fresh.get("/hot/counter")).value)).toBe(acked[acked.length - 1])
        const history = yield* Stream.runCollect(fresh.history("/hot/counter"))
        expect(history.map((event) => event.seq)).toEqual(history.map((_, index) => index + 1))
        expect(history.map((event) => event.value === undefined ? "" : text(event.value))).toEqual(["0", ...acked])
        expect(yield* Effect.promise(() => rawKeyItems(client, location, "/hot/counter"))).toEqual([])
      }),
    20_000
  )

  it.live(
    "a store opening in migrating mode waits out the old layout's lease, and keeps serving once it is settled",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const old = yield* openStore(location, { client, storeOptions: storeOptions([]) })
        yield* old.put({ key: "/hot/a", value: bytes("1") })
        yield* withTable(location, bucketed, PartitionMigration.begin)
        const beganAt = yield* Clock.currentTimeMillis
        const serving = yield* openStore({ ...location, partitions: bucketed }, {
          client,
          storeOptions: storeOptions(bucketed)
        })
        // It opened once keys may move: 1500 + 1500 ms after the migration was recorded.
        expect((yield* Clock.currentTimeMillis) - beganAt).toBeGreaterThanOrEqual(2_900)
        expect(text((yield* serving.get("/hot/a")).value)).toBe("1")
        yield* serving.put({ key: "/hot/a", value: bytes("2") })
        expect((yield* Effect.flip(old.get("/hot/a")))._tag).toBe("LayoutSuperseded")
        // The migration finishes: the store in migrating mode is still allowed (the record settled on its layout).
        yield* withTable(location, bucketed, PartitionMigration.run({ lease }))
        yield* Effect.sleep("1500 millis")
        expect(text((yield* serving.get("/hot/a")).value)).toBe("2")
        yield* serving.put({ key: "/hot/b", value: bytes("3") })
      }),
    20_000
  )

  it.live(
    "stops serving when the layout record cannot be read for a lease, and serves again once it can",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const failing = makeClient()
        let unreachable = false
        failing.middlewareStack.add(
          (next, context) => (args) => {
            const input = args.input as { readonly Key?: { readonly pk?: { readonly S?: string } } }
            if (unreachable && context.commandName === "GetItemCommand" && input.Key?.pk?.S?.endsWith("\u0000meta")) {
              return Promise.reject(new Error("connect ECONNREFUSED (the test cut the layout record off)"))
            }
            return next(args)
          },
          { step: "initialize", name: "cutLayoutRecord" }
        )
        yield* Effect.addFinalizer(() => Effect.sync(() => failing.destroy()))
        const store = yield* openStore(location, { client: failing, storeOptions: storeOptions(bucketed) })
        yield* store.put({ key: "/hot/x", value: bytes("1") })
        unreachable = true
        yield* Effect.sleep("2500 millis")
        const lapsed = yield* Effect.flip(store.get("/hot/x"))
        expect(lapsed._tag).toBe("StorageFailure")
        expect(lapsed.message).toContain("layout record")
        expect((yield* Effect.flip(store.put({ key: "/hot/x", value: bytes("2") })))._tag).toBe("StorageFailure")
        unreachable = false
        // Serving again takes the store's next read of the record (within a second of its lease's refresh).
        yield* eventually(
          "the store serves again",
          Effect.map(store.get("/hot/x"), (item) => expect(text(item.value)).toBe("1")),
          10_000
        )
        yield* store.put({ key: "/hot/x", value: bytes("3") })
      }),
    20_000
  )

  it.live(
    "a store paused past its lease (its event loop blocked) re-reads the record on its next call instead of failing it",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const store = yield* openStore(location, { client, storeOptions: storeOptions([]) })
        yield* store.put({ key: "/paused", value: bytes("1") })
        // Nothing runs meanwhile, the lease's re-reading included: as a process suspended, stopped in a debugger, or
        // starved of timers by work answered in microtasks.
        yield* Effect.sync(() => {
          const until = Date.now() + lease.leaseMillis + 500
          while (Date.now() < until) {
            // blocked
          }
        })
        expect(text((yield* store.get("/paused")).value)).toBe("1")
        yield* store.put({ key: "/paused", value: bytes("2") })
        expect(text((yield* store.get("/paused")).value)).toBe("2")
      }),
    20_000
  )

  it.effect("keeps real time: a TestClock moved past the lease neither lapses it nor stalls its re-reading", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const store = yield* openStore(location, { client, storeOptions: storeOptions([]) })
      yield* store.put({ key: "/t", value: bytes("1") })
      // The program's clock jumps far past the lease (as the contract's expiry tests move it).
      yield* TestClock.adjust("10 minutes")
      yield* store.put({ key: "/t", value: bytes("2") })
      expect(text((yield* store.get("/t")).value)).toBe("2")
      // Real time passes beyond the lease with the TestClock standing still: the re-reading still renews it.
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 2 * lease.leaseMillis)))
      yield* store.put({ key: "/t", value: bytes("3") })
      expect(text((yield* store.get("/t")).value)).toBe("3")
    }).pipe(Effect.scoped))
})
