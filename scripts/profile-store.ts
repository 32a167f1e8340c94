/**
 * Client CPU per operation with DynamoDB taken out: the store and a teleport-shaped peer (one item per key,
 * unconditional `PutItem`, consistent `GetItem`, one `Query` per range page) run against the same in-process
 * fake DynamoDB answering through the SDK's `requestHandler`, so what is left is each client's own work
 * (SDK serialisation and signing included, which both pay).
 *
 *   node scripts/profile-store.ts [ops=4000] [keys=200] [range=1000] [concurrency=16] [rounds=3] [--only=store|peer]
 *
 * `--phase=put,get,range` picks what is measured (the warm-up writes always run); `wire` adds the SDK alone sending
 * the store's own last PutItem and Query, so the store's CPU splits into the SDK's work on its requests and its own.
 * `--transport=none` gives the store a stand-in for the SDK client itself, answering from the same tables without
 * serialising, signing or parsing: what is left is the store's own CPU (and the stand-in's conversions). Run it under
 * `node --cpu-prof` and aggregate the profile with `scripts/profile-top.ts`.
 */
import { DynamoDBClient, GetItemCommand, PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue, PutItemCommandInput, QueryCommandInput } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { Effect, Layer } from "effect"
import { randomBytes, randomUUID } from "node:crypto"
import * as RawAesKeyring from "../src/infra/crypto/RawAesKeyring.ts"
import { base64Decoder, Dynamo } from "../src/infra/Dynamo.ts"
import { fromClients, StreamsApi } from "../src/infra/streams/StreamsApi.ts"
import { encryptedEventTable } from "../src/programs/app/StoreLive.ts"
import { defaultStoreOptions, Store } from "../src/programs/store/Store.ts"

type WireItem = Record<string, Record<string, unknown>>

/** The fields of the requests the fake answers. */
interface WireRequest {
  readonly TableName: string
  readonly Item: WireItem
  readonly Key: WireItem
  readonly ConditionExpression?: string
  readonly KeyConditionExpression: string
  readonly ExpressionAttributeValues: WireItem
  readonly ScanIndexForward?: boolean
  readonly Limit?: number
  readonly ExclusiveStartKey?: WireItem
}

interface Row {
  readonly sort: Buffer
  item: WireItem
}

/** Key attributes of each table the fake knows. */
const schemas: Record<string, { readonly pk: string; readonly sk: string }> = {
  store: { pk: "pk", sk: "sk" },
  peer: { pk: "HashKey", sk: "FullPath" },
  // Where `--phase=wire` replays the store's writes: no condition is checked, so every replay succeeds.
  replay: { pk: "pk", sk: "sk" }
}

const sortBytes = (value: Record<string, unknown> | undefined): Buffer =>
  value === undefined
    ? Buffer.alloc(0)
    : typeof value.B === "string"
    ? Buffer.from(value.B, "base64")
    : Buffer.from(String(value.S ?? value.N), "utf8")

/** Requests the fake answered, by operation. */
const requests: Record<string, number> = {}

/** The last request of each operation on each table, as sent on the wire (`--phase=wire` replays them). */
const lastRequests: Record<string, WireRequest> = {}

/** An in-memory DynamoDB of PutItem, GetItem and Query, speaking the JSON wire protocol. */
const makeFake = () => {
  const partitions = new Map<string, Array<Row>>()
  const rowsOf = (table: string, pk: string) => {
    const id = `${table}\u0000${pk}`
    const rows = partitions.get(id) ?? []
    if (rows.length === 0) partitions.set(id, rows)
    return rows
  }
  const find = (rows: Array<Row>, sort: Buffer) => {
    let lo = 0
    let hi = rows.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (Buffer.compare(rows[mid]!.sort, sort) < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }
  // An event's sort key is its key's bytes, 0x00 and eight bytes of inverted seq.
  const sameKey = (a: Buffer, b: Buffer) =>
    a.length === b.length && a.length > 8 && a.compare(b, 0, b.length - 8, 0, a.length - 8) === 0
  const partitionValue = (value: Record<string, unknown> | undefined) => String(value?.S ?? value?.N ?? value?.B)
  const error = (type: string, extra: object = {}) => ({
    status: 400,
    body: { __type: `com.amazonaws.dynamodb.v20120810#${type}`, message: type, ...extra }
  })

  const handlers: Record<string, (input: WireRequest) => { status: number; body: object }> = {
    PutItem: (input) => {
      const schema = schemas[input.TableName]!
      const rows = rowsOf(input.TableName, partitionValue(input.Item[schema.pk]))
      const sort = sortBytes(input.Item[schema.sk])
      const at = find(rows, sort)
      const existing = rows[at] !== undefined && rows[at]!.sort.equals(sort) ? rows[at] : undefined
      if (existing && input.TableName !== "replay" && /attribute_not_exists/.test(input.ConditionExpression ?? "")) {
        return error("ConditionalCheckFailedException", { Item: existing.item })
      }
      const next = rows[at]
      if (existing) existing.item = input.Item
      else if (input.TableName === "store" && next !== undefined && sameKey(next.sort, sort)) {
        // The key's previous event, which sorts right after (seqs descend): dropped as the worker's compaction would,
        // so the live range keeps one event per key and the fake's own cost stays flat.
        rows[at] = { sort, item: input.Item }
      } else rows.splice(at, 0, { sort, item: input.Item })
      return { status: 200, body: {} }
    },
    GetItem: (input) => {
      const schema = schemas[input.TableName]!
      const rows = rowsOf(input.TableName, partitionValue(input.Key[schema.pk]))
      const sort = sortBytes(input.Key[schema.sk])
      const row = rows[find(rows, sort)]
      return { status: 200, body: row?.sort.equals(sort) ? { Item: row.item } : {} }
    },
    Query: (input) => {
      const schema = schemas[input.TableName]!
      const values = input.ExpressionAttributeValues as Record<string, Record<string, unknown>>
      const match = /= (:\w+)(?: AND \S+ BETWEEN (:\w+) AND (:\w+))?/.exec(input.KeyConditionExpression)!
      const rows = rowsOf(input.TableName, partitionValue(values[match[1]!]!))
      const lower = match[2] ? sortBytes(values[match[2]]) : undefined
      const upper = match[3] ? sortBytes(values[match[3]]) : undefined
      const ascending = input.ScanIndexForward !== false
      const limit: number = input.Limit ?? 1000
      const start = input.ExclusiveStartKey ? sortBytes(input.ExclusiveStartKey[schema.sk]) : undefined
      const items: Array<WireItem> = []
      let last: WireItem | undefined
      const inRange = (row: Row) =>
        (lower === undefined || Buffer.compare(row.sort, lower) >= 0) &&
        (upper === undefined || Buffer.compare(row.sort, upper) <= 0) &&
        (start === undefined || (ascending ? Buffer.compare(row.sort, start) > 0 : Buffer.compare(row.sort, start) < 0))
      if (ascending) {
        for (let i = lower ? find(rows, lower) : 0; i < rows.length && items.length < limit; i++) {
          if (upper !== undefined && Buffer.compare(rows[i]!.sort, upper) > 0) break
          if (inRange(rows[i]!)) {
            last = rows[i]!.item
            items.push(last)
          }
        }
      } else {
        for (let i = (upper ? find(rows, upper) : rows.length) + 1; i-- > 0 && items.length < limit;) {
          const row = rows[i]
          if (row === undefined) continue
          if (lower !== undefined && Buffer.compare(row.sort, lower) < 0) break
          if (inRange(row)) {
            last = row.item
            items.push(last)
          }
        }
      }
      const more = items.length === limit && last !== undefined
      return {
        status: 200,
        body: {
          Items: items,
          Count: items.length,
          ...(more ? { LastEvaluatedKey: { [schema.pk]: last![schema.pk], [schema.sk]: last![schema.sk] } } : {})
        }
      }
    }
  }

  const requestHandler = {
    handle: async (request: { readonly headers: Record<string, string>; readonly body: unknown }) => {
      const operation = String(request.headers["x-amz-target"]).split(".")[1]!
      requests[operation] = (requests[operation] ?? 0) + 1
      const handler = handlers[operation]
      if (handler === undefined) throw new Error(`the fake does not know ${operation}`)
      const input = JSON.parse(
        typeof request.body === "string" ? request.body : Buffer.from(request.body as Uint8Array).toString()
      ) as WireRequest
      lastRequests[`${input.TableName}.${operation}`] = input
      const { body, status } = handler(input)
      return {
        // The SDK takes any object of this shape as a response (HttpResponse.isInstance).
        response: {
          statusCode: status,
          headers: { "content-type": "application/x-amz-json-1.0" },
          body: Buffer.from(JSON.stringify(body))
        }
      }
    },
    updateHttpClientConfig: () => {},
    httpHandlerConfigs: () => ({})
  }
  /**
   * A stand-in for the SDK client itself, answering each command from the same tables without serialising,
   * signing or parsing anything (`--transport=none`): what is left of the store's CPU is its own.
   */
  const bareClient = {
    send: (command: { readonly constructor: { readonly name: string }; readonly input: unknown }) => {
      const operation = command.constructor.name.replace(/Command$/, "")
      requests[operation] = (requests[operation] ?? 0) + 1
      const { body, status } = handlers[operation]!(toWire(command.input) as WireRequest)
      if (status === 200) return Promise.resolve(fromWire(body))
      const failure = body as { readonly __type: string; readonly Item?: unknown }
      return Promise.reject(
        Object.assign(new Error(failure.__type), { name: failure.__type.split("#")[1], Item: fromWire(failure.Item) })
      )
    },
    destroy: () => {}
  }
  return { requestHandler, bareClient }
}

/** An SDK input in the wire's form (bytes as base64), for the fake's handlers. */
const toWire = (value: unknown): unknown => {
  if (value instanceof Uint8Array) return Buffer.from(value).toString("base64")
  if (Array.isArray(value)) return value.map(toWire)
  if (value === null || value === undefined || typeof value !== "object") return value
  return Object.fromEntries(Object.entries(value).map(([name, inner]) => [name, toWire(inner)]))
}

/** A request as the fake received it, back in the SDK's input form (binary attributes as bytes). */
const fromWire = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(fromWire)
  if (value === null || typeof value !== "object") return value
  const entries = Object.entries(value)
  if (entries.length === 1 && entries[0]![0] === "B" && typeof entries[0]![1] === "string") {
    return { B: Buffer.from(entries[0]![1], "base64") }
  }
  return Object.fromEntries(entries.map(([name, inner]) => [name, fromWire(inner)]))
}

const args = process.argv.slice(2).filter((arg) => !arg.startsWith("--"))
const only = process.argv.find((arg) => arg.startsWith("--only="))?.slice(7)
const phases = process.argv.find((arg) => arg.startsWith("--phase="))?.slice(8).split(",") ?? ["put", "get", "range"]
const operations = Number(args[0] ?? 4000)
const keys = Number(args[1] ?? 200)
const rangeKeys = Number(args[2] ?? 1000)
const concurrency = Number(args[3] ?? 16)
const rounds = Number(args[4] ?? 3)
const value = new Uint8Array(randomBytes(256))

const fake = makeFake()
const client = new DynamoDBClient({
  endpoint: "http://fake",
  region: "us-east-1",
  credentials: { accessKeyId: "fake", secretAccessKey: "fake" },
  maxAttempts: 5,
  // The store's layers give their clients this decoder (StoreLive.clientConfig); the peer shares the client.
  base64Decoder,
  requestHandler: fake.requestHandler
})

/** Client CPU (user + system) per operation, µs, of `count` runs of `op` at the configured concurrency. */
const cpuPerOp = (count: number, op: (i: number) => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const sent = Object.values(requests).reduce((sum, n) => sum + n, 0)
    const before = process.cpuUsage()
    const started = performance.now()
    yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), op, { concurrency, discard: true })
    const used = process.cpuUsage(before)
    const requestsPerOp = (Object.values(requests).reduce((sum, n) => sum + n, 0) - sent) / count
    return { cpu: (used.user + used.system) / count, wall: (performance.now() - started) * 1000 / count, requestsPerOp }
  })

const keyOf = (i: number) => `/bench/${String(i % keys).padStart(6, "0")}`
const rangeKeyOf = (i: number) => `/range/${String(i).padStart(6, "0")}`

const peer = {
  put: (key: string) =>
    Effect.promise(() =>
      client.send(
        new PutItemCommand({
          TableName: "peer",
          Item: {
            HashKey: { S: "teleport" },
            FullPath: { S: key },
            Value: { B: value },
            Revision: { S: randomUUID() },
            Timestamp: { N: String(Date.now()) }
          }
        })
      )
    ),
  get: (key: string) =>
    Effect.promise(() =>
      client.send(
        new GetItemCommand({
          TableName: "peer",
          Key: { HashKey: { S: "teleport" }, FullPath: { S: key } },
          ConsistentRead: true
        })
      )
    ),
  range: (start: string, end: string) =>
    Effect.promise(async () => {
      const items: Array<Record<string, AttributeValue>> = []
      let startKey: Record<string, AttributeValue> | undefined
      do {
        const page = await client.send(
          new QueryCommand({
            TableName: "peer",
            KeyConditionExpression: "HashKey = :hk AND FullPath BETWEEN :start AND :end",
            ExpressionAttributeValues: { ":hk": { S: "teleport" }, ":start": { S: start }, ":end": { S: end } },
            ConsistentRead: true,
            ExclusiveStartKey: startKey
          })
        )
        items.push(...(page.Items ?? []))
        startKey = page.LastEvaluatedKey
      } while (startKey !== undefined)
      return items
    })
}

const storeClient = process.argv.includes("--transport=none")
  ? fake.bareClient as unknown as DynamoDBClient
  : client
const streams = new DynamoDBStreamsClient({
  endpoint: "http://fake",
  region: "us-east-1",
  credentials: { accessKeyId: "fake", secretAccessKey: "fake" }
})
const storeLayer = Store.layer(defaultStoreOptions).pipe(
  Layer.provideMerge(encryptedEventTable({ table: "store", namespace: "profile" })),
  Layer.provide(RawAesKeyring.layerEphemeral),
  Layer.provideMerge(
    Layer.mergeAll(
      Layer.succeed(Dynamo, Dynamo.fromClient(storeClient)),
      Layer.succeed(StreamsApi, fromClients(storeClient, streams))
    )
  )
)

interface Measured {
  readonly cpu: number
  readonly wall: number
  readonly requestsPerOp: number
}

const report = (name: string, store: Measured, base: Measured) =>
  console.log(
    `${name.padEnd(14)} store ${store.cpu.toFixed(0).padStart(7)} µs  peer ${base.cpu.toFixed(0).padStart(6)} µs  ${
      (store.cpu / base.cpu).toFixed(2)
    }x  wall per op: store ${store.wall.toFixed(0)} µs, peer ${base.wall.toFixed(0)} µs  requests per op: store ${
      store.requestsPerOp.toFixed(2)
    }, peer ${base.requestsPerOp.toFixed(2)}`
  )

const program = Effect.gen(function*() {
  const store = yield* Store
  const none = { cpu: NaN, wall: NaN, requestsPerOp: NaN }
  const runStore = only !== "peer"
  const runPeer = only !== "store"
  const put = phases.includes("put")
  const get = phases.includes("get")
  const range = phases.includes("range")
  // Warm up both (JIT, data key, the store's actors) before measuring.
  const item = (key: string) => ({ key, value, expires: undefined, revision: "" })
  if (runStore) yield* cpuPerOp(keys * 2, (i) => store.put(item(keyOf(i))))
  if (runPeer) yield* cpuPerOp(keys * 2, (i) => peer.put(keyOf(i)))
  if (runStore) yield* cpuPerOp(rangeKeys, (i) => store.put(item(rangeKeyOf(i))))
  if (runPeer) yield* cpuPerOp(rangeKeys, (i) => peer.put(rangeKeyOf(i)))

  const ranges = Math.max(4, Math.floor(operations / 200))
  const lastRangeKey = rangeKeyOf(rangeKeys - 1)
  const best = (a: Measured, b: Measured) => Number.isNaN(a.cpu) || b.cpu < a.cpu ? b : a
  let storePut = none
  let peerPut = none
  let storeGet = none
  let peerGet = none
  let storeRange = none
  let peerRange = none
  // Alternated and best of `rounds`: other processes on the machine inflate a run's CPU time, never deflate it.
  for (let round = 0; round < rounds; round++) {
    if (runStore && put) storePut = best(storePut, yield* cpuPerOp(operations, (i) => store.put(item(keyOf(i)))))
    if (runPeer && put) peerPut = best(peerPut, yield* cpuPerOp(operations, (i) => peer.put(keyOf(i))))
    if (runStore && get) storeGet = best(storeGet, yield* cpuPerOp(operations, (i) => store.get(keyOf(i))))
    if (runPeer && get) peerGet = best(peerGet, yield* cpuPerOp(operations, (i) => peer.get(keyOf(i))))
    if (runStore && range) {
      storeRange = best(
        storeRange,
        yield* cpuPerOp(ranges, () =>
          store.getRange("/range/", lastRangeKey).pipe(
            Effect.tap((items) => (items.length === rangeKeys ? Effect.void : Effect.die(`got ${items.length}`)))
          ))
      )
    }
    if (runPeer && range) {
      peerRange = best(
        peerRange,
        yield* cpuPerOp(ranges, () => peer.range("/range/", lastRangeKey))
      )
    }
  }
  if (phases.includes("wire")) {
    // The SDK alone sending the store's own last requests: how much of the store's CPU is the SDK's work on its items.
    const putInput = fromWire({ ...lastRequests["store.PutItem"], TableName: "replay" }) as PutItemCommandInput
    const queryInput = fromWire(lastRequests["store.Query"]) as QueryCommandInput
    let wirePut = none
    let wireGet = none
    let wireSignal = none
    for (let round = 0; round < rounds; round++) {
      wirePut = best(
        wirePut,
        yield* cpuPerOp(operations, () => Effect.promise(() => client.send(new PutItemCommand(putInput))))
      )
      wireGet = best(
        wireGet,
        yield* cpuPerOp(operations, () => Effect.promise(() => client.send(new QueryCommand(queryInput))))
      )
      wireSignal = best(
        wireSignal,
        yield* cpuPerOp(
          operations,
          () => Effect.promise((signal) => client.send(new PutItemCommand(putInput), { abortSignal: signal }))
        )
      )
    }
    report("sdk: put, signal", wireSignal, peerPut)
    report("sdk: store's put", wirePut, peerPut)
    report("sdk: store's get", wireGet, peerGet)
  }
  report("put", storePut, peerPut)
  report("get", storeGet, peerGet)
  report(`range ${rangeKeys}`, storeRange, peerRange)
  console.log(
    JSON.stringify({
      put: { store: storePut.cpu, peer: peerPut.cpu },
      get: { store: storeGet.cpu, peer: peerGet.cpu },
      range: { store: storeRange.cpu, peer: peerRange.cpu }
    })
  )
})

Effect.runPromise(program.pipe(Effect.provide(storeLayer), Effect.scoped)).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
