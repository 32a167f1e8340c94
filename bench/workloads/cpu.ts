/**
 * Client CPU per operation with a stub transport (no server at all): process CPU time (user + system) per put and
 * per get of one key, serially, for the raw SDK call, the peer and dynastate. Replies are canned from items the
 * real stores wrote, so dynastate decrypts a real value under a real data key.
 */
import { GetItemCommand, PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { Effect } from "effect"
import * as SortKey from "../../src/domain/SortKey.ts"
import { partitionOf } from "../../src/infra/crypto/DataKeyStore.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import * as TeleportStore from "../peer/TeleportStore.ts"
import type { Figure, Row } from "../Report.ts"
import { makeClients } from "../support/Clients.ts"
import * as Dynastate from "../support/Dynastate.ts"
import type { PhaseSize } from "../support/Measure.ts"
import { measure } from "../support/Measure.ts"
import * as Stub from "../support/Stub.ts"

const key = "/cpu/one"

/** CPU µs per operation over a serial phase (after a warm-up of a fifth of it). */
const cpuPerOp = <E>(size: PhaseSize, op: (i: number) => Effect.Effect<unknown, E>) =>
  Effect.gen(function*() {
    yield* measure({ ...size, operations: Math.ceil(size.operations / 5) }, op)
    const before = process.cpuUsage()
    const sample = yield* measure(size, op)
    const used = process.cpuUsage(before)
    return {
      value: (used.user + used.system) / sample.operations,
      unit: "µs CPU",
      throughput: sample.operations / sample.seconds
    } satisfies Figure
  })

/** What the stub answers for dynastate: the key's newest event, and the data keys its values name. */
const captureDynastate = (env: BenchEnv) =>
  Effect.gen(function*() {
    yield* env.dynastate.put({ key, value: env.value })
    const client = env.dynastateClients.dynamodb
    const live = yield* Effect.promise(() =>
      client.send(
        new QueryCommand({
          TableName: env.dynastateTable,
          KeyConditionExpression: "pk = :pk AND sk BETWEEN :lo AND :hi",
          ExpressionAttributeValues: {
            ":pk": { S: "bench" },
            ":lo": { B: SortKey.lowerBound(key) },
            ":hi": { B: SortKey.upperBound(key) }
          },
          ConsistentRead: true,
          Limit: 1
        })
      )
    )
    const dataKeys = yield* Effect.promise(() =>
      client.send(
        new QueryCommand({
          TableName: env.dynastateTable,
          KeyConditionExpression: "pk = :pk",
          ExpressionAttributeValues: { ":pk": { S: partitionOf("bench") } },
          ConsistentRead: true
        })
      )
    )
    const event = Stub.toWire(live.Items![0]!)
    const keys = (dataKeys.Items ?? []).map(Stub.toWire)
    const sameKey = (item: Stub.WireItem, wanted: Record<string, unknown>) =>
      Object.entries(wanted).every(([name, value]) => JSON.stringify(item[name]) === JSON.stringify(value))
    const answer: Stub.Answer = (operation, input) => {
      if (operation === "Query") {
        const values = input["ExpressionAttributeValues"] as Record<string, { S?: string }> | undefined
        return values?.[":pk"]?.S === "bench"
          ? { Items: [event], Count: 1, ScannedCount: 1 }
          : { Items: [], Count: 0, ScannedCount: 0 }
      }
      if (operation === "GetItem") {
        const found = keys.find((item) => sameKey(item, input["Key"] as Record<string, unknown>))
        return found === undefined ? {} : { Item: found }
      }
      return {}
    }
    return answer
  })

const capturePeer = (env: BenchEnv) =>
  Effect.gen(function*() {
    yield* env.peer.put(key, env.value)
    const output = yield* Effect.promise(() =>
      env.peerClients.dynamodb.send(
        new GetItemCommand({
          TableName: env.peer.table,
          Key: { HashKey: { S: TeleportStore.hashKey }, FullPath: { S: key } },
          ConsistentRead: true
        })
      )
    )
    const item = Stub.toWire(output.Item as Record<string, AttributeValue>)
    const answer: Stub.Answer = (operation) => (operation === "GetItem" ? { Item: item } : {})
    return answer
  })

/** CPU per put and per get, stub transport. */
export const clientCpu: Workload = {
  name: "cpu",
  run: (env) =>
    Effect.gen(function*() {
      const peerStub = makeClients(env.endpoint, { requestHandler: Stub.handler(yield* capturePeer(env))! })
      const dynastateStub = makeClients(env.endpoint, { requestHandler: Stub.handler(yield* captureDynastate(env))! })
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          peerStub.destroy()
          dynastateStub.destroy()
        })
      )
      const peer = TeleportStore.make(peerStub.dynamodb, env.peer.table)
      const { store } = yield* Dynastate.open({
        clients: dynastateStub,
        location: { table: env.dynastateTable, namespace: "bench" },
        key: env.key,
        calls: { generate: 0, wrap: 0, unwrap: 0 }
      })
      const size = { operations: env.options.quick ? 100 : 3000, concurrency: 1 }
      const rawPut = () =>
        Effect.promise(() =>
          peerStub.dynamodb.send(
            new PutItemCommand({
              TableName: env.peer.table,
              Item: {
                HashKey: { S: TeleportStore.hashKey },
                FullPath: { S: key },
                Value: { B: env.value },
                Revision: { S: crypto.randomUUID() },
                Timestamp: { N: String(Date.now()) }
              }
            })
          )
        )
      const rawGet = () =>
        Effect.promise(() =>
          peerStub.dynamodb.send(
            new GetItemCommand({
              TableName: env.peer.table,
              Key: { HashKey: { S: TeleportStore.hashKey }, FullPath: { S: key } },
              ConsistentRead: true
            })
          )
        )
      const rows: Array<Row> = []
      for (const op of ["put", "get"] as const) {
        const peers: Array<Figure> = []
        const dynastates: Array<Figure> = []
        const raw = yield* cpuPerOp(size, op === "put" ? rawPut : rawGet)
        for (let round = 0; round < env.options.rounds; round++) {
          peers.push(yield* cpuPerOp(size, () => (op === "put" ? peer.put(key, env.value) : peer.get(key))))
          const dynastateOp = (): Effect.Effect<unknown, unknown> =>
            op === "put" ? store.put({ key, value: env.value }) : store.get(key)
          dynastates.push(yield* cpuPerOp(size, dynastateOp))
        }
        const lowest = (figures: ReadonlyArray<Figure>) =>
          figures.reduce((a, b) => ((b.value ?? 0) < (a.value ?? 0) ? b : a))
        rows.push({
          workload: `client CPU per ${op}, stub transport (no server)`,
          raw: { value: raw.value, unit: raw.unit },
          peer: { value: lowest(peers).value, unit: "µs CPU" },
          dynastate: { value: lowest(dynastates).value, unit: "µs CPU" },
          better: "lower"
        })
      }
      return rows
    })
}
