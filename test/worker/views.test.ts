/**
 * Views kept by the worker: an index view (users by e-mail, in its own table
 * with a blind index and encrypted values) and an in-memory replicated view
 * with read-your-writes through waitFor.
 */
import { ScanCommand } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { WriteAcks } from "../../src/programs/store/WriteAcks.ts"
import * as IndexView from "../../src/programs/views/IndexView.ts"
import * as ReplicatedView from "../../src/programs/views/ReplicatedView.ts"
import { eventTableLayer, openStore, openStoreWithAcks } from "../support/TestStore.ts"
import { bytes, eventually, freshEnv, liveEvents, startWorker, text } from "./support.ts"

const user = (email: string, extra = "") => bytes(JSON.stringify({ email, extra }))
const emailOf = (value: Uint8Array) => (JSON.parse(text(value)) as { email?: string }).email

describe("views", () => {
  it.live("an index view files users by e-mail, backfills existing ones, follows changes and deletes, and stores no plaintext", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("view-index")
      const store = yield* openStore(env.location, { client: env.client })
      yield* store.put({ key: "/users/alice", value: user("alice@example.org", "secret-marker-1") })
      const services = yield* Layer.build(eventTableLayer(env.location, { client: env.client }))
      const byEmail = yield* IndexView.make({
        name: "by-email",
        prefix: "/users/",
        indexOf: (item) => emailOf(item.value)
      }).pipe(
        Effect.provide(services)
      )
      yield* byEmail.projection.rebuild!.pipe(Effect.provide(services))
      expect(text((yield* byEmail.view.get("alice@example.org")).value)).toContain("secret-marker-1")

      yield* startWorker(env, {
        group: "views",
        projections: [byEmail.projection],
        leaseMillis: 3000,
        resyncMillis: 300
      })
      yield* store.put({ key: "/users/bob", value: user("bob@example.org") })
      yield* store.put({ key: "/users/carol", value: user("shared@example.org") })
      yield* store.put({ key: "/users/dave", value: user("shared@example.org") })
      yield* eventually(
        "bob is filed",
        Effect.map(byEmail.view.get("bob@example.org"), (item) => expect(item.key).toBe("/users/bob"))
      )
      yield* eventually(
        "two users share an e-mail",
        Effect.map(
          byEmail.view.query("shared@example.org"),
          (items) => expect(items.map((item) => item.key)).toEqual(["/users/carol", "/users/dave"])
        )
      )

      yield* store.put({ key: "/users/bob", value: user("robert@example.org") })
      yield* store.delete("/users/carol")
      yield* eventually(
        "bob moved and carol left",
        Effect.gen(function*() {
          expect((yield* Effect.flip(byEmail.view.get("bob@example.org")))._tag).toBe("NotFound")
          expect((yield* byEmail.view.get("robert@example.org")).key).toBe("/users/bob")
          expect((yield* byEmail.view.query("shared@example.org")).map((item) => item.key)).toEqual(["/users/dave"])
        })
      )
      const lookup = yield* Effect.flip(byEmail.view.get("nobody@example.org"))
      expect(lookup.message).not.toContain("nobody@example.org")

      const scan = yield* Effect.promise(() =>
        env.client.send(new ScanCommand({ TableName: `${env.location.table}.view.by-email` }))
      )
      const dump = JSON.stringify(
        scan.Items,
        (_, value) => (value instanceof Uint8Array ? Buffer.from(value).toString("latin1") : value)
      )
      expect(scan.Items!.length).toBeGreaterThan(0)
      for (const plaintext of ["secret-marker-1", "alice@example.org", "robert@example.org", "shared@example.org"]) {
        expect(dump).not.toContain(plaintext)
      }
    }))

  it.live("rebuilt views drop keys whose tombstones were buried, and a replayed older event does not regress a replica", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("view-rebuild")
      const store = yield* openStore(env.location, { client: env.client })
      yield* store.put({ key: "/users/alice", value: user("alice@example.org") })
      yield* store.put({ key: "/users/bob", value: user("bob@example.org") })
      const services = yield* Layer.build(eventTableLayer(env.location, { client: env.client }))
      const byEmail = yield* IndexView.make({
        name: "rebuilt",
        prefix: "/users/",
        indexOf: (item) => emailOf(item.value)
      }).pipe(
        Effect.provide(services)
      )
      // Acknowledgements of no store: this test does not wait for its writes.
      const replica = yield* ReplicatedView.make("rebuilt", "/users/").pipe(
        Effect.provide(services),
        Effect.provide(WriteAcks.layer)
      )
      yield* byEmail.projection.rebuild!.pipe(Effect.provide(services))
      yield* replica.projection.rebuild!
      expect((yield* byEmail.view.get("bob@example.org")).key).toBe("/users/bob")

      // Bob is deleted while neither view runs, and the worker buries his tombstone: his live range is empty.
      yield* store.delete("/users/bob")
      const worker = yield* startWorker(env, { group: "view-rebuild" })
      yield* eventually(
        "bob buried",
        Effect.gen(function*() {
          expect((yield* liveEvents(env)).map((event) => event.key)).toEqual(["/users/alice"])
        })
      )
      yield* worker.stop
      yield* byEmail.projection.rebuild!.pipe(Effect.provide(services))
      yield* replica.projection.rebuild!
      expect((yield* Effect.flip(byEmail.view.get("bob@example.org")))._tag).toBe("NotFound")
      expect((yield* replica.view.items).map((item) => item.key)).toEqual(["/users/alice"])
      // The replica remembers how far bob got: a replayed put from before his deletion does not bring him back.
      yield* replica.projection.apply({
        key: "/users/bob",
        seq: 1,
        revision: "replayed-bob",
        op: "put",
        value: user("bob@example.org"),
        timestamp: 0
      })
      expect(Option.isNone(yield* replica.view.get("/users/bob"))).toBe(true)

      // After a rebuild the stream tail replays from the checkpoint: an older event of alice must not win.
      const newer = yield* store.put({ key: "/users/alice", value: user("alice@new.example.org") })
      yield* replica.projection.rebuild!
      yield* replica.projection.apply({
        key: "/users/alice",
        seq: 1,
        revision: "replayed",
        op: "put",
        value: user("alice@example.org"),
        timestamp: 0
      })
      const alice = yield* replica.view.get("/users/alice")
      expect(Option.map(alice, (item) => [item.revision, emailOf(item.value)])).toEqual(
        Option.some([newer.revision, "alice@new.example.org"])
      )
    }))

  it.live("a replicated view shows a write once waitFor(revision) returns, and drops deleted keys", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("view-replica")
      const { acks, store } = yield* openStoreWithAcks(env.location, { client: env.client })
      yield* store.put({ key: "/cfg/old", value: bytes("before the worker") })
      const services = yield* Layer.build(eventTableLayer(env.location, { client: env.client }))
      const replica = yield* ReplicatedView.make("cfg", "/cfg/").pipe(
        Effect.provide(services),
        Effect.provideService(WriteAcks, acks)
      )
      yield* startWorker(env, {
        group: "replica",
        projections: [replica.projection],
        leaseMillis: 3000,
        resyncMillis: 300
      })
      for (let round = 0; round < 5; round++) {
        const lease = yield* store.put({ key: `/cfg/k${round % 2}`, value: bytes(`v${round}`) })
        yield* replica.view.waitFor(lease.revision).pipe(Effect.timeout("15 seconds"))
        const item = yield* replica.view.get(`/cfg/k${round % 2}`)
        expect(Option.map(item, (found) => text(found.value))).toEqual(Option.some(`v${round}`))
      }
      expect((yield* replica.view.items).map((item) => item.key)).toEqual(["/cfg/k0", "/cfg/k1", "/cfg/old"])
      yield* store.delete("/cfg/old")
      yield* eventually(
        "the deleted key leaves the replica",
        Effect.map(replica.view.get("/cfg/old"), (found) => expect(Option.isNone(found)).toBe(true))
      )
    }))
})
