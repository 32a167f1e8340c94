/**
 * Read-your-writes through a replicated view: after any acknowledged write of
 * this process, waiting on what the write returned (or, for the writes that
 * return no revision, on the process's own writes) resolves only once the
 * replica reflects every event of that write. DynamoDB Local, the real stream
 * and projection worker.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option } from "effect"
import { Action, Condition } from "../../src/domain/AtomicWrite.ts"
import { WriteAcks } from "../../src/programs/store/WriteAcks.ts"
import * as ReplicatedView from "../../src/programs/views/ReplicatedView.ts"
import { eventTableLayer, openStore, openStoreWithAcks } from "../support/TestStore.ts"
import type { Env } from "./support.ts"
import { bytes, eventually, freshEnv, liveEvents, startWorker, text } from "./support.ts"

const within = Effect.timeout("20 seconds")

/** A store instance and a replica of `prefix` given its acknowledgements, as one process would have them. */
const setUp = (env: Env, prefix: string) =>
  Effect.gen(function*() {
    const { acks, store } = yield* openStoreWithAcks(env.location, { client: env.client })
    const services = yield* Layer.build(eventTableLayer(env.location, { client: env.client }))
    const replica = yield* ReplicatedView.make(prefix.replaceAll("/", ""), prefix).pipe(
      Effect.provide(services),
      Effect.provideService(WriteAcks, acks)
    )
    return { store, acks, replica }
  })

const valueIn = (replica: ReplicatedView.ReplicatedView, key: string) =>
  Effect.map(replica.get(key), (item) => Option.getOrUndefined(Option.map(item, (found) => text(found.value))))

describe("read-your-writes", () => {
  it.live("waitFor(keepAlive's lease) returns only once the replica has the new expiry", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("ryw-keepalive")
      const { replica, store } = yield* setUp(env, "/ka/")
      yield* startWorker(env, { group: "ryw-ka", projections: [replica.projection] })
      const far = Date.now() + 3_600_000
      for (let round = 0; round < 5; round++) {
        const key = `/ka/k${round}`
        const lease = yield* store.put({ key, value: bytes(`v${round}`), expires: far })
        yield* within(replica.view.waitFor(lease.revision))
        const kept = yield* store.keepAlive(lease, far + 1000 * (round + 1))
        // The kept lease names the old revision; what the keep-alive appended is what is waited for.
        expect(kept.revision).toBe(lease.revision)
        yield* within(replica.view.waitFor(kept.revision))
        const item = yield* replica.view.get(key)
        expect(Option.map(item, (found) => found.expires), `round ${round}`).toEqual(
          Option.some(far + 1000 * (round + 1))
        )
      }
    }))

  it.live("waitFor(atomicWrite's revision) returns only once the replica has every key of the write", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("ryw-atomic")
      const { replica, store } = yield* setUp(env, "/aw/")
      yield* startWorker(env, { group: "ryw-aw", projections: [replica.projection] })
      for (let round = 0; round < 5; round++) {
        const keys = Array.from({ length: 64 }, (_, i) => `/aw/r${round}/k${String(i).padStart(2, "0")}`)
        const revision = yield* store.atomicWrite(
          keys.map((key) => ({ key, condition: Condition.whatever, action: Action.put(bytes(`${key}@${round}`)) }))
        )
        yield* within(replica.view.waitFor(revision))
        const missing: Array<string> = []
        for (const key of keys) {
          if ((yield* valueIn(replica.view, key)) !== `${key}@${round}`) missing.push(key)
        }
        expect(missing, `round ${round}`).toEqual([])
      }
    }))

  it.live("every write operation is visible in the replica once waited for", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("ryw-every")
      const { replica, store } = yield* setUp(env, "/ev/")
      yield* startWorker(env, { group: "ryw-every", projections: [replica.projection] })
      const view = replica.view
      const expectValue = (key: string, value: string | undefined) =>
        Effect.map(valueIn(view, key), (found) => expect(found, key).toBe(value))

      const created = yield* store.create({ key: "/ev/a", value: bytes("a1") })
      yield* within(view.waitFor(created))
      yield* expectValue("/ev/a", "a1")
      const put = yield* store.put({ key: "/ev/a", value: bytes("a2") })
      yield* within(view.waitFor(put))
      yield* expectValue("/ev/a", "a2")
      const updated = yield* store.update({ key: "/ev/a", value: bytes("a3") })
      yield* within(view.waitFor(updated.revision))
      yield* expectValue("/ev/a", "a3")
      const swapped = yield* store.compareAndSwap({ key: "/ev/a", value: bytes("a3") }, {
        key: "/ev/a",
        value: bytes("a4")
      })
      yield* within(view.waitFor(swapped))
      yield* expectValue("/ev/a", "a4")
      const conditional = yield* store.conditionalUpdate({
        key: "/ev/a",
        value: bytes("a5"),
        revision: swapped.revision
      })
      yield* within(view.waitFor(conditional))
      yield* expectValue("/ev/a", "a5")
      const expires = Date.now() + 3_600_000
      const kept = yield* store.keepAlive(conditional, expires)
      yield* within(view.waitFor(kept))
      expect(Option.map(yield* view.get("/ev/a"), (item) => item.expires)).toEqual(Option.some(expires))

      yield* store.conditionalDelete("/ev/a", kept.revision)
      yield* within(view.waitForOwnWrites(["/ev/a"]))
      yield* expectValue("/ev/a", undefined)

      const b = yield* store.put({ key: "/ev/b", value: bytes("b1") })
      yield* within(view.waitFor(b))
      yield* store.delete("/ev/b")
      yield* within(view.waitForOwnWrites(["/ev/b"]))
      yield* expectValue("/ev/b", undefined)

      // A write that spans the view's prefix and keys outside it: only the keys the replica holds are waited for.
      const range = ["/ev/r/1", "/ev/r/2", "/ev/r/3", "/outside/x"]
      const revision = yield* store.atomicWrite(
        range.map((key) => ({ key, condition: Condition.whatever, action: Action.put(bytes(key)) }))
      )
      yield* within(view.waitFor(revision))
      for (const key of range.slice(0, 3)) yield* expectValue(key, key)
      expect(yield* store.deleteRange("/ev/r/", "/ev/r/~")).toBe(3)
      yield* within(view.waitForOwnWrites())
      expect((yield* view.items).map((item) => item.key)).toEqual([])
    }))

  it.live("a write of another process is waited for as before: until an event with its revision is applied", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("ryw-other")
      const { replica } = yield* setUp(env, "/ot/")
      const other = yield* openStore(env.location, { client: env.client })
      yield* startWorker(env, { group: "ryw-other", projections: [replica.projection] })
      const lease = yield* other.put({ key: "/ot/k", value: bytes("theirs") })
      yield* within(replica.view.waitFor(lease))
      expect(yield* valueIn(replica.view, "/ot/k")).toBe("theirs")
      // Their deletes are not this process's writes: there is nothing of ours to wait for.
      yield* other.delete("/ot/k")
      yield* within(replica.view.waitForOwnWrites())
    }))

  it.live("a rebuild settles waits for the writes it read, a deleted key too (from its grave)", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("ryw-rebuild")
      const { replica, store } = yield* setUp(env, "/rb/")
      yield* store.put({ key: "/rb/kept", value: bytes("kept") })
      yield* store.put({ key: "/rb/gone", value: bytes("gone") })
      yield* store.delete("/rb/gone")
      // A worker without the view buries the tombstone: the replica never sees the key's seq.
      const worker = yield* startWorker(env, { group: "ryw-bury" })
      yield* eventually(
        "the tombstone is buried",
        Effect.map(liveEvents(env), (events) => expect(events.map((event) => event.key)).toEqual(["/rb/kept"]))
      )
      yield* worker.stop
      const waiting = yield* Effect.forkChild(replica.view.waitForOwnWrites())
      yield* replica.projection.rebuild!
      yield* within(Fiber.join(waiting))
      yield* within(replica.view.waitForOwnWrites(["/rb/gone", "/rb/kept"]))
      expect((yield* replica.view.items).map((item) => item.key)).toEqual(["/rb/kept"])
    }))
})
