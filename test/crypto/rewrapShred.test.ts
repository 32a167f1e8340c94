/**
 * Re-wrapping data keys under another keyring (events untouched, byte for
 * byte) and shredding the data keys of a scope (its values read as `Shredded`
 * forever, the events stay, other scopes are unaffected), on DynamoDB Local.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted, Result } from "effect"
import { randomBytes } from "node:crypto"
import { DecryptionFailed, Shredded } from "../../src/domain/Errors.ts"
import * as Key from "../../src/domain/Key.ts"
import { scopeByDepth } from "../../src/infra/crypto/DataKeys.ts"
import { partitionOf } from "../../src/infra/crypto/DataKeyStore.ts"
import { Keyring, KeyringError } from "../../src/infra/crypto/Keyring.ts"
import * as MultiKeyring from "../../src/infra/crypto/MultiKeyring.ts"
import * as RawAesKeyring from "../../src/infra/crypto/RawAesKeyring.ts"
import * as ValueCipher from "../../src/infra/crypto/ValueCipher.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import type { Store } from "../../src/programs/store/Store.ts"
import { rawKeyItems, rawPartition } from "../support/RawTable.ts"
import { openStore, tablePerFile } from "../support/TestStore.ts"
import type { OpenStoreOptions, TestTable } from "../support/TestStore.ts"

const { client, tableName, freshLocation } = tablePerFile("rs")
const bytes = (value: string) => new TextEncoder().encode(value)
const text = (value: Uint8Array) => new TextDecoder().decode(value)
const rawKeyring = (id: string) =>
  RawAesKeyring.make([{ id, material: Redacted.make(new Uint8Array(randomBytes(32))) }])

/** Every raw item of a partition. */
const partition = (pk: string) => Effect.promise(() => rawPartition(client, tableName(), pk))

/** A canonical text of every event item of a namespace, bytes in hex, to compare before and after. */
const eventSnapshot = (at: TestTable) =>
  Effect.map(partition(at.namespace), (items) =>
    items.map((item) =>
      Object.keys(item).sort().map((name) => {
        const value = item[name]!
        return `${name}=${value.B !== undefined ? Buffer.from(value.B).toString("hex") : JSON.stringify(value)}`
      }).join(",")
    ).sort().join("\n"))

const dataKeyItems = (at: TestTable) => partition(partitionOf(at.namespace))

/** The data key id a key's newest event was encrypted under (sort keys put a key's newest event first). */
const dataKeyIdOf = (at: TestTable, key: string) =>
  Effect.promise(async () => {
    const [newest] = await rawKeyItems(client, at, key)
    return Result.getOrThrow(ValueCipher.keyIdOf(newest![Attr.value]!.B!))
  })

const open = (at: TestTable, keyring: Keyring["Service"], options: OpenStoreOptions = {}) =>
  openStore(at, { ...options, client, keyring: Layer.succeed(Keyring, keyring) })

const readAll = (store: Store["Service"], prefix: string) =>
  Effect.map(
    store.getRange(prefix, Key.rangeEnd(prefix)),
    (items) => items.map((item) => [item.key, text(item.value)] as const)
  )

// Regression (found in src/infra/crypto/DataKeyStore.ts:125 replaceWrapped "SET wrapped = :wrapped" and :146 shred
// "REMOVE wrapped"): `wrapped` is a DynamoDB reserved word, so every store.rewrap and store.shred failed with
// StorageFailure ("ValidationException: Invalid UpdateExpression: Attribute name is a reserved keyword; reserved
// keyword: wrapped") as soon as one data key existed. Every rewrap and shred test below goes through those updates.
describe("rewrap", () => {
  it.live("re-wraps every data key under keyring B, leaving the events byte-identical; then only B reads", () =>
    Effect.gen(function*() {
      const at = freshLocation()
      const [a, b] = [rawKeyring("key-a"), rawKeyring("key-b")]
      const store = yield* open(at, a, { dataKeyPolicy: { maxValues: 5 } })
      const expected = Array.from({ length: 12 }, (_, i) => [`/r/${String(i).padStart(2, "0")}`, `value ${i}`] as const)
      for (const [key, value] of expected) yield* store.put({ key, value: bytes(value) })
      expect(yield* dataKeyItems(at)).toHaveLength(3)
      const before = yield* eventSnapshot(at)

      expect(yield* store.rewrap(b)).toBe(3)
      expect(yield* eventSnapshot(at)).toBe(before)
      const keyIds = (yield* dataKeyItems(at)).map((item) => item["wrapped"]!.L!.map((copy) => copy.M!["k"]!.S))
      expect(keyIds).toEqual([["key-b"], ["key-b"], ["key-b"]])

      // a fresh store with only B reads everything; one with only A reads nothing
      expect(yield* readAll(yield* open(at, b), "/r/")).toEqual(expected)
      const onlyA = yield* open(at, a)
      for (const [key] of expected) {
        const error = yield* Effect.flip(onlyA.get(key))
        expect(error).toBeInstanceOf(DecryptionFailed)
        expect(error).toMatchObject({ _tag: "DecryptionFailed", key, seq: 1 })
      }
      expect(yield* Effect.flip(onlyA.getRange("/r/", Key.rangeEnd("/r/")))).toMatchObject({
        _tag: "DecryptionFailed",
        key: "/r/00"
      })

      // the store that re-wrapped keeps reading, and wraps data keys it makes from now on under B
      expect(yield* readAll(store, "/r/")).toEqual(expected)
      const more = Array.from({ length: 6 }, (_, i) => [`/s/${i}`, `more ${i}`] as const)
      for (const [key, value] of more) yield* store.put({ key, value: bytes(value) })
      expect(yield* dataKeyItems(at)).toHaveLength(4)
      expect(yield* readAll(yield* open(at, b), "/s/")).toEqual(more)
      expect(yield* Effect.flip((yield* open(at, a)).get("/s/5"))).toMatchObject({
        _tag: "DecryptionFailed",
        key: "/s/5"
      })
    }))

  it.live("re-wrapping under a multi-keyring lets either keyring alone read again, and counts each data key once", () =>
    Effect.gen(function*() {
      const at = freshLocation()
      const [a, b] = [rawKeyring("key-a"), rawKeyring("key-b")]
      const store = yield* open(at, a, { dataKeyPolicy: { scopeOf: scopeByDepth(1) } })
      for (const key of ["/x/1", "/y/1", "/z/1"]) yield* store.put({ key, value: bytes(key) })
      const before = yield* eventSnapshot(at)
      expect(yield* store.rewrap(MultiKeyring.make(b, [a]))).toBe(3)
      expect(yield* eventSnapshot(at)).toBe(before)
      for (const only of [a, b]) {
        expect(yield* readAll(yield* open(at, only), "/")).toEqual([["/x/1", "/x/1"], ["/y/1", "/y/1"], [
          "/z/1",
          "/z/1"
        ]])
      }
    }))

  // Found in src/infra/crypto/DataKeys.ts `rewrap` (:207-224): it unwraps every active data key with the instance's
  // current keyring and switches to the new one only at the end. If it stops part-way (a throttled or unavailable
  // KMS in a long re-wrap), the keys already re-wrapped are wrapped under the new keyring alone, so a retry of the
  // same rewrap fails on the first of them with no-matching-key, forever, in this instance. Expected: a retry
  // finishes (e.g. skip keys already wrapped under `next`, or unwrap with the old and new keyring).
  it.live("a rewrap that failed part-way can be retried to completion", () =>
    Effect.gen(function*() {
      const at = freshLocation()
      const [a, b] = [rawKeyring("key-a"), rawKeyring("key-b")]
      let unwraps = 0
      const flakyA = Keyring.of({
        ...a,
        unwrap: (wrapped, ctx) =>
          ++unwraps === 2
            ? Effect.fail(new KeyringError({ keyring: "flaky", failure: "throttled", reason: "slow down" }))
            : a.unwrap(wrapped, ctx)
      })
      const store = yield* open(at, flakyA, { dataKeyPolicy: { maxValues: 1 } })
      for (const key of ["/f/1", "/f/2", "/f/3"]) yield* store.put({ key, value: bytes(key) })
      expect(yield* Effect.flip(store.rewrap(b))).toMatchObject({ _tag: "KeyringError", failure: "throttled" })
      expect(yield* store.rewrap(b)).toBeGreaterThanOrEqual(2)
      expect(yield* readAll(yield* open(at, b), "/f/")).toEqual([["/f/1", "/f/1"], ["/f/2", "/f/2"], ["/f/3", "/f/3"]])
    }))
})

/** Reading `key` fails with `Shredded` naming it, its seq and the scope. */
const expectShredded = (store: Store["Service"], key: string, seq: number, scope: string) =>
  Effect.gen(function*() {
    const error = yield* Effect.flip(store.get(key))
    expect(error).toBeInstanceOf(Shredded)
    expect(error).toMatchObject({ _tag: "Shredded", key, seq, scope })
  })

describe("shred", () => {
  const byUser = { dataKeyPolicy: { scopeOf: scopeByDepth(2) } }
  const people = ["/users/alice/a", "/users/alice/b", "/users/bob/a", "/users/bob/b"]

  it.live("shred(\"/users/alice\") makes alice's values Shredded everywhere, keeps bob's and every event", () =>
    Effect.gen(function*() {
      const at = freshLocation()
      const keyring = rawKeyring("k")
      const store = yield* open(at, keyring, byUser)
      for (const key of people) yield* store.put({ key, value: bytes(`${key} v1`) })
      yield* store.put({ key: "/users/alice/b", value: bytes("/users/alice/b v2") })
      const aliceKey = yield* dataKeyIdOf(at, "/users/alice/a")
      const before = yield* eventSnapshot(at)

      expect(yield* store.shred("/users/alice")).toBe(1)

      const fresh = yield* open(at, keyring, byUser)
      for (const reader of [store, fresh]) {
        yield* expectShredded(reader, "/users/alice/a", 1, "/users/alice")
        yield* expectShredded(reader, "/users/alice/b", 2, "/users/alice")
        expect(yield* Effect.flip(reader.getRange("/users/alice/", Key.rangeEnd("/users/alice/")))).toMatchObject({
          _tag: "Shredded",
          key: "/users/alice/a",
          seq: 1
        })
        expect(yield* readAll(reader, "/users/bob/")).toEqual([["/users/bob/a", "/users/bob/a v1"], [
          "/users/bob/b",
          "/users/bob/b v1"
        ]])
      }
      // the events are all still there, unchanged; only the data key item lost its wrapped copies
      expect(yield* eventSnapshot(at)).toBe(before)
      const items = yield* dataKeyItems(at)
      const shredded = items.find((item) => Buffer.from(item[Attr.sort]!.B!).toString("utf8") === aliceKey)!
      expect(shredded["state"]!.S).toBe("shredded")
      expect(shredded["wrapped"]).toBeUndefined()
      expect(items.filter((item) => item["state"]!.S === "active").map((item) => item["scope"]!.S)).toEqual([
        "/users/bob"
      ])

      // new writes to alice's scope get a new data key and read fine, from both stores
      yield* store.put({ key: "/users/alice/a", value: bytes("alice again") })
      yield* store.put({ key: "/users/alice/c", value: bytes("alice new") })
      expect(yield* dataKeyIdOf(at, "/users/alice/c")).not.toBe(aliceKey)
      for (const reader of [store, yield* open(at, keyring, byUser)]) {
        expect(text((yield* reader.get("/users/alice/a")).value)).toBe("alice again")
        expect(text((yield* reader.get("/users/alice/c")).value)).toBe("alice new")
        yield* expectShredded(reader, "/users/alice/b", 2, "/users/alice")
      }
      // shredded keys are not re-wrapped: only bob's and alice's new key are active
      expect(yield* store.rewrap(keyring)).toBe(2)
      yield* expectShredded(yield* open(at, keyring, byUser), "/users/alice/b", 2, "/users/alice")
    }))

  // Documented semantics (README, "Encryption"): shred forgets the scope's data keys at once only in the instance
  // that ran it. Another instance that holds a data key of the scope for writing keeps using it until its cache
  // age (maxAgeMillis) runs out, so writes to the scope in that window are erased with it; after the window, new
  // writes get a new data key and read back. (A write path that re-checks the key on every write would close the
  // window at the cost of a transaction per write; see the issue note.)
  it.live("writes to a shredded scope through a warm instance are erased until its cache age passes, then read back", () =>
    Effect.gen(function*() {
      const at = freshLocation()
      const keyring = rawKeyring("k")
      // The window holds the rest of two's put, the shred and the next put: a few round trips, slow on a loaded machine.
      const shortCache = { dataKeyPolicy: { scopeOf: scopeByDepth(2), maxAgeMillis: 3_000 } }
      const [one, two] = [yield* open(at, keyring, byUser), yield* open(at, keyring, shortCache)]
      yield* one.put({ key: "/users/alice/a", value: bytes("from one") })
      yield* two.put({ key: "/users/alice/b", value: bytes("from two") })
      expect(yield* one.shred("/users/alice")).toBe(2)
      yield* two.put({ key: "/users/alice/c", value: bytes("inside the window") })
      yield* expectShredded(yield* open(at, keyring, byUser), "/users/alice/c", 1, "/users/alice")
      yield* Effect.sleep("3200 millis")
      yield* two.put({ key: "/users/alice/d", value: bytes("after the window") })
      expect(text((yield* (yield* open(at, keyring, byUser)).get("/users/alice/d")).value)).toBe("after the window")
    }))

  // Regression (found in src/infra/crypto/DataKeys.ts:210, which matched `record.scope.startsWith(scopePrefix)`): with
  // scopeByDepth the scopes "/users/alice" and "/users/alice2" are distinct, but shred("/users/alice") destroyed both,
  // and no prefix named alice's scope alone (scopes never end in "/"). Scopes must match on whole path segments.
  it.live("shred(\"/users/alice\") leaves /users/alice2 readable", () =>
    Effect.gen(function*() {
      const at = freshLocation()
      const keyring = rawKeyring("k")
      const store = yield* open(at, keyring, byUser)
      yield* store.put({ key: "/users/alice/a", value: bytes("alice") })
      yield* store.put({ key: "/users/alice2/a", value: bytes("alice2") })
      yield* store.shred("/users/alice")
      yield* expectShredded(store, "/users/alice/a", 1, "/users/alice")
      expect(text((yield* (yield* open(at, keyring, byUser)).get("/users/alice2/a")).value)).toBe("alice2")
    }))
})
