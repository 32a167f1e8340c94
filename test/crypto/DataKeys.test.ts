/**
 * Data keys on DynamoDB Local: how often the keyring is asked (generation and
 * unwrapping are cached and single-flight), the hard limits that force a new
 * data key, the bounded read cache, scopes, and what a data key item holds.
 */
import { ScanCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Redacted, Result } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import * as Key from "../../src/domain/Key.ts"
import { contextOf, DataKeys, defaultDataKeyPolicy, scopeByDepth } from "../../src/infra/crypto/DataKeys.ts"
import type { DataKeyPolicy } from "../../src/infra/crypto/DataKeys.ts"
import { partitionOf } from "../../src/infra/crypto/DataKeyStore.ts"
import { Keyring } from "../../src/infra/crypto/Keyring.ts"
import * as ValueCipher from "../../src/infra/crypto/ValueCipher.ts"
import type { ValueBinding } from "../../src/infra/crypto/ValueCipher.ts"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import { counting } from "../support/CountingKeyring.ts"
import { openStore, tablePerFile, testKeyring } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261125), numRuns: Number(process.env.FC_RUNS ?? 200) }

const { client, tableName, freshLocation } = tablePerFile("dk")

/** A separate DataKeys instance (as in another process) at a location, living as long as the test's scope. */
const instance = (location: TestTable, keyring: Keyring["Service"], policy: Partial<DataKeyPolicy> = {}) =>
  Layer.build(
    DataKeys.layer(location, { ...defaultDataKeyPolicy, ...policy }).pipe(
      Layer.provide(Layer.mergeAll(Layer.succeed(Keyring, keyring), Layer.succeed(Dynamo, Dynamo.fromClient(client))))
    )
  ).pipe(Effect.map((context) => Context.get(context, DataKeys)))

const bindingAt = (location: TestTable, i: number): ValueBinding => ({
  table: location.table,
  namespace: location.namespace,
  key: `/k/${i}`,
  seq: 1,
  eventId: `e-${i}`,
  op: "put",
  expires: undefined,
  valueRevision: undefined,
  timestamp: 0
})
const plaintextOf = (i: number) => new TextEncoder().encode(`value number ${i}`)
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** Every item of the table, raw. */
const scanAll = () =>
  Effect.promise(async () => {
    const items: Array<Record<string, AttributeValue>> = []
    let start: Record<string, AttributeValue> | undefined
    do {
      const page = await client.send(
        new ScanCommand({ TableName: tableName(), ConsistentRead: true, ExclusiveStartKey: start })
      )
      items.push(...(page.Items ?? []))
      start = page.LastEvaluatedKey
    } while (start !== undefined)
    return items
  })

/** Every byte string and string in an attribute value, however nested. */
const leaves = (value: AttributeValue): Array<Buffer> => {
  if (value.S !== undefined) return [Buffer.from(value.S)]
  if (value.N !== undefined) return [Buffer.from(value.N)]
  if (value.B !== undefined) return [Buffer.from(value.B)]
  if (value.L !== undefined) return value.L.flatMap(leaves)
  if (value.M !== undefined) return Object.values(value.M).flatMap(leaves)
  return []
}

describe("the keyring is asked only now and then", () => {
  it.live("10,000 values encrypted 50 at a time cost one generate; a fresh instance decrypts them all with one unwrap", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const writer = counting(testKeyring)
      const dataKeys = yield* instance(location, writer.keyring)
      const indexes = Array.from({ length: 10_000 }, (_, i) => i)
      const ciphertexts = yield* Effect.forEach(
        indexes,
        (i) => ValueCipher.encrypt(plaintextOf(i), bindingAt(location, i)),
        { concurrency: 50 }
      ).pipe(
        Effect.provideService(DataKeys, dataKeys)
      )
      expect(writer.calls).toEqual({ generate: 1, wrap: 0, unwrap: 0 })
      expect(new Set(ciphertexts.map((c) => Result.getOrThrow(ValueCipher.keyIdOf(c)))).size).toBe(1)

      const reader = counting(testKeyring)
      const fresh = yield* instance(location, reader.keyring)
      const plaintexts = yield* Effect.forEach(
        indexes,
        (i) => ValueCipher.decrypt(ciphertexts[i]!, bindingAt(location, i)),
        { concurrency: 50 }
      ).pipe(
        Effect.provideService(DataKeys, fresh)
      )
      expect(reader.calls).toEqual({ generate: 0, wrap: 0, unwrap: 1 })
      expect(plaintexts.every((p, i) => text(p) === `value number ${i}`)).toBe(true)
    }))

  it.live(
    "1,000 store.put calls (50 at a time) cost one generate; a fresh store reads them back with one unwrap",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const writer = counting(testKeyring)
        const store = yield* openStore(location, { client, keyring: Layer.succeed(Keyring, writer.keyring) })
        const indexes = Array.from({ length: 1_000 }, (_, i) => i)
        const key = (i: number) => `/bulk/${String(i).padStart(4, "0")}`
        yield* Effect.forEach(indexes, (i) => store.put({ key: key(i), value: plaintextOf(i) }), {
          concurrency: 50,
          discard: true
        })
        expect(writer.calls.generate).toBe(1)
        expect(writer.calls.unwrap).toBe(0)

        const reader = counting(testKeyring)
        const fresh = yield* openStore(location, { client, keyring: Layer.succeed(Keyring, reader.keyring) })
        const items = yield* fresh.getRange("/bulk/", Key.rangeEnd("/bulk/"))
        expect(items.map((item) => text(item.value))).toEqual(indexes.map((i) => `value number ${i}`))
        yield* Effect.forEach(indexes.slice(0, 200), (i) => fresh.get(key(i)), { concurrency: 50, discard: true })
        expect(reader.calls).toEqual({ generate: 0, wrap: 0, unwrap: 1 })
      }),
    180_000
  )

  it.live("concurrent first reads of one data key unwrap it once (single flight)", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const { id } = yield* Effect.flatMap(
        instance(location, testKeyring),
        (dataKeys) => dataKeys.forEncryption("", 10)
      )
      const reader = counting(testKeyring)
      const fresh = yield* instance(location, reader.keyring)
      const keys = yield* Effect.forEach(Array.from({ length: 50 }), () => fresh.forDecryption(id), { concurrency: 50 })
      expect(reader.calls.unwrap).toBe(1)
      expect(new Set(keys.map((k) => Buffer.from(Redacted.value(k.material)).toString("hex"))).size).toBe(1)
    }))
})

/** The data key ids handed out for values of these sizes, as 1, 2, 3… in order of first use. */
const keySequence = (dataKeys: DataKeys["Service"], sizes: ReadonlyArray<number>, scope = "") =>
  Effect.gen(function*() {
    const ids: Array<string> = []
    for (const size of sizes) ids.push((yield* dataKeys.forEncryption(scope, size)).id)
    const order = [...new Set(ids)]
    return ids.map((id) => order.indexOf(id) + 1)
  })

describe("hard limits force a new data key exactly when reached", () => {
  it.live("maxValues: the 4th value of a 3-value key gets a new one", () =>
    Effect.gen(function*() {
      const { keyring, calls } = counting(testKeyring)
      const dataKeys = yield* instance(freshLocation(), keyring, { maxValues: 3 })
      expect(yield* keySequence(dataKeys, [1, 1, 1, 1, 1, 1, 1])).toEqual([1, 1, 1, 2, 2, 2, 3])
      expect(calls.generate).toBe(3)
    }))

  it.live("maxValues under concurrency: 10,000 values, 50 at a time, use 100-value keys fully, 100 generates", () =>
    Effect.gen(function*() {
      const { keyring, calls } = counting(testKeyring)
      const dataKeys = yield* instance(freshLocation(), keyring, { maxValues: 100 })
      const keys = yield* Effect.forEach(Array.from({ length: 10_000 }), () => dataKeys.forEncryption("", 1), {
        concurrency: 50
      })
      const perKey = new Map<string, number>()
      for (const k of keys) perKey.set(k.id, (perKey.get(k.id) ?? 0) + 1)
      expect(calls.generate).toBe(100)
      expect([...new Set(perKey.values())]).toEqual([100])
    }))

  it.live("maxBytes: a key takes values up to exactly maxBytes; a larger value gets a fresh key of its own", () =>
    Effect.gen(function*() {
      const { keyring, calls } = counting(testKeyring)
      const dataKeys = yield* instance(freshLocation(), keyring, { maxBytes: 100 })
      // 40+40+20 = 100 fits; 1 more does not; 150 > maxBytes still gets a (fresh) key; nothing joins it
      expect(yield* keySequence(dataKeys, [40, 40, 20, 1, 150, 1, 99, 1, 0])).toEqual([1, 1, 1, 2, 3, 4, 4, 5, 5])
      expect(calls.generate).toBe(5)
    }))

  it.live("a value larger than maxBytes is stored and read back through a store", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const store = yield* openStore(location, { client, dataKeyPolicy: { maxBytes: 1024 } })
      const big = new Uint8Array(8 * 1024).map((_, i) => i % 251)
      yield* store.put({ key: "/big", value: big })
      yield* store.put({ key: "/small", value: plaintextOf(1) })
      const fresh = yield* openStore(location, { client })
      expect(Buffer.from((yield* fresh.get("/big")).value).equals(Buffer.from(big))).toBe(true)
      expect(text((yield* fresh.get("/small")).value)).toBe("value number 1")
    }))

  it.effect("maxAgeMillis: a key stops encrypting when it is maxAgeMillis old, and cached read keys are re-unwrapped then", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const writer = counting(testKeyring)
      const dataKeys = yield* instance(location, writer.keyring, { maxAgeMillis: 1000 })
      const first = yield* dataKeys.forEncryption("", 1)
      yield* TestClock.adjust(999)
      expect((yield* dataKeys.forEncryption("", 1)).id).toBe(first.id)
      yield* TestClock.adjust(1)
      const second = yield* dataKeys.forEncryption("", 1)
      expect(second.id).not.toBe(first.id)
      expect(writer.calls.generate).toBe(2)

      const reader = counting(testKeyring)
      const fresh = yield* instance(location, reader.keyring, { maxAgeMillis: 1000 })
      yield* fresh.forDecryption(first.id)
      yield* TestClock.adjust(999)
      yield* fresh.forDecryption(first.id)
      expect(reader.calls.unwrap).toBe(1)
      yield* TestClock.adjust(1)
      yield* fresh.forDecryption(first.id)
      expect(reader.calls.unwrap).toBe(2)
    }))
})

describe("the read cache", () => {
  /** Three data keys made by one instance, and a counting reader with a read cache of `size`. */
  const threeKeys = (size: number) =>
    Effect.gen(function*() {
      const location = freshLocation()
      const writer = yield* instance(location, testKeyring, { maxValues: 1 })
      const ids = [
        (yield* writer.forEncryption("", 1)).id,
        (yield* writer.forEncryption("", 1)).id,
        (yield* writer.forEncryption("", 1)).id
      ]
      const { keyring, calls } = counting(testKeyring)
      const reader = yield* instance(location, keyring, { readCacheSize: size })
      const read = (...indexes: ReadonlyArray<number>) =>
        Effect.forEach(indexes, (i) => reader.forDecryption(ids[i]!), { discard: true })
      return { read, calls }
    })

  it.live("holds at most readCacheSize unwrapped keys", () =>
    Effect.gen(function*() {
      const small = yield* threeKeys(2)
      yield* small.read(0, 1, 0, 1)
      expect(small.calls.unwrap).toBe(2)
      // cycling through 3 keys with room for 2: every read misses
      yield* small.read(2, 0, 1, 2, 0, 1)
      expect(small.calls.unwrap).toBe(8)
      const roomy = yield* threeKeys(3)
      yield* roomy.read(0, 1, 2, 0, 1, 2, 0, 1, 2)
      expect(roomy.calls.unwrap).toBe(3)
    }))

  // Found in src/infra/crypto/DataKeys.ts `forDecryption` (:195): a cache hit returns without moving the key to the
  // most-recent end (only `remember`, :150, on a load does), so eviction is first-in-first-out, not the LRU the module
  // promises: a key read on every request is evicted as soon as readCacheSize other keys are loaded after it, and each
  // eviction is another KMS Decrypt. Expected: a hit refreshes recency (delete + set).
  it.live("is least-recently-used: a key read again stays, the one not read since is evicted", () =>
    Effect.gen(function*() {
      const { read, calls } = yield* threeKeys(2)
      yield* read(0, 1, 0) // key 0 used most recently
      yield* read(2) // evicts key 1, the least recently used
      expect(calls.unwrap).toBe(3)
      yield* read(0)
      expect(calls.unwrap).toBe(3)
      yield* read(1)
      expect(calls.unwrap).toBe(4)
    }))
})

describe("scopes", () => {
  it("scopeByDepth keeps the first `depth` non-empty path segments", () => {
    const byTwo = scopeByDepth(2)
    expect(byTwo("/users/alice/sessions/1")).toBe("/users/alice")
    expect(byTwo("/users/alice")).toBe("/users/alice")
    expect(byTwo("/users")).toBe("/users")
    expect(byTwo("//users///alice//x")).toBe("/users/alice")
    expect(byTwo("users/alice/x")).toBe("/users/alice")
    expect(byTwo("/")).toBe("")
    expect(scopeByDepth(1)("/users/alice")).toBe("/users")
    expect(scopeByDepth(0)("/users/alice")).toBe("")
    expect(defaultDataKeyPolicy.scopeOf("/users/alice")).toBe("")
  })

  it("scopeByDepth: keys share a scope exactly when their first `depth` segments are equal (property)", () => {
    const segment = fc.constantFrom("a", "b", "ab", "é")
    const keyArb = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => "/" + parts.join("/"))
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), keyArb, keyArb, (depth, a, b) => {
        const head = (key: string) => key.split("/").filter((s) => s !== "").slice(0, depth).join("/")
        const scope = scopeByDepth(depth)
        expect(scope(a) === scope(b)).toBe(head(a) === head(b))
        expect(a.startsWith(scope(a))).toBe(true)
      }),
      params
    )
  })

  it.live("values of different scopes never share a data key; each scope's key is made once, even concurrently", () =>
    Effect.gen(function*() {
      const { keyring, calls } = counting(testKeyring)
      const dataKeys = yield* instance(freshLocation(), keyring, { scopeOf: scopeByDepth(2) })
      expect(dataKeys.scopeOf("/users/alice/x")).toBe("/users/alice")
      const scopes = ["/users/alice", "/users/bob", ""]
      const keys = yield* Effect.forEach(
        Array.from({ length: 150 }, (_, i) => scopes[i % 3]!),
        (scope) => Effect.map(dataKeys.forEncryption(scope, 1), (k) => [scope, k.id] as const),
        { concurrency: 50 }
      )
      expect(calls.generate).toBe(3)
      const idOf = new Map(keys)
      expect(new Set(idOf.values()).size).toBe(3)
      expect(keys.every(([scope, id]) => idOf.get(scope) === id)).toBe(true)
    }))
})

describe("data key items", () => {
  it.live("hold only wrapped copies: the key material appears nowhere in the table", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const dataKeys = yield* instance(location, testKeyring, { scopeOf: scopeByDepth(1) })
      const key = yield* dataKeys.forEncryption("/users", 10)
      const material = Buffer.from(Redacted.value(key.material))
      const items = yield* scanAll()
      const ours = items.filter((item) => item["pk"]?.S === partitionOf(location.namespace))
      expect(ours).toHaveLength(1)
      const item = ours[0]!
      expect(Object.keys(item).sort()).toEqual(["created", "pk", "scope", "sk", "state", "wrapped"])
      expect(Buffer.from(item["sk"]!.B!).toString("utf8")).toBe(key.id)
      expect(item["scope"]!.S).toBe("/users")
      expect(item["state"]!.S).toBe("active")
      const copies = item["wrapped"]!.L!
      expect(copies).toHaveLength(1)
      const copy = copies[0]!.M!
      expect(copy["p"]!.S).toBe("raw-aes")
      expect(copy["c"]!.B!).toHaveLength(12 + 32 + 16)
      // positive control: the stored copy really is the data key, wrapped under the context of its id and scope
      const unwrapped = yield* testKeyring.unwrap(
        [{ provider: copy["p"]!.S!, keyId: copy["k"]!.S!, ciphertext: copy["c"]!.B! }],
        contextOf(location, key.id, "/users")
      )
      expect(Buffer.from(Redacted.value(unwrapped)).equals(material)).toBe(true)
      // the material, raw or as hex/base64, is in no attribute of any item of the table
      const forms = [
        material,
        Buffer.from(material.toString("hex")),
        Buffer.from(material.toString("base64")),
        material.subarray(0, 12)
      ]
      const found = items.flatMap((i) => Object.values(i).flatMap(leaves)).filter((leaf) =>
        forms.some((form) => leaf.includes(form))
      )
      expect(found).toEqual([])
    }))
})
