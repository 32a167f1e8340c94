/**
 * The store end to end on DynamoDB Local with AWS KMS keyrings (through the
 * real `@aws-sdk/client-kms` client against FakeKms): data key caching keeps
 * KMS calls to a handful, a multi-keyring built from configuration survives
 * losing its generator key, re-wrapping moves data keys from one KMS key to
 * another without touching events, and a disabled key stops writes cleanly.
 */
import { QueryCommand, ScanCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { KMSClient } from "@aws-sdk/client-kms"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import { Action, Condition } from "../../src/domain/AtomicWrite.ts"
import type { DataKeyPolicy } from "../../src/infra/crypto/DataKeys.ts"
import { partitionOf } from "../../src/infra/crypto/DataKeyStore.ts"
import { Keyring, KeyringError } from "../../src/infra/crypto/Keyring.ts"
import * as KmsKeyring from "../../src/infra/crypto/KmsKeyring.ts"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import { Store } from "../../src/programs/store/Store.ts"
import * as FakeKms from "../support/FakeKms.ts"
import { endpoint, freshTableName, makeClient, openStore, provisionTable } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (text: string) => encoder.encode(text)
const text = (value: Uint8Array) => decoder.decode(value)

const kmsClient = (kmsEndpoint: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new KMSClient({
        endpoint: kmsEndpoint,
        region: "us-east-1",
        credentials: { accessKeyId: "test", secretAccessKey: "test" }
      })
    ),
    (client) => Effect.sync(() => client.destroy())
  )

/** A KMS keyring for one key, as the layer `openStore` wants. */
const kmsKeyring = (client: KMSClient, keyId: string) =>
  Effect.map(KmsKeyring.make(client, { keyId }), (keyring) => ({ keyring, layer: Layer.succeed(Keyring, keyring) }))

/** FakeKms with `alias/teleport`, a KMS client and a fresh table. */
const setup = (label: string) =>
  Effect.gen(function*() {
    const fake = yield* FakeKms.scoped()
    const teleport = fake.createKey({ alias: "alias/teleport" })
    const kms = yield* kmsClient(fake.endpoint)
    const dynamo = makeClient()
    const location = yield* provisionTable(dynamo, freshTableName(label))
    return { fake, teleport, kms, dynamo, location }
  })

const open = (location: TestTable, keyring: Layer.Layer<Keyring>, dataKeyPolicy?: Partial<DataKeyPolicy>) =>
  openStore(location, { keyring, dataKeyPolicy })

type Item = Record<string, AttributeValue>

/** Every item of the table by a plain Scan, sorted, split into the data key partition and the rest. */
const rawScan = (client: DynamoDBClient, location: TestTable) =>
  Effect.promise(async () => {
    const items: Array<Item> = []
    let start: Item | undefined
    do {
      const page = await client.send(
        new ScanCommand({ TableName: location.table, ConsistentRead: true, ExclusiveStartKey: start })
      )
      items.push(...(page.Items ?? []))
      start = page.LastEvaluatedKey
    } while (start !== undefined)
    const order = (item: Item) => `${item["pk"]?.S}|${Buffer.from(item["sk"]?.B ?? new Uint8Array()).toString("hex")}`
    items.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0))
    const dataKeyPartition = partitionOf(location.namespace)
    return {
      dataKeys: items.filter((item) => item["pk"]?.S === dataKeyPartition),
      events: items.filter((item) => item["pk"]?.S !== dataKeyPartition)
    }
  })

/** The stored data key items of a namespace, each as its list of wrapped copies. */
const wrappedCopies = (client: DynamoDBClient, location: TestTable) =>
  Effect.promise(async () => {
    const page = await client.send(
      new QueryCommand({
        TableName: location.table,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": { S: partitionOf(location.namespace) } },
        ConsistentRead: true
      })
    )
    return (page.Items ?? []).map((item) =>
      (item["wrapped"]?.L ?? []).map((copy) => ({ provider: copy.M?.["p"]?.S, keyId: copy.M?.["k"]?.S }))
    )
  })

const readAll = (store: Store["Service"], keys: ReadonlyArray<string>) =>
  Effect.forEach(keys, (key) => Effect.map(store.get(key), (item) => [key, text(item.value)] as const), {
    concurrency: 32
  })

describe("the store with a KMS keyring", () => {
  it.live(
    "10,000 writes cost at most 3 GenerateDataKey calls, and cold reads at most 3 Decrypt calls",
    () =>
      Effect.gen(function*() {
        const { fake, kms, location, teleport } = yield* setup("kms-cache")
        const { keyring, layer } = yield* kmsKeyring(kms, "alias/teleport")
        // The alias is resolved once: data keys are made and wrapped under the key ARN.
        expect(keyring.name).toBe(`aws-kms:${teleport.arn}`)
        const store = yield* open(location, layer)
        fake.reset()

        const writes = 10_000
        const keys = Array.from({ length: 500 }, (_, i) => `/cache/key-${String(i).padStart(3, "0")}`)
        const started = Date.now()
        yield* Effect.forEach(
          Array.from({ length: writes }, (_, i) => i),
          (i) => store.put({ key: keys[i % keys.length]!, value: bytes(`value-${i}`) }),
          { concurrency: 32, discard: true }
        )
        const writeMillis = Date.now() - started
        const writeCounts = fake.counts
        console.info(
          `kms-store: ${writes} puts over ${keys.length} keys took ${writeMillis} ms; KMS calls: ${
            JSON.stringify(writeCounts)
          }`
        )
        expect(writeCounts["GenerateDataKey"] ?? 0).toBeGreaterThanOrEqual(1)
        expect(writeCounts["GenerateDataKey"] ?? 0).toBeLessThanOrEqual(3)
        // With at most 32 in flight, a key's write i + 500 starts after write i ended: the last one wins.
        const expected = keys.map((key, k) => [key, `value-${writes - keys.length + k}`] as const)

        // A fresh instance (own keyring object, own caches) reads everything back.
        const { layer: coldLayer } = yield* kmsKeyring(kms, "alias/teleport")
        const cold = yield* open(location, coldLayer)
        fake.reset()
        expect(yield* readAll(cold, keys)).toEqual(expected)
        const range = yield* cold.getRange("/cache/", "/cache/\uffff")
        expect(range.map((item) => [item.key, text(item.value)])).toEqual(expected)
        const readCounts = fake.counts
        console.info(
          `kms-store: cold reads of ${keys.length} keys (get + getRange); KMS calls: ${JSON.stringify(readCounts)}`
        )
        expect(readCounts["Decrypt"] ?? 0).toBeGreaterThanOrEqual(1)
        expect(readCounts["Decrypt"] ?? 0).toBeLessThanOrEqual(3)
        expect(readCounts["GenerateDataKey"]).toBeUndefined()
      }),
    180_000
  )

  it.live("a multi-keyring from configuration wraps two copies, and the second key alone still reads after the first is disabled", () =>
    Effect.gen(function*() {
      const fake = yield* FakeKms.scoped()
      const first = fake.createKey({ alias: "alias/teleport" })
      const second = fake.createKey({ alias: "alias/break-glass" })
      const dynamo = makeClient()
      const table = freshTableName("kms-multi")
      const env = (kmsKey: string, extra?: string) => ({
        DYNASTATE_KMS_KEY: kmsKey,
        ...(extra === undefined ? {} : { DYNASTATE_KMS_EXTRA_KEYS: extra }),
        DYNASTATE_KMS_ENDPOINT: fake.endpoint,
        DYNASTATE_ENDPOINT: endpoint(),
        DYNASTATE_REGION: "us-east-1",
        DYNASTATE_TABLE_NAME: table,
        DYNASTATE_ACCESS_KEY: "test",
        DYNASTATE_SECRET_KEY: "test"
      })
      const config = yield* StoreConfig.load({ env: env(first.arn, second.arn) })
      expect(config.kmsKey).toEqual(Option.some(first.arn))
      expect(config.kmsExtraKeys).toEqual([second.arn])
      expect(config.kmsEndpoint).toEqual(Option.some(fake.endpoint))
      const location = { table, namespace: config.namespace }

      const context = yield* Layer.build(StoreLive.layer(config))
      const store = Context.get(context, Store)
      const keys = Array.from({ length: 20 }, (_, i) => `/multi/${i}`)
      yield* Effect.forEach(keys, (key) => store.put({ key, value: bytes(`v${key}`) }), { discard: true })
      const expected = keys.map((key) => [key, `v${key}`] as const)
      expect(yield* readAll(store, keys)).toEqual(expected)

      const copies = yield* wrappedCopies(dynamo, location)
      expect(copies).toHaveLength(1)
      expect(copies[0]).toEqual([
        { provider: "aws-kms", keyId: first.arn },
        { provider: "aws-kms", keyId: second.arn }
      ])

      fake.disableKey(first.keyId)
      fake.reset()
      const secondOnly = yield* StoreConfig.load({ env: env(second.arn) })
      expect(secondOnly.kmsExtraKeys).toEqual([])
      const fresh = Context.get(yield* Layer.build(StoreLive.layer(secondOnly)), Store)
      expect(yield* readAll(fresh, keys)).toEqual(expected)
      // It unwrapped its own copy, never asking for the disabled key.
      const decrypts = fake.requests.filter((request) => request.operation === "Decrypt")
      expect(decrypts.length).toBeGreaterThanOrEqual(1)
      expect(decrypts.every((request) => request.keyId === second.arn)).toBe(true)

      // A configuration naming the disabled key as generator refuses to start.
      const error = yield* Effect.flip(Layer.build(StoreLive.layer(config)))
      expect(error).toBeInstanceOf(KeyringError)
      expect((error as KeyringError).failure).toBe("key-disabled")
    }))

  it.live("rewrap from KMS key A to key B leaves events untouched, and B alone reads everything", () =>
    Effect.gen(function*() {
      const { dynamo, fake, kms, location, teleport: keyA } = yield* setup("kms-rewrap")
      const keyB = fake.createKey({ alias: "alias/teleport-next" })
      const ringA = yield* kmsKeyring(kms, keyA.arn)
      const ringB = yield* kmsKeyring(kms, keyB.arn)
      // A data key per 10 values, so there are several to re-wrap.
      const policy = { maxValues: 10 }
      const store = yield* open(location, ringA.layer, policy)
      const keys = Array.from({ length: 45 }, (_, i) => `/rewrap/${String(i).padStart(2, "0")}`)
      yield* Effect.forEach(keys, (key) => store.put({ key, value: bytes(`before ${key}`) }), { discard: true })
      yield* store.delete(keys[0]!)
      const live = keys.slice(1)
      const expected = live.map((key) => [key, `before ${key}`] as const)

      const before = yield* rawScan(dynamo, location)
      expect(before.dataKeys.length).toBeGreaterThanOrEqual(5)
      expect((yield* wrappedCopies(dynamo, location)).flat().every((copy) => copy.keyId === keyA.arn)).toBe(true)

      const count = yield* store.rewrap(ringB.keyring)
      expect(count).toBe(before.dataKeys.length)
      const after = yield* rawScan(dynamo, location)
      expect(after.events).toEqual(before.events)
      const copies = yield* wrappedCopies(dynamo, location)
      expect(copies).toHaveLength(before.dataKeys.length)
      expect(copies.every((wrapped) => wrapped.length === 1 && wrapped[0]!.keyId === keyB.arn)).toBe(true)

      fake.disableKey(keyA.keyId)
      const fresh = yield* open(location, (yield* kmsKeyring(kms, keyB.arn)).layer, policy)
      expect(yield* readAll(fresh, live)).toEqual(expected)
      expect(yield* Effect.flip(fresh.get(keys[0]!))).toMatchObject({ _tag: "NotFound" })

      // The re-wrapping instance makes its next data keys under B, so A being disabled does not matter to it either.
      fake.reset()
      yield* Effect.forEach(live.slice(0, 20), (key) => store.put({ key, value: bytes(`after ${key}`) }), {
        discard: true
      })
      expect(fake.requests.filter((request) => request.operation === "GenerateDataKey").map((request) => request.keyId))
        .toEqual(expect.arrayContaining([keyB.arn]))
      expect(fake.requests.every((request) => request.keyId !== keyA.arn)).toBe(true)
      expect((yield* fresh.get(live[0]!)).value).toEqual(bytes(`after ${live[0]}`))
    }))

  it.live("a disabled generator key fails writes with key-disabled and writes no event", () =>
    Effect.gen(function*() {
      const { dynamo, fake, kms, location, teleport } = yield* setup("kms-disabled")
      const { layer } = yield* kmsKeyring(kms, "alias/teleport")
      const store = yield* open(location, layer)
      fake.disableKey(teleport.keyId)

      const attempts = [
        store.put({ key: "/disabled/put", value: bytes("p") }),
        store.create({ key: "/disabled/create", value: bytes("c") }),
        store.atomicWrite([{ key: "/disabled/atomic", condition: Condition.whatever, action: Action.put(bytes("a")) }])
      ]
      for (const attempt of attempts) {
        const error = yield* Effect.flip(attempt as Effect.Effect<unknown, unknown>)
        expect(error).toBeInstanceOf(KeyringError)
        expect(error).toMatchObject({ _tag: "KeyringError", failure: "key-disabled" })
        expect((error as KeyringError).reason).toContain("DisabledException")
      }
      expect(fake.counts["GenerateDataKey"]).toBeGreaterThanOrEqual(1)
      const raw = yield* rawScan(dynamo, location)
      // Neither the event partition nor any other (history) holds an item, and no data key was stored.
      expect(raw.events).toEqual([])
      expect(raw.dataKeys).toEqual([])
      expect(yield* Effect.flip(store.get("/disabled/put"))).toMatchObject({ _tag: "NotFound" })

      // Enabled again, the same instance writes without being reopened.
      fake.enableKey(teleport.keyId)
      yield* store.put({ key: "/disabled/put", value: bytes("p") })
      expect(text((yield* store.get("/disabled/put")).value)).toBe("p")
    }))
})
