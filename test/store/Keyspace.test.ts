import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema, SchemaTransformation, Stream } from "effect"
import type { Scope } from "effect"
import { gunzipSync, gzipSync } from "node:zlib"
import * as Keyspace from "../../src/programs/store/Keyspace.ts"
import { Store } from "../../src/programs/store/Store.ts"
import { eventually } from "../streams/Harness.ts"
import { openStore, tablePerFile } from "../support/TestStore.ts"

const { client, freshLocation } = tablePerFile("keyspace")

/** The store every test runs on, in a namespace of its own. Switching these tests to another store is this line. */
const openTestStore = () => openStore(freshLocation(), { client })

/** Runs a test body with a fresh store as the `Store` service. */
const withStore = <A, E>(body: Effect.Effect<A, E, Store | Scope.Scope>) =>
  Effect.flatMap(openTestStore(), (store) => Effect.provideService(body, Store, store))

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (text: string) => encoder.encode(text)
const text = (value: Uint8Array) => decoder.decode(value)

const User = Schema.Struct({
  name: Schema.String,
  age: Schema.Int,
  address: Schema.Struct({ city: Schema.String, zip: Schema.String }),
  joined: Schema.Date
})
type User = typeof User.Type

const user = (name: string, age = 30): User => ({
  name,
  age,
  address: { city: "Lyon", zip: "69001" },
  joined: new Date("2026-01-02T03:04:05.000Z")
})

const Users = Keyspace.make({ prefix: "/users/", key: Schema.String, value: User })

/** A branded id, checked: lower-case letters, digits and dashes. */
const UserId = Schema.String.pipe(Schema.check(Schema.isPattern(/^[a-z0-9-]+$/)), Schema.brand("UserId"))
const Accounts = Keyspace.make({ prefix: "/accounts/", key: UserId, value: Schema.Struct({ plan: Schema.String }) })

/** Order numbers: integers stored as 8 digits, so the store's (byte) order is numeric order. */
const OrderNo = Schema.String.pipe(
  Schema.check(Schema.isPattern(/^\d{8}$/)),
  Schema.decodeTo(
    Schema.Int.pipe(Schema.check(Schema.isBetween({ minimum: 0, maximum: 99_999_999 }))),
    SchemaTransformation.transform({
      decode: (digits: string) => Number(digits),
      encode: (n: number) => String(n).padStart(8, "0")
    })
  )
)
const Orders = Keyspace.make({ prefix: "/orders/", key: OrderNo, value: Schema.Struct({ total: Schema.Number }) })

const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.flip(effect)

/** The failure of an effect, which must be a `KeyspaceDecodeError`. */
const decodeFailure = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flip(effect).pipe(
    Effect.map((error) => {
      expect(error).toBeInstanceOf(Keyspace.KeyspaceDecodeError)
      return error as unknown as Keyspace.KeyspaceDecodeError
    })
  )

describe("Keyspace on the DynamoDB store", () => {
  it.live("every single-key operation round-trips typed keys and values", () =>
    withStore(Effect.gen(function*() {
      const store = yield* Store
      const created = yield* Users.create("alice", user("Alice"))
      expect(created.key).toBe("alice")
      const alice = yield* Users.get("alice")
      expect(alice).toEqual({ key: "alice", value: user("Alice"), revision: created.revision })
      expect(alice.value.joined).toBeInstanceOf(Date)
      // Stored as UTF-8 JSON of the schema's JSON form, under the prefix.
      expect(JSON.parse(text((yield* store.get("/users/alice")).value))).toEqual({
        name: "Alice",
        age: 30,
        address: { city: "Lyon", zip: "69001" },
        joined: "2026-01-02T03:04:05.000Z"
      })
      expect((yield* failure(Users.create("alice", user("Other"))))._tag).toBe("AlreadyExists")

      const put = yield* Users.put("alice", user("Alice", 31))
      expect((yield* Users.get("alice")).value.age).toBe(31)
      expect((yield* failure(Users.update("nobody", user("Nobody"))))._tag).toBe("NotFound")
      const updated = yield* Users.update("alice", user("Alice", 32))
      expect(updated.revision).not.toBe(put.revision)

      // compareAndSwap compares encoded bytes; the same value built in another field order still matches.
      const reordered: User = {
        joined: new Date("2026-01-02T03:04:05.000Z"),
        address: { zip: "69001", city: "Lyon" },
        age: 32,
        name: "Alice"
      }
      yield* Users.compareAndSwap("alice", reordered, user("Alice", 33))
      const mismatch = yield* failure(Users.compareAndSwap("alice", user("Alice", 32), user("Alice", 34)))
      expect(mismatch).toMatchObject({ _tag: "CompareFailed", key: "/users/alice", reason: "value-mismatch" })

      const current = yield* Users.get("alice")
      expect(current.value.age).toBe(33)
      const guarded = yield* Users.conditionalUpdate({ ...current, value: { ...current.value, age: 34 } })
      const stale = yield* failure(Users.conditionalUpdate({ ...current, value: { ...current.value, age: 99 } }))
      expect(stale._tag).toBe("IncorrectRevision")
      expect((yield* Users.get("alice")).value.age).toBe(34)

      const expires = Date.now() + 3_600_000
      const kept = yield* Users.keepAlive(guarded, expires)
      expect(kept).toEqual({ key: "alice", revision: guarded.revision })
      expect(yield* Users.get("alice")).toEqual({
        key: "alice",
        value: user("Alice", 34),
        expires,
        revision: guarded.revision
      })
      const withExpiry = yield* Users.put("bob", user("Bob"), { expires })
      expect((yield* Users.get("bob")).expires).toBe(expires)

      expect((yield* failure(Users.conditionalDelete("bob", guarded.revision)))._tag).toBe("IncorrectRevision")
      yield* Users.conditionalDelete("bob", withExpiry.revision)
      yield* Users.delete("alice")
      expect((yield* failure(Users.get("alice")))._tag).toBe("NotFound")
      expect((yield* failure(Users.delete("alice")))._tag).toBe("NotFound")
      expect(yield* store.getRange("/users/", "/users0")).toEqual([])
    })))

  it.live("bind gives the same operations on one store instance, needing no Store service", () =>
    Effect.scoped(Effect.gen(function*() {
      const store = yield* openTestStore()
      const users = Users.bind(store)
      const lease = yield* users.put("carol", user("Carol"))
      expect(yield* users.get("carol")).toEqual({ key: "carol", value: user("Carol"), revision: lease.revision })
      expect((yield* Stream.runCollect(users.items())).map((item) => item.key)).toEqual(["carol"])
      // The same records through the Store-requiring form.
      expect((yield* Effect.provideService(Users.get("carol"), Store, store)).revision).toBe(lease.revision)
    })))

  it.live("a key with a transformation (numbers as 8 digits) and a branded, checked key", () =>
    withStore(Effect.gen(function*() {
      const store = yield* Store
      for (const n of [42, 7, 1000, 9]) yield* Orders.put(n, { total: n * 10 })
      expect(yield* Orders.get(42)).toMatchObject({ key: 42, value: { total: 420 } })
      expect(yield* Orders.storeKey(42)).toBe("/orders/00000042")
      expect((yield* store.get("/orders/00000042")).value).toEqual(bytes(`{"total":420}`))
      // Fixed width: the store's byte order is numeric order.
      expect((yield* Orders.getRange()).map((item) => item.key)).toEqual([7, 9, 42, 1000])
      expect(yield* Orders.decodeKey("/orders/00000009")).toBe(9)

      const id = UserId.make("ann-1")
      yield* Accounts.put(id, { plan: "pro" })
      const account = yield* Accounts.get(id)
      expect(account).toMatchObject({ key: "ann-1", value: { plan: "pro" } })
      expect((yield* Accounts.getRange()).map((item) => item.key)).toEqual([id])
    })))

  it.live("a key its schema refuses, or that encodes to a key the store refuses, fails typed and writes nothing", () =>
    withStore(Effect.gen(function*() {
      const store = yield* Store
      const refused = yield* failure(Accounts.put("Not Valid!" as typeof UserId.Type, { plan: "pro" }))
      expect(refused).toBeInstanceOf(Keyspace.KeyspaceEncodeError)
      expect(refused).toMatchObject({ _tag: "KeyspaceEncodeError", keyspace: "/accounts/", part: "key" })
      expect(refused.message).toMatch(/cannot encode a key of keyspace \/accounts\/: Expected a string matching/)
      expect((yield* failure(Orders.put(-1, { total: 0 })))._tag).toBe("KeyspaceEncodeError")
      expect((yield* failure(Orders.put(1.5, { total: 0 })))._tag).toBe("KeyspaceEncodeError")

      const empty = yield* failure(Users.put("", user("Nobody")))
      expect(empty).toMatchObject({ _tag: "BadParameter", field: "key" })
      expect(empty.message).toContain("non-empty")
      expect(yield* failure(Users.put("a\u0000b", user("Nul")))).toMatchObject({ _tag: "BadParameter", field: "key" })
      expect(yield* failure(Users.get("x".repeat(2000)))).toMatchObject({ _tag: "BadParameter", field: "key" })
      expect(yield* failure(Users.getRange({ from: "" }))).toMatchObject({ _tag: "BadParameter", field: "from" })

      const nowhere = Keyspace.make({ prefix: "", key: Schema.String, value: Schema.String })
      expect(yield* failure(nowhere.put("k", "v"))).toMatchObject({ _tag: "BadParameter", field: "prefix" })
      expect(yield* failure(Stream.runCollect(nowhere.watch()))).toMatchObject({
        _tag: "BadParameter",
        field: "prefix"
      })

      expect(yield* store.getRange("/", "/\u{10FFFF}")).toEqual([])
    })))

  it.live("a value its schema refuses fails before any I/O, naming the field, and leaves the stored value as it was", () =>
    withStore(Effect.gen(function*() {
      const store = yield* Store
      const bad = { ...user("Dan"), age: 1.5 }
      const error = yield* failure(Users.put("dan", bad))
      expect(error).toMatchObject({ _tag: "KeyspaceEncodeError", key: "/users/dan", part: "value", path: ["age"] })
      // The message names the field, never the value (values are what the store encrypts).
      expect(error.message).toBe(`cannot encode the value of /users/dan: Expected an integer at ["age"]`)
      expect((yield* failure(store.get("/users/dan")))._tag).toBe("NotFound")

      const lease = yield* Users.put("dan", user("Dan"))
      const missingCity = { ...user("Dan"), address: { zip: "1" } } as unknown as User
      const attempts: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string }, Store>> = [
        Users.put("dan", missingCity),
        Users.create("eve", missingCity),
        Users.update("dan", bad),
        Users.compareAndSwap("dan", user("Dan"), bad),
        Users.compareAndSwap("dan", bad, user("Dan", 50)),
        Users.conditionalUpdate({ key: "dan", value: bad, revision: lease.revision })
      ]
      for (const attempt of attempts) {
        expect((yield* failure(attempt))._tag).toBe("KeyspaceEncodeError")
      }
      expect(yield* failure(Users.put("dan", missingCity))).toMatchObject({ path: ["address", "city"] })
      expect(yield* Users.get("dan")).toEqual({ key: "dan", value: user("Dan"), revision: lease.revision })
      expect((yield* failure(Users.get("eve")))._tag).toBe("NotFound")
      expect((yield* Stream.runCollect(store.history("/users/dan"))).length).toBe(1)
    })))

  it.live("stored bytes that do not decode are a typed KeyspaceDecodeError naming key, part and field", () =>
    withStore(Effect.gen(function*() {
      const store = yield* Store
      yield* store.put({
        key: "/users/frank",
        value: bytes(
          `{"name":"Frank","age":"old","address":{"city":"Nice","zip":6000},"joined":"2026-01-01T00:00:00.000Z"}`
        )
      })
      const wrongTypes = yield* decodeFailure(Users.get("frank"))
      expect(wrongTypes).toBeInstanceOf(Keyspace.KeyspaceDecodeError)
      expect(wrongTypes).toMatchObject({
        _tag: "KeyspaceDecodeError",
        key: "/users/frank",
        part: "value",
        path: ["age"]
      })
      expect(wrongTypes.reason).toBe(`Expected number at ["age"]; Expected string at ["address"]["zip"]`)
      expect(wrongTypes.message).toBe(`cannot decode the value of /users/frank: ${wrongTypes.reason}`)

      yield* store.put({ key: "/users/gina", value: bytes("not json") })
      const notJson = yield* decodeFailure(Users.get("gina"))
      expect(notJson).toMatchObject({ _tag: "KeyspaceDecodeError", key: "/users/gina", part: "value", path: [] })
      expect(notJson.reason).toBe("the bytes are not UTF-8 JSON")
      expect(notJson.message).not.toContain("not json")

      // A range fails at the first record that does not decode (here: frank, then gina in key order).
      expect(yield* failure(Users.getRange())).toMatchObject({ _tag: "KeyspaceDecodeError", key: "/users/frank" })

      // A key under the prefix that the key schema refuses.
      yield* store.put({ key: "/orders/12", value: bytes(`{"total":1}`) })
      yield* Orders.put(5, { total: 5 })
      const badKey = yield* decodeFailure(Orders.getRange())
      expect(badKey).toMatchObject({ _tag: "KeyspaceDecodeError", key: "/orders/12", part: "key", path: [] })
      expect(badKey.message).toMatch(/^cannot decode the key of \/orders\/12: Expected a string matching/)
      // What a caller can do about it: read the raw range and decode each record itself.
      const raw = yield* store.getRange(...(yield* Effect.all([Orders.storeKey(0), Orders.storeKey(99_999_999)])))
      const decoded = yield* Effect.forEach(raw, (item) => Effect.result(Orders.decodeItem(item)))
      expect(decoded.map((result) => result._tag)).toEqual(["Success", "Failure"])
    })))

  it.live("ranges: whole keyspace in order, both directions, inclusive typed bounds, limit; nothing outside the prefix", () =>
    withStore(Effect.gen(function*() {
      const store = yield* Store
      for (const name of ["d", "b", "e", "a", "c"]) yield* Users.put(name, user(name.toUpperCase()))
      // Neighbours that are not records of the keyspace: the prefix itself, the key after it, another prefix.
      for (const key of ["/users/", "/users0", "/usersx/a", "/user"]) yield* store.put({ key, value: bytes("{}") })

      const keys = (options?: Keyspace.RangeOptions<string>) =>
        Stream.runCollect(Users.items(options)).pipe(Effect.map((items) => items.map((item) => item.key)))
      expect(yield* keys()).toEqual(["a", "b", "c", "d", "e"])
      expect(yield* keys({ descending: true })).toEqual(["e", "d", "c", "b", "a"])
      expect(yield* keys({ from: "b", to: "d" })).toEqual(["b", "c", "d"])
      expect(yield* keys({ from: "b", to: "d", descending: true })).toEqual(["d", "c", "b"])
      expect(yield* keys({ from: "bb" })).toEqual(["c", "d", "e"])
      expect(yield* keys({ to: "c" })).toEqual(["a", "b", "c"])
      expect(yield* keys({ limit: 2 })).toEqual(["a", "b"])
      expect(yield* keys({ limit: 2, descending: true })).toEqual(["e", "d"])
      expect(yield* keys({ from: "d", to: "b" })).toEqual([])
      expect(yield* failure(keys({ limit: -1 }))).toMatchObject({ _tag: "BadParameter", field: "limit" })

      const items = yield* Users.getRange({ from: "c", limit: 1 })
      expect(items).toEqual([{ key: "c", value: user("C"), revision: (yield* Users.get("c")).revision }])

      expect(yield* Users.deleteRange({ from: "b", to: "c" })).toBe(2)
      expect(yield* keys()).toEqual(["a", "d", "e"])
      expect(yield* Users.deleteRange()).toBe(3)
      expect(yield* keys()).toEqual([])
      // The neighbours are untouched.
      expect((yield* store.getRange("/user", "/usersx/a")).map((item) => item.key)).toEqual([
        "/user",
        "/users/",
        "/users0",
        "/usersx/a"
      ])
    })))

  it.live("history and getAt are decoded", () =>
    withStore(Effect.gen(function*() {
      const first = yield* Users.put("hank", user("Hank", 40))
      yield* Users.put("hank", user("Hank", 41))
      yield* Users.keepAlive({ key: "hank", revision: "" }, Date.now() + 60_000)
      yield* Users.delete("hank")
      const events = yield* Stream.runCollect(Users.history("hank"))
      expect(events.map((event) => [event.key, event.seq, event.op, event.value?.age])).toEqual([
        ["hank", 1, "put", 40],
        ["hank", 2, "put", 41],
        ["hank", 3, "keep-alive", 41],
        ["hank", 4, "delete", undefined]
      ])
      expect(events[0]).toMatchObject({ revision: first.revision, timestamp: expect.any(Number) })
      expect(events[0]!.value).toEqual(user("Hank", 40))
      expect(events[2]!.valueRevision).toEqual(expect.any(String))
      expect(yield* Users.getAt("hank", { _tag: "Revision", revision: first.revision })).toEqual({
        key: "hank",
        value: user("Hank", 40),
        revision: first.revision
      })

      const store = yield* Store
      yield* store.put({ key: "/users/ivy", value: bytes("[]") })
      expect(yield* failure(Stream.runCollect(Users.history("ivy")))).toMatchObject({
        _tag: "KeyspaceDecodeError",
        key: "/users/ivy"
      })
    })))

  it.live("custom codecs: bare text, gzip'd JSON; a codec's failure is a typed error", () =>
    withStore(Effect.gen(function*() {
      const store = yield* Store
      const Notes = Keyspace.make({
        prefix: "/notes/",
        key: Schema.String,
        value: Schema.String,
        codec: Keyspace.textCodec
      })
      yield* Notes.put("n1", "héllo, wörld")
      expect(text((yield* store.get("/notes/n1")).value)).toBe("héllo, wörld")
      expect((yield* Notes.get("n1")).value).toBe("héllo, wörld")
      yield* store.put({ key: "/notes/n2", value: new Uint8Array([0xff, 0xfe]) })
      expect(yield* failure(Notes.get("n2"))).toMatchObject({
        _tag: "KeyspaceDecodeError",
        part: "value",
        reason: "the bytes are not UTF-8 text"
      })
      const Counts = Keyspace.make({
        prefix: "/counts/",
        key: Schema.String,
        value: Schema.Number,
        codec: Keyspace.textCodec
      })
      expect(yield* failure(Counts.put("c", 1))).toMatchObject({
        _tag: "KeyspaceEncodeError",
        reason: "the text codec stores strings, not number"
      })

      const gzipJson = Keyspace.makeCodec({
        encode: (json) => gzipSync(JSON.stringify(json)),
        decode: (stored) => JSON.parse(gunzipSync(stored).toString("utf8"))
      })
      const Archive = Keyspace.make({ prefix: "/archive/", key: Schema.String, value: User, codec: gzipJson })
      yield* Archive.put("jo", user("Jo"))
      const stored = (yield* store.get("/archive/jo")).value
      expect([stored[0], stored[1]]).toEqual([0x1f, 0x8b])
      expect((yield* Archive.get("jo")).value).toEqual(user("Jo"))
      yield* Archive.compareAndSwap("jo", user("Jo"), user("Jo", 31))
      expect((yield* Archive.get("jo")).value.age).toBe(31)
      yield* store.put({ key: "/archive/broken", value: bytes("plain") })
      const broken = yield* decodeFailure(Archive.get("broken"))
      expect(broken).toMatchObject({ _tag: "KeyspaceDecodeError", key: "/archive/broken", part: "value", path: [] })
      expect(broken.reason).toMatch(/header/)
    })))

  it.live("watch delivers decoded Put, Delete and Expire of the keyspace only; an undecodable change fails it with its position", () =>
    withStore(Effect.gen(function*() {
      const store = yield* Store
      const seen: Array<Keyspace.WatchEvent<number, { readonly total: number }>> = []
      let failed: unknown
      yield* Orders.watch().pipe(
        Stream.runForEach((event) => Effect.sync(() => seen.push(event))),
        Effect.catch((error) => Effect.sync(() => (failed = error))),
        Effect.forkScoped
      )
      expect(yield* eventually(() => seen.length > 0)).toBe(true)
      expect(seen[0]).toEqual({ _tag: "Init" })

      const put = yield* Orders.put(1, { total: 10 })
      yield* store.put({ key: "/ordersx", value: bytes("{}") }) // not under the prefix
      yield* store.put({ key: "/orders/", value: bytes("{}") }) // the prefix itself: no key of the keyspace
      yield* Orders.delete(1)
      yield* Orders.put(2, { total: 20 }, { expires: Date.now() + 300 })
      yield* Effect.sleep(500)
      expect((yield* failure(Orders.get(2)))._tag).toBe("NotFound") // the first reader records the expiry
      expect(yield* eventually(() => seen.some((event) => event._tag === "Expire"))).toBe(true)
      const changes = seen.slice(1)
      expect(
        changes.map((
          event
        ) => [event._tag, event._tag === "Put" ? event.item.key : event._tag === "Init" ? 0 : event.key])
      )
        .toEqual([["Put", 1], ["Delete", 1], ["Put", 2], ["Expire", 2]])
      expect(changes[0]).toMatchObject({
        _tag: "Put",
        item: { key: 1, value: { total: 10 }, revision: put.revision },
        seq: 1
      })
      expect(changes[2]).toMatchObject({
        _tag: "Put",
        item: { key: 2, value: { total: 20 }, expires: expect.any(Number) }
      })

      // An undecodable record ends the watch with a typed error; resuming from its position goes on after it.
      yield* store.put({ key: "/orders/00000003", value: bytes(`{"total":"lots"}`) })
      expect(yield* eventually(() => failed !== undefined)).toBe(true)
      expect(failed).toMatchObject({
        _tag: "KeyspaceDecodeError",
        key: "/orders/00000003",
        part: "value",
        path: ["total"]
      })
      const position = (failed as Keyspace.KeyspaceDecodeError).position
      expect(position).toBeDefined()
      const resumed: Array<Keyspace.WatchEvent<number, { readonly total: number }>> = []
      yield* Orders.watch({ resumeFrom: position }).pipe(
        Stream.runForEach((event) => Effect.sync(() => resumed.push(event))),
        Effect.forkScoped
      )
      yield* Orders.put(4, { total: 40 })
      expect(yield* eventually(() => resumed.some((event) => event._tag === "Put"))).toBe(true)
      yield* Effect.sleep(300)
      expect(resumed.filter((event) => event._tag !== "Init")).toMatchObject([{
        _tag: "Put",
        item: { key: 4, value: { total: 40 } }
      }])
    })))
})
