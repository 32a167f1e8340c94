/**
 * History of one key with many events: dynastate's `history` (every kept event, decrypted, oldest first) beside
 * the raw SDK `Query` of the same items. The peer keeps no history, so the baseline is the raw read.
 */
import { QueryCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { Effect, Stream } from "effect"
import * as SortKey from "../../src/domain/SortKey.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import { phase } from "../Env.ts"
import { measure } from "../support/Measure.ts"

/** Every item of the key's events, paged, as the raw SDK reads them. */
const rawRead = (env: BenchEnv, key: string) =>
  Effect.promise(async () => {
    let count = 0
    let from: Record<string, AttributeValue> | undefined
    do {
      const page = await env.dynastateClients.dynamodb.send(
        new QueryCommand({
          TableName: env.dynastateTable,
          KeyConditionExpression: "pk = :pk AND sk BETWEEN :lo AND :hi",
          ExpressionAttributeValues: {
            ":pk": { S: "bench" },
            ":lo": { B: SortKey.lowerBound(key) },
            ":hi": { B: SortKey.upperBound(key) }
          },
          ConsistentRead: true,
          ExclusiveStartKey: from
        })
      )
      count += page.Count ?? 0
      from = page.LastEvaluatedKey
    } while (from !== undefined)
    return count
  })

/** Reads of a key's whole history. */
export const history: Workload = {
  name: "history",
  run: (env) =>
    Effect.gen(function*() {
      const events = env.options.historyEvents
      const key = "/history/one"
      yield* measure({ operations: events, concurrency: 4 }, () => env.dynastate.put({ key, value: env.value }))
      const size = { operations: env.options.quick ? 2 : 10, concurrency: 1 }
      const check = (what: string) => (count: number) =>
        count === events ? Effect.void : Effect.die(new Error(`${what} read ${count} of ${events} events`))
      const raw = yield* phase(env.dynastateClients, size, () => rawRead(env, key).pipe(Effect.tap(check("raw Query"))))
      const dynastate = yield* phase(
        env.dynastateClients,
        size,
        () =>
          Effect.map(Stream.runCollect(env.dynastate.history(key)), (all) => all.length).pipe(
            Effect.tap(check("history"))
          )
      )
      return [{
        workload: `history of a key with ${events} events (reads/s)`,
        raw,
        dynastate,
        better: "higher",
        baseline: "raw"
      }]
    })
}
