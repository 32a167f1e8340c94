/**
 * Client CPU per operation with a stub transport (no server at all): process CPU time (user + system) per put and
 * per get of one key, and per range read of 100 keys, serially, for the raw SDK call, the peer and dynastate. Replies
 * are canned from items the real stores wrote, so dynastate decrypts real values under a real data key. The stub's
 * own work (parsing each request, serialising its reply) is taken out of every figure: it stands for the server's.
 * Each figure stands for the steady cost of a running process: the first rounds, while V8 is still optimising the
 * clients, are not counted (see `schedule`).
 */
import { GetItemCommand, PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { Effect } from "effect"
import * as SortKey from "../../src/domain/SortKey.ts"
import { partitionOf } from "../../src/infra/crypto/DataKeyStore.ts"
import * as EventRecord from "../../src/infra/EventRecord.ts"
import { keyPartition } from "../../src/infra/PartitionKeys.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import { alternate } from "../Env.ts"
import * as TeleportStore from "../peer/TeleportStore.ts"
import type { Figure, Row } from "../Report.ts"
import { makeClients } from "../support/Clients.ts"
import * as Dynastate from "../support/Dynastate.ts"
import type { PhaseSize } from "../support/Measure.ts"
import { measure } from "../support/Measure.ts"
import * as Stub from "../support/Stub.ts"

const key = "/cpu/one"

/**
 * CPU µs per operation over a serial phase (after a warm-up of a fifth of it), less the stub's own work (`meter`):
 * what a server would do is not the client's.
 */
const cpuPerOp = <E>(size: PhaseSize, meter: Stub.Meter, op: (i: number) => Effect.Effect<unknown, E>) =>
  Effect.gen(function*() {
    yield* measure({ ...size, operations: Math.ceil(size.operations / 5) }, op)
    const stubBefore = meter.micros
    const sample = yield* measure(size, op)
    const stubWork = meter.micros - stubBefore
    return { value: (sample.cpuMicros - stubWork) / sample.operations, unit: "µs CPU" } satisfies Figure
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
    return answering(yield* dataKeyItems(env), [Stub.toWire(live.Items![0]!)])
  })

/** The data-key items of dynastate's namespace, as the stub hands them to a `GetItem`. */
const dataKeyItems = (env: BenchEnv) =>
  Effect.map(
    Effect.promise(() =>
      env.dynastateClients.dynamodb.send(
        new QueryCommand({
          TableName: env.dynastateTable,
          KeyConditionExpression: "pk = :pk",
          ExpressionAttributeValues: { ":pk": { S: partitionOf("bench") } },
          ConsistentRead: true
        })
      )
    ),
    (output) => (output.Items ?? []).map(Stub.toWire)
  )

/** A stub of dynastate's table: `events` for every query of the namespace's events, the data keys by `GetItem`. */
const answering = (keys: ReadonlyArray<Stub.WireItem>, events: ReadonlyArray<Stub.WireItem>): Stub.Answer => {
  const sameKey = (item: Stub.WireItem, wanted: Record<string, unknown>) =>
    Object.entries(wanted).every(([name, value]) => JSON.stringify(item[name]) === JSON.stringify(value))
  return (operation, input) => {
    if (operation === "Query") {
      const values = input["ExpressionAttributeValues"] as Record<string, { S?: string }> | undefined
      return values?.[":pk"]?.S === "bench"
        ? { Items: events, Count: events.length, ScannedCount: events.length }
        : { Items: [], Count: 0, ScannedCount: 0 }
    }
    if (operation === "GetItem") {
      const found = keys.find((item) => sameKey(item, input["Key"] as Record<string, unknown>))
      return found === undefined ? {} : { Item: found }
    }
    return {}
  }
}

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

/** The prefix of the keys the range row reads. */
const rangePrefix = "/cpu-range/"

/**
 * The peer and a dynastate instance over stub clients answering with `peerAnswer` and `dynastateAnswer` (the raw
 * SDK calls go through the same clients); the clients are destroyed with the scope.
 */
const stubbed = (env: BenchEnv, peerAnswer: Stub.Answer, dynastateAnswer: Stub.Answer) =>
  Effect.gen(function*() {
    const meter: Stub.Meter = { micros: 0 }
    const peerStub = makeClients(env.endpoint, { requestHandler: Stub.handler(peerAnswer, meter)! })
    const dynastateStub = makeClients(env.endpoint, { requestHandler: Stub.handler(dynastateAnswer, meter)! })
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        peerStub.destroy()
        dynastateStub.destroy()
      })
    )
    const { store } = yield* Dynastate.open({
      clients: dynastateStub,
      location: env.location,
      key: env.key,
      calls: { generate: 0, wrap: 0, unwrap: 0 }
    })
    return { peerStub, dynastateStub, meter, peer: TeleportStore.make(peerStub.dynamodb, env.peer.table), store }
  })

/**
 * The rounds of a CPU row: at least four measured (a CPU round is cheap, and the machine noisy), after the run's
 * settling rounds (`--settle`, four by default, none in quick runs, which only check that the rows work). V8 goes on
 * optimising a client for thousands of operations: over 3,000-put phases the store's CPU per put fell until its
 * fourth round (from 329 µs to 209–251, about 15,000 puts), the peer's until its third (from 216 µs to 125–135). A
 * phase before then measures the compiler at work, not what a put costs a running process.
 */
const schedule = (env: BenchEnv) => ({
  rounds: env.options.quick ? 1 : Math.max(env.options.rounds, 4),
  settle: env.options.settle
})

/** A CPU row: the peer, the raw SDK call and dynastate in turn (see `alternate`), the lowest of each. */
const cpuRow = <E1, E2, E3>(
  env: BenchEnv,
  workload: string,
  size: PhaseSize,
  meter: Stub.Meter,
  ops: {
    readonly raw: () => Effect.Effect<unknown, E1>
    readonly peer: () => Effect.Effect<unknown, E2>
    readonly dynastate: () => Effect.Effect<unknown, E3>
  }
) =>
  Effect.map(
    alternate(
      schedule(env),
      () => cpuPerOp(size, meter, ops.peer),
      () => cpuPerOp(size, meter, ops.dynastate),
      "lower",
      () => cpuPerOp(size, meter, ops.raw)
    ),
    ({ dynastate, peer, raw }) => ({ workload, raw, peer, dynastate, better: "lower" }) satisfies Row
  )

/**
 * CPU per range read of the range workload's smaller size, over stubs answering every query with the keys' items
 * as the real stores wrote them (one page): the raw SDK sending dynastate's `Query`, the peer's read and dynastate's
 * `getRange`, each read checked to return every key.
 */
const rangeRow = (env: BenchEnv) =>
  Effect.gen(function*() {
    const count = env.options.rangeSizes[0]!
    const end = `${rangePrefix}~`
    yield* measure({ operations: count, concurrency: env.options.concurrency }, (i) => {
      const key = `${rangePrefix}${String(i).padStart(6, "0")}`
      return Effect.andThen(env.peer.put(key, env.value), env.dynastate.put({ key, value: env.value }))
    })
    const peerRead = yield* Effect.promise(() =>
      env.peerClients.dynamodb.send(
        new QueryCommand({
          TableName: env.peer.table,
          KeyConditionExpression: "HashKey = :hash AND FullPath BETWEEN :start AND :end",
          ExpressionAttributeValues: {
            ":hash": { S: TeleportStore.hashKey },
            ":start": { S: rangePrefix },
            ":end": { S: end }
          },
          ConsistentRead: true
        })
      )
    )
    const storeQuery = EventRecord.rangeQuery(
      env.dynastateTable,
      keyPartition(env.location, rangePrefix),
      SortKey.lowerBound(rangePrefix),
      SortKey.upperBound(end)
    )
    const storeRead = yield* Effect.promise(() => env.dynastateClients.dynamodb.send(new QueryCommand(storeQuery)))
    for (const [side, read] of [["peer", peerRead], ["dynastate", storeRead]] as const) {
      if (read.Items?.length !== count || read.LastEvaluatedKey !== undefined) {
        return yield* Effect.die(new Error(`${side}'s range of ${count} keys did not come in one page of ${count}`))
      }
    }
    const peerItems = peerRead.Items!.map(Stub.toWire)
    const { dynastateStub, meter, peer, store } = yield* stubbed(
      env,
      () => ({ Items: peerItems, Count: count, ScannedCount: count }),
      answering(yield* dataKeyItems(env), storeRead.Items!.map(Stub.toWire))
    )
    const everyKey = (side: string) => (items: ReadonlyArray<unknown>) =>
      items.length === count ? Effect.void : Effect.die(new Error(`${side} read ${items.length} of ${count} keys`))
    return yield* cpuRow(
      env,
      `client CPU per range read of ${count} keys, stub transport (no server)`,
      { operations: env.options.quick ? 10 : 300, concurrency: 1 },
      meter,
      {
        raw: () =>
          Effect.promise(() => dynastateStub.dynamodb.send(new QueryCommand(storeQuery))).pipe(
            Effect.flatMap((output) => everyKey("raw SDK")(output.Items ?? []))
          ),
        peer: () => Effect.flatMap(peer.getRange(rangePrefix, end), everyKey("peer")),
        dynastate: () => Effect.flatMap(store.getRange(rangePrefix, end), everyKey("dynastate"))
      }
    )
  })

/** CPU per put, per get and per range read, stub transport. */
export const clientCpu: Workload = {
  name: "cpu",
  run: (env) =>
    Effect.gen(function*() {
      const { meter, peer, peerStub, store } = yield* stubbed(
        env,
        yield* capturePeer(env),
        yield* captureDynastate(env)
      )
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
      return [
        yield* cpuRow(env, "client CPU per put, stub transport (no server)", size, meter, {
          raw: rawPut,
          peer: () => peer.put(key, env.value),
          dynastate: () => store.put({ key, value: env.value })
        }),
        yield* cpuRow(env, "client CPU per get, stub transport (no server)", size, meter, {
          raw: rawGet,
          peer: () => peer.get(key),
          dynastate: () => store.get(key)
        }),
        yield* rangeRow(env)
      ] satisfies Array<Row>
    })
}
