/**
 * Single-key operations: put and get at concurrency 1 and at the run's concurrency over `--keys` keys, and
 * create of keys never written; beside them the raw SDK request: the peer's for put, dynastate's for get. The put and
 * get phases also give the process's CPU per operation over the real connection, which the stub-transport rows of
 * the `cpu` workload leave out.
 */
import { PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import { Effect } from "effect"
import * as SortKey from "../../src/domain/SortKey.ts"
import * as EventRecord from "../../src/infra/EventRecord.ts"
import { keyPartition } from "../../src/infra/PartitionKeys.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import { alternate, phase, sizeOf } from "../Env.ts"
import type { Row } from "../Report.ts"
import { figureOf } from "../Report.ts"
import type { PhaseSize } from "../support/Measure.ts"
import { measure } from "../support/Measure.ts"

const rawPut = (env: BenchEnv, key: string) =>
  Effect.promise(() =>
    env.peerClients.dynamodb.send(
      new PutItemCommand({
        TableName: env.peer.table,
        Item: {
          HashKey: { S: "teleport" },
          FullPath: { S: key },
          Value: { B: env.value },
          Revision: { S: crypto.randomUUID() },
          Timestamp: { N: String(Date.now()) }
        }
      })
    )
  )

/**
 * The request a dynastate get sends, by the raw SDK: the newest item of the key's live range (a `Query` with
 * `Limit: 1`, not the peer's `GetItem`), so the row shows what the request itself costs on this DynamoDB apart from
 * the store's own work.
 */
const rawGet = (env: BenchEnv, key: string) =>
  Effect.promise(() =>
    env.dynastateClients.dynamodb.send(
      new QueryCommand({
        ...EventRecord.rangeQuery(
          env.dynastateTable,
          keyPartition(env.location, key),
          SortKey.lowerBound(key),
          SortKey.upperBound(key)
        ),
        Limit: 1
      })
    )
  )

const keyOf = (env: BenchEnv, i: number) => `/kv/${i % env.options.keys}`

const putRow = (env: BenchEnv, size: PhaseSize) =>
  Effect.gen(function*() {
    const { dynastate, peer, raw } = yield* alternate(
      env.options,
      () => phase(env.peerClients, size, (i) => env.peer.put(keyOf(env, i), env.value), true),
      () => phase(env.dynastateClients, size, (i) => env.dynastate.put({ key: keyOf(env, i), value: env.value }), true),
      "higher",
      () =>
        Effect.map(measure(size, (i) => rawPut(env, `/raw${keyOf(env, i)}`)), (sample) =>
          figureOf(sample, undefined, true))
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
      // Warm-up: connections, the JVM's paths, every key's first write and dynastate's first data key.
      // The smoke test skips it: its put phases write every key before the gets read them.
      if (!env.options.quick) {
        const warm = { operations: env.options.keys, concurrency: env.options.concurrency }
        yield* measure(warm, (i) => rawPut(env, `/raw${keyOf(env, i)}`))
        yield* measure(warm, (i) => env.peer.put(keyOf(env, i), env.value))
        yield* measure(warm, (i) => env.dynastate.put({ key: keyOf(env, i), value: env.value }))
      }
      const rows: Array<Row> = []
      for (const concurrency of [1, env.options.concurrency]) rows.push(yield* putRow(env, sizeOf(env, concurrency)))
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
