/**
 * Tombstones are authenticated like values: a delete or expire event carries an encrypted empty value bound to its
 * key, seq, event id, operation and timestamp, so an edited tombstone reads as `DecryptionFailed`. A tombstone
 * without one (written by a version before 0.2, or forged by someone who can write the table) still reads as a
 * deletion, and the worker, which sees it arrive, reports it as unauthenticated.
 */
import { PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { randomUUID } from "node:crypto"
import { DecryptionFailed } from "../../src/domain/Errors.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { openStore } from "../support/TestStore.ts"
import { bytes, eventually, freshEnv, startWorker } from "../worker/support.ts"
import type { Env } from "../worker/support.ts"

type RawItem = Record<string, AttributeValue>

/** The raw event item of `key` at `seq`. */
const rawEvent = (env: Env, key: string, seq: number) =>
  Effect.promise(async () => {
    const page = await env.client.send(
      new QueryCommand({
        TableName: env.location.table,
        KeyConditionExpression: "pk = :pk AND sk = :sk",
        ExpressionAttributeValues: { ":pk": { S: env.location.namespace }, ":sk": { B: SortKey.encode(key, seq) } },
        ConsistentRead: true
      })
    )
    return page.Items?.[0]
  })

const putRaw = (env: Env, item: RawItem) =>
  Effect.promise(() => env.client.send(new PutItemCommand({ TableName: env.location.table, Item: item })))

describe("authenticated tombstones", () => {
  it.live("a delete's tombstone carries a value; relabelled or re-timed it reads as DecryptionFailed", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("tombstone-edit")
      const store = yield* openStore(env.location, { client: env.client })
      for (
        const [index, change] of ([
          [Attr.op, { S: "expire" }],
          [Attr.timestamp, { N: "1" }],
          [Attr.revision, { S: randomUUID() }]
        ] as const).entries()
      ) {
        const key = `/t/edited-${index}`
        yield* store.put({ key, value: bytes("v") })
        yield* store.delete(key)
        const tombstone = (yield* rawEvent(env, key, 2))!
        expect(tombstone[Attr.value]?.B).toBeInstanceOf(Uint8Array)
        yield* putRaw(env, { ...tombstone, [change[0]]: change[1] })
        const fresh = yield* openStore(env.location, { client: env.client })
        const error = yield* Effect.flip(fresh.get(key))
        expect(error).toBeInstanceOf(DecryptionFailed)
        expect(error).toMatchObject({ key, seq: 2 })
      }
    }))

  it.live("a tombstone without a value appended by hand reads as a deletion and the worker reports it", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("tombstone-forged")
      const store = yield* openStore(env.location, { client: env.client })
      const worker = yield* startWorker(env, { group: "forged", settleMillis: 600_000 })
      yield* store.put({ key: "/t/victim", value: bytes("v") })
      yield* store.put({ key: "/t/deleted", value: bytes("w") })
      yield* store.delete("/t/deleted")
      yield* eventually(
        "the worker applied the writes",
        Effect.map(worker.status, (status) => expect(status.eventsApplied).toBeGreaterThanOrEqual(3))
      )
      // A genuine delete raises nothing.
      expect((yield* worker.status).tampering).toEqual([])
      yield* putRaw(env, {
        [Attr.partition]: { S: env.location.namespace },
        [Attr.sort]: { B: SortKey.encode("/t/victim", 2) },
        [Attr.revision]: { S: randomUUID() },
        [Attr.seq]: { N: "2" },
        [Attr.op]: { S: "delete" },
        [Attr.timestamp]: { N: String(Date.now()) }
      })
      const reader = yield* openStore(env.location, { client: env.client })
      expect((yield* Effect.flip(reader.get("/t/victim")))._tag).toBe("NotFound")
      yield* eventually(
        "the worker reports the unauthenticated tombstone",
        Effect.map(
          worker.status,
          (status) =>
            expect(status.tampering.map(({ key, kind, seq }) => ({ kind, key, seq }))).toEqual([
              { kind: "unauthenticated", key: "/t/victim", seq: 2 }
            ])
        ),
        5_000
      )
    }))
})
