/**
 * The Lambda handler runs projections over records in Lambda's JSON shape
 * (binary attributes as base64), taken here from DynamoDB Local's real stream.
 */
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import type { Event } from "../../src/domain/Event.ts"
import { listShards } from "../../src/infra/streams/StreamReader.ts"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import type { StreamRecord } from "../../src/infra/streams/StreamsApi.ts"
import type { DynamoDBStreamEvent } from "../../src/programs/worker/LambdaHandler.ts"
import { handleBatch, makeHandler } from "../../src/programs/worker/LambdaHandler.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"
import { eventTableLayer, makeClient, openStore, provisionTable, streamsConfig } from "../support/TestStore.ts"

const bytes = (text: string) => new TextEncoder().encode(text)

/** An attribute in Lambda's JSON form. */
const toLambda = (value: AttributeValue): Record<string, unknown> => {
  if (value.B !== undefined) return { B: Buffer.from(value.B).toString("base64") }
  if (value.L !== undefined) return { L: value.L.map(toLambda) }
  if (value.M !== undefined) return { M: Object.fromEntries(Object.entries(value.M).map(([k, v]) => [k, toLambda(v)])) }
  return value as unknown as Record<string, unknown>
}

const toLambdaEvent = (records: ReadonlyArray<StreamRecord>): DynamoDBStreamEvent => ({
  Records: records.map((record) => ({
    eventName: record.eventName,
    dynamodb: {
      SequenceNumber: record.sequenceNumber,
      Keys: Object.fromEntries(Object.entries(record.keys).map(([k, v]) => [k, toLambda(v)])),
      ...(record.newImage
        ? { NewImage: Object.fromEntries(Object.entries(record.newImage).map(([k, v]) => [k, toLambda(v)])) }
        : {})
    }
  }))
})

/** Every record of the table's stream so far. */
const allRecords = (table: string) =>
  Effect.gen(function*() {
    const api = yield* StreamsApi
    const arn = (yield* api.latestStreamArn(table))!
    const records: Array<StreamRecord> = []
    for (const shard of yield* listShards(arn)) {
      let iterator = yield* api.getShardIterator(arn, shard.shardId, { _tag: "TrimHorizon" })
      while (iterator !== undefined) {
        const page = yield* api.getRecords(shard.shardId, iterator)
        records.push(...page.records)
        if (page.records.length === 0) break
        iterator = page.nextIterator
      }
    }
    return records
  }).pipe(Effect.provideService(StreamsApi, fromClients(makeClient(), new DynamoDBStreamsClient(streamsConfig()))))

describe("LambdaHandler", () => {
  it.live("applies every event of a batch in order, decrypted, and reports no failure", () =>
    Effect.scoped(Effect.gen(function*() {
      const location = yield* provisionTable(makeClient())
      const store = yield* openStore(location)
      yield* store.put({ key: "/l/a", value: bytes("a1") })
      yield* store.put({ key: "/l/b", value: bytes("b1") })
      yield* store.put({ key: "/l/a", value: bytes("a2") })
      yield* store.delete("/l/b")
      const seen: Array<Event> = []
      const recorder = Projection.make({
        name: "recorder",
        prefixes: ["/l/"],
        apply: (event: Event) => Effect.sync(() => seen.push(event))
      })
      const records = yield* allRecords(location.table)
      const context = yield* Layer.build(eventTableLayer(location))
      const response = yield* handleBatch([recorder], toLambdaEvent(records)).pipe(Effect.provide(context))
      expect(response.batchItemFailures).toEqual([])
      expect(seen.map((event) => `${event.key}#${event.seq}:${event.op}`)).toEqual([
        "/l/a#1:put",
        "/l/b#1:put",
        "/l/a#2:put",
        "/l/b#2:delete"
      ])
      expect(new TextDecoder().decode(seen[2]!.value!)).toBe("a2")
    })))

  it.live("reports the first failing record, so Lambda retries from it, after applying the ones before", () =>
    Effect.scoped(Effect.gen(function*() {
      const location = yield* provisionTable(makeClient())
      const store = yield* openStore(location)
      for (const key of ["/f/1", "/f/2", "/f/3"]) yield* store.put({ key, value: bytes(key) })
      const applied: Array<string> = []
      const flaky = Projection.make({
        name: "flaky",
        prefixes: [],
        apply: (event: Event) =>
          event.key === "/f/2" ? Effect.fail(new Error("boom")) : Effect.sync(() => applied.push(event.key))
      })
      const records = (yield* allRecords(location.table)).filter((record) =>
        record.newImage?.pk?.S === location.namespace
      )
      const handler = makeHandler(eventTableLayer(location), Effect.succeed([flaky]))
      const response = yield* Effect.promise(() => handler(toLambdaEvent(records)))
      expect(response.batchItemFailures).toEqual([{ itemIdentifier: records[1]!.sequenceNumber }])
      expect(applied).toEqual(["/f/1"])
    })))

  it.live("reads a large value's chunks only when a projection covering its key reads values", () =>
    Effect.scoped(Effect.gen(function*() {
      const location = yield* provisionTable(makeClient())
      const store = yield* openStore(location)
      const value = randomBytes(1024 * 1024)
      yield* store.put({ key: "/big/a", value })
      yield* store.put({ key: "/other/a", value })
      const ignoring: Array<Event> = []
      const reading: Array<Event> = []
      const projections = [
        Projection.make({
          name: "ignoring",
          prefixes: [],
          readsValues: false,
          apply: (event: Event) => Effect.sync(() => ignoring.push(event))
        }),
        Projection.make({
          name: "reading",
          prefixes: ["/other/"],
          apply: (event: Event) => Effect.sync(() => reading.push(event))
        })
      ]
      // The chunk partition's reads, by request.
      const chunkReads: Array<string> = []
      const client = makeClient()
      client.middlewareStack.add(
        (next, context) => (args) => {
          const key = (args.input as { Key?: Record<string, AttributeValue> }).Key
          if (key?.pk?.S?.endsWith("\u0000chunks")) chunkReads.push(String(context.commandName))
          return next(args)
        },
        { step: "initialize", name: "countChunkReads" }
      )
      const records = yield* allRecords(location.table)
      const context = yield* Layer.build(eventTableLayer(location, { client }))
      const response = yield* handleBatch(projections, toLambdaEvent(records)).pipe(Effect.provide(context))
      expect(response.batchItemFailures).toEqual([])
      expect(ignoring.map((event) => [event.key, event.value])).toEqual([["/big/a", undefined], [
        "/other/a",
        undefined
      ]])
      expect(reading.map((event) => event.key)).toEqual(["/other/a"])
      expect(Buffer.compare(reading[0]!.value!, value)).toBe(0)
      // Only /other/a's three chunks: /big/a's are read by no one.
      expect(chunkReads).toEqual(["GetItemCommand", "GetItemCommand", "GetItemCommand"])
      client.destroy()
    })))
})
