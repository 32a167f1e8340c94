/**
 * `npm run bench`: the store's put and get next to raw SDK `PutItem` and
 * `Query` calls doing the same work at the same concurrency, on one DynamoDB
 * Local started for the run. Prints throughput, p50/p99 latency, the ratio
 * store/raw, and how many DynamoDB requests each store operation cost; then
 * the same put and get in strict write mode (every append a transaction that
 * checks its predecessor) as ratios to the default fenced mode, with the
 * requests and consumed capacity units per put of each.
 */
import { PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { Context, Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import * as SortKey from "../src/domain/SortKey.ts"
import * as RawAesKeyring from "../src/infra/crypto/RawAesKeyring.ts"
import { Dynamo } from "../src/infra/Dynamo.ts"
import * as DynamoDBLocal from "../src/infra/local/DynamoDBLocal.ts"
import { fromClients, StreamsApi } from "../src/infra/streams/StreamsApi.ts"
import * as TableProvisioner from "../src/infra/TableProvisioner.ts"
import { encryptedEventTable, localCredentials } from "../src/programs/app/StoreLive.ts"
import { Store } from "../src/programs/store/Store.ts"
import type { StoreOptions } from "../src/programs/store/Store.ts"
import { defaultStoreOptions } from "../src/programs/store/Store.ts"
import { makeBenchClient } from "./support.ts"

const operations = Number(process.env.BENCH_OPERATIONS ?? 2000)
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16)
const keys = Number(process.env.BENCH_KEYS ?? 200)
const valueBytes = Number(process.env.BENCH_VALUE_BYTES ?? 256)

interface Measured {
  readonly seconds: number
  readonly latencies: ReadonlyArray<number>
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN

/** Runs `operations` calls of `op` at `concurrency`, timing each. */
const measure = (op: (i: number) => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const latencies: Array<number> = []
    const started = performance.now()
    yield* Effect.forEach(
      Array.from({ length: operations }, (_, i) => i),
      (i) =>
        Effect.suspend(() => {
          const t0 = performance.now()
          return op(i).pipe(Effect.tap(() => Effect.sync(() => latencies.push(performance.now() - t0))))
        }),
      { concurrency, discard: true }
    )
    return {
      seconds: (performance.now() - started) / 1000,
      latencies: latencies.sort((a, b) => a - b)
    } satisfies Measured
  })

const row = (name: string, m: Measured, baseline?: Measured) => {
  const throughput = operations / m.seconds
  const ratio = baseline
    ? ` ${(throughput / (operations / baseline.seconds)).toFixed(2)}x raw throughput, ${
      (percentile(m.latencies, 50) / percentile(baseline.latencies, 50)).toFixed(2)
    }x raw p50`
    : ""
  return `${name.padEnd(16)} ${throughput.toFixed(0).padStart(7)} ops/s  p50 ${
    percentile(m.latencies, 50).toFixed(2).padStart(7)
  } ms  p99 ${percentile(m.latencies, 99).toFixed(2).padStart(7)} ms${ratio}`
}

const rawPut = (client: DynamoDBClient, table: string, i: number, value: Uint8Array) =>
  Effect.promise(() =>
    client.send(
      new PutItemCommand({
        TableName: table,
        Item: {
          pk: { S: "raw" },
          sk: { B: SortKey.encode(`/bench/${i % keys}`, Math.floor(i / keys) + 1) },
          rev: { S: crypto.randomUUID() },
          seq: { N: String(Math.floor(i / keys) + 1) },
          op: { S: "put" },
          ts: { N: String(Date.now()) },
          val: { B: value }
        },
        ConditionExpression: "attribute_not_exists(sk)"
      })
    )
  )

const rawGet = (client: DynamoDBClient, table: string, i: number) =>
  Effect.promise(() =>
    client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: "pk = :pk AND sk BETWEEN :lo AND :hi",
        ExpressionAttributeValues: {
          ":pk": { S: "raw" },
          ":lo": { B: SortKey.lowerBound(`/bench/${i % keys}`) },
          ":hi": { B: SortKey.upperBound(`/bench/${i % keys}`) }
        },
        ConsistentRead: true,
        Limit: 1
      })
    )
  )

const main = Effect.gen(function*() {
  const local = yield* DynamoDBLocal.scoped({ inMemory: true })
  const { capacity, client, counts } = makeBenchClient(local.endpoint)
  const table = "bench"
  yield* TableProvisioner.ensureTable({
    table,
    billingMode: "pay_per_request",
    readCapacityUnits: 5,
    writeCapacityUnits: 5
  }).pipe(
    Effect.provideService(Dynamo, Dynamo.fromClient(client))
  )
  const streams = Layer.succeed(
    StreamsApi,
    fromClients(
      client,
      new DynamoDBStreamsClient({ endpoint: local.endpoint, region: "us-east-1", credentials: localCredentials })
    )
  )
  const openStore = (namespace: string, options: StoreOptions) =>
    Effect.map(
      Layer.build(
        Store.layer(options).pipe(
          Layer.provide(streams),
          Layer.provide(encryptedEventTable({ table, namespace })),
          Layer.provide(RawAesKeyring.layerEphemeral),
          Layer.provide(Layer.succeed(Dynamo, Dynamo.fromClient(client)))
        )
      ),
      (context) => Context.get(context, Store)
    )
  const store = yield* openStore("store", defaultStoreOptions)
  const strictStore = yield* openStore("strict", {
    ...defaultStoreOptions,
    actors: { ...defaultStoreOptions.actors, writeMode: "strict" },
    atomicWrite: { ...defaultStoreOptions.atomicWrite, writeMode: "strict" }
  })
  // The raw baseline writes a value as large as the store's ciphertext, so both move the same bytes.
  const rawValue = randomBytes(valueBytes + 110)
  const value = randomBytes(valueBytes)

  console.log(
    `dynastate bench: ${operations} operations, concurrency ${concurrency}, ${keys} keys, ${valueBytes}-byte values, DynamoDB Local ${local.endpoint}`
  )
  yield* measure((i) => rawPut(client, table, i + operations * 10, rawValue)) // warm-up of the JVM and connections
  yield* measure((i) => store.put({ key: `/warm/${i % keys}`, value }))

  const rawPuts = yield* measure((i) => rawPut(client, table, i, rawValue))
  const before = { ...counts }
  const beforeCapacity = { ...capacity }
  const storePuts = yield* measure((i) => store.put({ key: `/bench/${i % keys}`, value }))
  const requests = (now: Record<string, number>, then: Record<string, number>) =>
    Object.entries(now).reduce((sum, [command, count]) => sum + count - (then[command] ?? 0), 0)
  const putRequests = requests(counts, before)
  const putCapacity = requests(capacity, beforeCapacity)
  const rawGets = yield* measure((i) => rawGet(client, table, i))
  const beforeGets = { ...counts }
  const storeGets = yield* measure((i) => store.get(`/bench/${i % keys}`))
  const getRequests = requests(counts, beforeGets)

  console.log(row("raw PutItem", rawPuts))
  console.log(row("store.put", storePuts, rawPuts))
  console.log(row("raw Query", rawGets))
  console.log(row("store.get", storeGets, rawGets))
  console.log(
    `DynamoDB requests per store.put: ${
      (putRequests / operations).toFixed(3)
    } (the first write of each of the ${keys} keys reads it: its live range, then its grave when the range is empty)`
  )
  console.log(`DynamoDB requests per store.get: ${(getRequests / operations).toFixed(3)}`)

  // Strict write mode beside the fenced mode measured above, same process, same keys, same values.
  yield* measure((i) => strictStore.put({ key: `/warm/${i % keys}`, value }))
  const beforeStrict = { ...counts }
  const beforeStrictCapacity = { ...capacity }
  const strictPuts = yield* measure((i) => strictStore.put({ key: `/bench/${i % keys}`, value }))
  const strictRequests = requests(counts, beforeStrict)
  const strictCapacity = requests(capacity, beforeStrictCapacity)
  const strictGets = yield* measure((i) => strictStore.get(`/bench/${i % keys}`))
  const ratio = (m: Measured, baseline: Measured) =>
    `${(baseline.seconds / m.seconds).toFixed(2)}x fenced throughput, ${
      (percentile(m.latencies, 50) / percentile(baseline.latencies, 50)).toFixed(2)
    }x fenced p50`
  console.log(`${row("strict put", strictPuts)}  ${ratio(strictPuts, storePuts)}`)
  console.log(`${row("strict get", strictGets)}  ${ratio(strictGets, storeGets)}`)
  console.log(
    `per put, fenced: ${(putRequests / operations).toFixed(3)} requests, ${
      (putCapacity / operations).toFixed(2)
    } capacity units; strict: ${(strictRequests / operations).toFixed(3)} requests, ${
      (strictCapacity / operations).toFixed(2)
    } capacity units (reads included)`
  )
})

Effect.runPromise(Effect.scoped(main)).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
