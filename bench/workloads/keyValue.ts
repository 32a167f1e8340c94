/**
 * Single-key operations: put and get at concurrency 1 and at the run's concurrency over `--keys` keys, and
 * create of keys never written; beside them the raw SDK request a dynastate put or get sends, so each row shows what
 * the request alone costs on this DynamoDB apart from the store's own work. The put and get phases also give the
 * process's CPU per operation over the real connection, which the stub-transport rows of the `cpu` workload leave out.
 */
import { PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { Effect } from "effect"
import * as SortKey from "../../src/domain/SortKey.ts"
import * as EventRecord from "../../src/infra/EventRecord.ts"
import { keyPartition } from "../../src/infra/PartitionKeys.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import { alternate, phase, sizeOf, streamStartKey } from "../Env.ts"
import type { Row } from "../Report.ts"
import { figureOf } from "../Report.ts"
import type { PhaseSize } from "../support/Measure.ts"
import { measure } from "../support/Measure.ts"

const { Attr } = EventRecord

/** The newest item of a key's live range in dynastate's table, as its get reads it. */
const newestItemQuery = (env: BenchEnv, key: string) =>
  new QueryCommand({
    ...EventRecord.rangeQuery(
      env.dynastateTable,
      keyPartition(env.location, key),
      SortKey.lowerBound(key),
      SortKey.upperBound(key)
    ),
    Limit: 1
  })

/**
 * The request a dynastate put sends, by the raw SDK: the conditional `PutItem` of an event item, shaped as the store
 * wrote the run's first item (`streamStartKey`, whose attributes and encrypted value it copies) under a key and seq of
 * its own. The value is not encrypted anew: that is the store's work, which the row's dynastate column adds. So these
 * items do not authenticate as events of their keys (their values stay bound to the first key's event): no workload
 * reads the `/raw` keys, and a watch skips them by key before decrypting.
 */
const rawPutOf = (env: BenchEnv) =>
  Effect.gen(function*() {
    const written = yield* Effect.promise(() =>
      env.dynastateClients.dynamodb.send(newestItemQuery(env, streamStartKey))
    )
    const template = written.Items?.[0]
    if (template === undefined) return yield* Effect.die(new Error(`dynastate's ${streamStartKey} item is missing`))
    let seq = 0
    return (key: string) => {
      // Each request a new event: its own sort key, as every append of the store has.
      seq += 1
      const item: Record<string, AttributeValue> = {
        ...template,
        [Attr.partition]: { S: keyPartition(env.location, key) },
        [Attr.sort]: { B: SortKey.encode(key, seq) },
        [Attr.seq]: { N: String(seq) },
        [Attr.revision]: { S: crypto.randomUUID() },
        [Attr.timestamp]: { N: String(Date.now()) }
      }
      return Effect.promise(() =>
        env.dynastateClients.dynamodb.send(
          new PutItemCommand({
            TableName: env.dynastateTable,
            Item: item,
            ConditionExpression: "attribute_not_exists(#sk)",
            ExpressionAttributeNames: { "#sk": Attr.sort },
            ReturnValuesOnConditionCheckFailure: "ALL_OLD"
          })
        )
      )
    }
  })

/**
 * The request a dynastate get sends, by the raw SDK: the newest item of the key's live range (a `Query` with
 * `Limit: 1`, not the peer's `GetItem`), so the row shows what the request itself costs on this DynamoDB apart from
 * the store's own work.
 */
const rawGet = (env: BenchEnv, key: string) =>
  Effect.promise(() => env.dynastateClients.dynamodb.send(newestItemQuery(env, key)))

const keyOf = (env: BenchEnv, i: number) => `/kv/${i % env.options.keys}`

const putRow = (env: BenchEnv, size: PhaseSize, rawPut: (key: string) => Effect.Effect<unknown>) =>
  Effect.gen(function*() {
    const { dynastate, peer, raw } = yield* alternate(
      env.options,
      () => phase(env.peerClients, size, (i) => env.peer.put(keyOf(env, i), env.value), true),
      () => phase(env.dynastateClients, size, (i) => env.dynastate.put({ key: keyOf(env, i), value: env.value }), true),
      "higher",
      () =>
        Effect.map(measure(size, (i) => rawPut(`/raw${keyOf(env, i)}`)), (sample) => figureOf(sample, undefined, true))
    )
    return { workload: `put, concurrency ${size.concurrency}`, raw, peer, dynastate, better: "higher" } satisfies Row
  })

const getRow = (env: BenchEnv, size: PhaseSize) =>
  Effect.gen(function*() {
    const { dynastate, peer, raw } = yield* alternate(
      env.options,
      () => phase(env.peerClients, size, (i) => env.peer.get(keyOf(env, i)), true),
      () => phase(env.dynastateClients, size, (i) => env.dynastate.get(keyOf(env, i)), true),
      "higher",
      () => Effect.map(measure(size, (i) => rawGet(env, keyOf(env, i))), (sample) => figureOf(sample, undefined, true))
    )
    return { workload: `get, concurrency ${size.concurrency}`, raw, peer, dynastate, better: "higher" } satisfies Row
  })

/** put and get, concurrency 1 and `--concurrency`. */
export const putGet: Workload = {
  name: "put-get",
  run: (env) =>
    Effect.gen(function*() {
      const rawPut = yield* rawPutOf(env)
      // Warm-up: connections, the JVM's paths, every key's first write and dynastate's first data key.
      // The smoke test skips it: its put phases write every key before the gets read them.
      if (!env.options.quick) {
        const warm = { operations: env.options.keys, concurrency: env.options.concurrency }
        yield* measure(warm, (i) => rawPut(`/raw${keyOf(env, i)}`))
        yield* measure(warm, (i) => env.peer.put(keyOf(env, i), env.value))
        yield* measure(warm, (i) => env.dynastate.put({ key: keyOf(env, i), value: env.value }))
      }
      const rows: Array<Row> = []
      for (const concurrency of [1, env.options.concurrency]) {
        rows.push(yield* putRow(env, sizeOf(env, concurrency), rawPut))
      }
      for (const concurrency of [1, env.options.concurrency]) rows.push(yield* getRow(env, sizeOf(env, concurrency)))
      return rows
    })
}

/** create of keys nobody wrote: dynastate reads the key's live range and its grave first, the peer does not. */
export const create: Workload = {
  name: "create",
  run: (env) =>
    Effect.gen(function*() {
      const size = sizeOf(env, env.options.concurrency)
      const { dynastate, peer } = yield* alternate(
        env.options,
        (round) => phase(env.peerClients, size, (i) => env.peer.create(`/create/${round}/${i}`, env.value)),
        (round) =>
          phase(env.dynastateClients, size, (i) =>
            env.dynastate.create({ key: `/create/${round}/${i}`, value: env.value }))
      )
      return [{ workload: `create of new keys, concurrency ${size.concurrency}`, peer, dynastate, better: "higher" }]
    })
}
