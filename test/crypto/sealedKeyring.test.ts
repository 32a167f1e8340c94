/**
 * Key management with sealed keys (see `SealedKeys`). Shredding a sealed key's scope: its real key is encrypted
 * under the scope's data key, so once the scope is shredded nothing in the table reveals it any more, while other
 * scopes still read back theirs; scopes of sealed keys are drawn from their stored keys, so no data key item names
 * a sealed segment either. Re-wrapping: the key sealing key is a data key like the others, re-wrapped with them.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { Shredded } from "../../src/domain/Errors.ts"
import * as Key from "../../src/domain/Key.ts"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import { DataKeys, scopeByDepth } from "../../src/infra/crypto/DataKeys.ts"
import { partitionOf } from "../../src/infra/crypto/DataKeyStore.ts"
import { Keyring, KeyringError } from "../../src/infra/crypto/Keyring.ts"
import * as RawAesKeyring from "../../src/infra/crypto/RawAesKeyring.ts"
import * as EventRecord from "../../src/infra/EventRecord.ts"
import { rawKeyItems, rawPartition } from "../support/RawTable.ts"
import { eventTableLayer, openStore, storedKeyOf, tablePerFile } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"

const { client, freshLocation, tableName } = tablePerFile("sealshred")
const bytes = (value: string) => new TextEncoder().encode(value)
const sealed: ReadonlyArray<SealedPrefix> = [{ prefix: "/users/", seal: "segment" }]

/** The events of a key's stored form, decoded as far as they still can be (a shredded value is marked, not a failure). */
const decodedEvents = (at: TestTable, key: string) =>
  Effect.gen(function*() {
    const stored = yield* storedKeyOf(at, sealed, key, client)
    const items = yield* Effect.promise(() => rawKeyItems(client, at, stored))
    const context = yield* Layer.build(eventTableLayer(at, { client }))
    return yield* Effect.forEach(items, (item) =>
      EventRecord.decode(at, item, { tolerateShredded: true }).pipe(
        Effect.provideService(DataKeys, Context.get(context, DataKeys))
      ))
  }).pipe(Effect.scoped)

describe("shredding a sealed key's scope", () => {
  it.live("makes its real key unrecoverable; other scopes keep theirs; no data key names a sealed segment", () =>
    Effect.gen(function*() {
      const at = freshLocation()
      // The shared test keyring: the one `storedKeyOf` seals with too.
      const options = { client, dataKeyPolicy: { scopeOf: scopeByDepth(2) }, storeOptions: { sealed } }
      const store = yield* openStore(at, options)
      yield* store.put({ key: "/users/alice@example.com/a", value: bytes("alice a") })
      yield* store.put({ key: "/users/alice@example.com/b", value: bytes("alice b") })
      yield* store.delete("/users/alice@example.com/b")
      yield* store.put({ key: "/users/bob@example.com/a", value: bytes("bob a") })

      // Before: every event reveals its real key.
      const before = yield* decodedEvents(at, "/users/alice@example.com/b")
      expect(before.map((event) => [event.realKey, event.op])).toEqual([
        ["/users/alice@example.com/b", "delete"],
        ["/users/alice@example.com/b", "put"]
      ])
      // Scopes are stored sealed: no data key item names the user.
      const dataKeyItems = yield* Effect.promise(() => rawPartition(client, tableName(), partitionOf(at.namespace)))
      const scopes = dataKeyItems.map((item) => item["scope"]?.S ?? "")
      expect(scopes.filter((scope) => scope.startsWith("/users/\u0001"))).toHaveLength(2)
      expect(scopes.filter((scope) => scope.includes("alice") || scope.includes("bob"))).toEqual([])

      expect(yield* store.shred("/users/alice@example.com")).toBe(1)

      const fresh = yield* openStore(at, options)
      for (const reader of [store, fresh]) {
        const error = yield* Effect.flip(reader.get("/users/alice@example.com/a"))
        expect(error).toBeInstanceOf(Shredded)
        expect(error).toMatchObject({ key: "/users/alice@example.com/a", seq: 1 })
        expect((error as Shredded).scope.startsWith("/users/\u0001")).toBe(true)
        expect((yield* reader.get("/users/bob@example.com/a")).key).toBe("/users/bob@example.com/a")
      }
      // After: alice's events name only their sealed key; bob's still reveal his.
      for (const key of ["/users/alice@example.com/a", "/users/alice@example.com/b"]) {
        const events = yield* decodedEvents(at, key)
        expect(events.length).toBeGreaterThan(0)
        for (const event of events) {
          expect(event.realKey).toBeUndefined()
          expect(event.shredded).toBeDefined()
          expect(event.key.startsWith("/users/\u0001")).toBe(true)
        }
      }
      const bob = yield* decodedEvents(at, "/users/bob@example.com/a")
      expect(bob.map((event) => event.realKey)).toEqual(["/users/bob@example.com/a"])
      // Writes to the shredded scope start over under a new data key, under the same sealed key.
      yield* store.put({ key: "/users/alice@example.com/a", value: bytes("alice again") })
      const again = yield* fresh.getRange("/users/alice@example.com/", Key.rangeEnd("/users/alice@example.com/"))
      expect(again.map((item) => item.key)).toEqual(["/users/alice@example.com/a"])
    }))
})

describe("re-wrapping a store with sealed keys", () => {
  it.live("re-wraps the key sealing key with the data keys: afterwards only the new keyring finds sealed keys", () =>
    Effect.gen(function*() {
      const at = freshLocation()
      const keyring = (id: string) =>
        Layer.succeed(
          Keyring,
          RawAesKeyring.make([{ id, material: Redacted.make(new Uint8Array(randomBytes(32))) }])
        )
      const [a, b] = [keyring("key-a"), keyring("key-b")]
      const open = (layer: Layer.Layer<Keyring>) => openStore(at, { client, keyring: layer, storeOptions: { sealed } })
      const store = yield* open(a)
      yield* store.put({ key: "/users/alice@example.com/a", value: bytes("alice a") })
      // The value's data key and the key sealing key.
      expect(yield* store.rewrap(Context.get(yield* Layer.build(b), Keyring))).toBe(2)
      const items = yield* Effect.promise(() => rawPartition(client, tableName(), partitionOf(at.namespace)))
      expect(items.map((item) => item["wrapped"]!.L!.map((copy) => copy.M!["k"]!.S))).toEqual([["key-b"], ["key-b"]])
      expect((yield* (yield* open(b)).get("/users/alice@example.com/a")).key).toBe("/users/alice@example.com/a")
      // Under the old keyring the key cannot even be sealed: a typed keyring failure, before anything is read.
      const error = yield* Effect.flip((yield* open(a)).get("/users/alice@example.com/a"))
      expect(error).toBeInstanceOf(KeyringError)
      expect(error).toMatchObject({ failure: "no-matching-key" })
    }))
})
