/**
 * Large values and the projection worker: the chunks of a large value (see `ValueChunks`) are read only for the
 * projections that read values. The built-in ones (history, expiry) and any that say `readsValues: false` go by the
 * event item alone, whose manifest is still decrypted, so a tampered event item is quarantined as before; a tampered
 * chunk is found by whoever reads the value (a value-reading projection here, any reader of the store).
 */
import { GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import type { Event } from "../../src/domain/Event.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { EventTable } from "../../src/infra/EventTable.ts"
import { HistoryArea } from "../../src/infra/HistoryArea.ts"
import { keyArea, keyPartition } from "../../src/infra/PartitionKeys.ts"
import * as ValueChunks from "../../src/infra/ValueChunks.ts"
import * as History from "../../src/programs/store/History.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"
import * as Rebuild from "../../src/programs/worker/Rebuild.ts"
import { eventTableLayer, makeClient, openStore } from "../support/TestStore.ts"
import type { Env } from "./support.ts"
import { archivedEvents, eventually, freshEnv, startWorker } from "./support.ts"

const mib = 1024 * 1024

/** The sort keys (hex) of the chunk items a worker's client read, one entry per read. */
const chunkReads = () => {
  const reads: Array<string> = []
  const observe = (command: string, input: unknown) => {
    const request = input as {
      readonly Key?: Record<string, AttributeValue>
      readonly ExpressionAttributeValues?: Record<string, AttributeValue>
    }
    const chunkPartition = (pk: string | undefined) => pk?.endsWith("\u0000chunks") === true
    if (command === "GetItemCommand" && chunkPartition(request.Key?.[Attr.partition]?.S)) {
      reads.push(Buffer.from(request.Key![Attr.sort]!.B!).toString("hex"))
    }
    const values = request.ExpressionAttributeValues
    // A query of the markers (the collector's sweep) reads no chunk: only a range from a chunk's sort key does.
    if (command === "QueryCommand" && chunkPartition(values?.[":pk"]?.S) && values?.[":lower"]?.B?.[0] === 1) {
      reads.push(`query ${Buffer.from(values[":lower"].B).toString("hex")}`)
    }
    return 0
  }
  return { reads, observe }
}

/** A client whose requests `observe` sees. */
const observedClient = (observe: (command: string, input: unknown) => number) => {
  const client = makeClient()
  client.middlewareStack.add(
    (next, context) => (args) => {
      observe(String(context.commandName), args.input)
      return next(args)
    },
    { step: "initialize", name: "observeChunkReads" }
  )
  return client
}

/** The sort keys (hex) of an event's chunk items. */
const chunksOf = (owner: { readonly key: string; readonly seq: number; readonly revision: string }, count: number) =>
  Array.from({ length: count }, (_, index) => Buffer.from(ValueChunks.chunkSortKey(owner, index)).toString("hex"))

/** A projection recording the events it is given. */
const recording = (name: string, prefixes: ReadonlyArray<string>, readsValues?: boolean) => {
  const log: Array<Event> = []
  const projection = Projection.make({
    name,
    prefixes,
    ...(readsValues === undefined ? {} : { readsValues }),
    apply: (event: Event) => Effect.sync(() => void log.push(event))
  })
  return { log, projection }
}

/** Flips one byte of an attribute's binary value in a raw item, and writes the item back. */
const tamper = (env: Env, key: Record<string, AttributeValue>) =>
  Effect.promise(async () => {
    const { Item } = await env.client.send(
      new GetItemCommand({ TableName: env.location.table, Key: key, ConsistentRead: true })
    )
    const value = Buffer.from(Item![Attr.value]!.B!)
    value[value.length - 1]! ^= 1
    await env.client.send(
      new PutItemCommand({ TableName: env.location.table, Item: { ...Item, [Attr.value]: { B: value } } })
    )
  })

const eventKey = (env: Env, key: string, seq: number) => ({
  [Attr.partition]: { S: keyPartition(env.location, key) },
  [Attr.sort]: { B: SortKey.encode(key, seq) }
})

describe("the projection worker and large values", () => {
  it.live(
    "reads a large value's chunks only for the projections that read values",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-large")
        const store = yield* openStore(env.location, { client: env.client })
        const counted = chunkReads()
        const ignoring = recording("ignoring", ["/big/"], false)
        const reading = recording("reading", ["/other/"])
        yield* startWorker(env, {
          group: "large",
          projections: [ignoring.projection, reading.projection],
          responseDelay: counted.observe
        })

        const first = randomBytes(mib)
        const a1 = yield* store.put({ key: "/big/a", value: first })
        const a2 = yield* store.put({ key: "/big/a", value: randomBytes(mib) })
        yield* store.put({ key: "/big/small", value: Buffer.from("small") })
        const other = randomBytes(mib)
        const x1 = yield* store.put({ key: "/other/x", value: other })

        yield* eventually(
          "every event applied",
          Effect.sync(() => {
            // The worker applies a batch's keys concurrently: each key's events in order, the keys in any order.
            const applied = ignoring.log.map((event) => `${event.key}@${event.seq}`)
            expect([...applied].sort()).toEqual(["/big/a@1", "/big/a@2", "/big/small@1"])
            expect(applied.filter((event) => event.startsWith("/big/a@"))).toEqual(["/big/a@1", "/big/a@2"])
            expect(reading.log.map((event) => `${event.key}@${event.seq}`)).toEqual(["/other/x@1"])
          })
        )
        // History moved the superseded version by its stored item: no chunk read either.
        yield* eventually(
          "/big/a@1 compacted",
          Effect.map(archivedEvents(env), (archived) => {
            expect(archived.map((event) => `${event.key}@${event.seq}`)).toContain("/big/a@1")
          })
        )
        // A projection that does not read values gets none, whatever their size; one that does gets them whole.
        expect(ignoring.log.map((event) => event.value)).toEqual([undefined, undefined, undefined])
        expect(ignoring.log.map((event) => event.op)).toEqual(["put", "put", "put"])
        expect(Buffer.compare(reading.log[0]!.value!, other)).toBe(0)

        const count = Math.ceil(mib / ValueChunks.chunkBytes)
        const readOfA = new Set([
          ...chunksOf({ key: "/big/a", seq: 1, revision: a1.revision }, count),
          ...chunksOf({ key: "/big/a", seq: 2, revision: a2.revision }, count)
        ])
        expect(counted.reads.filter((read) => readOfA.has(read))).toEqual([])
        expect(counted.reads.filter((read) => read.startsWith("query"))).toEqual([])
        expect(new Set(counted.reads)).toEqual(
          new Set(chunksOf({ key: "/other/x", seq: 1, revision: x1.revision }, count))
        )
        expect(first.length).toBe(mib)
      }),
    90_000
  )

  it.live(
    "with only the built-in projections a large put reads no chunk, and a tampered event item is still quarantined",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-large-builtin")
        const store = yield* openStore(env.location, { client: env.client })
        const counted = chunkReads()
        const worker = yield* startWorker(env, { group: "builtin", responseDelay: counted.observe })
        yield* store.put({ key: "/t/a", value: randomBytes(mib) })
        yield* store.put({ key: "/t/b", value: randomBytes(mib) })
        yield* eventually(
          "both applied",
          Effect.map(worker.status, (status) => expect(status.eventsApplied).toBe(2))
        )
        // The event item edited in place: its manifest no longer authenticates, so the worker cannot read it.
        yield* tamper(env, eventKey(env, "/t/b", 1))
        yield* eventually(
          "the tampered event quarantined",
          Effect.map(worker.status, (status) =>
            expect(status.quarantined).toEqual([
              expect.objectContaining({ projection: "decode", key: "/t/b", seq: 1 })
            ]))
        )
        expect(counted.reads).toEqual([])
      }),
    90_000
  )

  it.live(
    "a tampered chunk is quarantined by a worker whose projections read the value, not by one whose do not",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-large-chunk")
        const store = yield* openStore(env.location, { client: env.client })
        const written = yield* store.put({ key: "/c/a", value: randomBytes(mib) })
        yield* tamper(env, {
          [Attr.partition]: { S: keyArea(env.location, "/c/a", "chunks") },
          [Attr.sort]: { B: ValueChunks.chunkSortKey({ key: "/c/a", seq: 1, revision: written.revision }, 1) }
        })

        const builtin = yield* startWorker(env, { group: "builtin" })
        yield* eventually("applied", Effect.map(builtin.status, (status) => expect(status.eventsApplied).toBe(1)))
        expect((yield* builtin.status).quarantined).toEqual([])

        const reading = recording("reading", ["/c/"])
        const withValues = yield* startWorker(env, { group: "values", projections: [reading.projection] })
        yield* eventually(
          "quarantined",
          Effect.map(withValues.status, (status) =>
            expect(status.quarantined).toEqual([
              expect.objectContaining({ projection: "decode", key: "/c/a", seq: 1 })
            ]))
        )
        expect(reading.log).toEqual([])
      }),
    90_000
  )

  it.live(
    "a rebuild reads a large value's chunks only for a projection that reads values",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("rebuild-large")
        const store = yield* openStore(env.location, { client: env.client })
        const value = randomBytes(mib)
        yield* store.put({ key: "/r/a", value })
        yield* store.put({ key: "/r/b", value: randomBytes(mib) })
        yield* store.delete("/r/b")
        const counted = chunkReads()
        const client = observedClient(counted.observe)
        yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
        const context = yield* Layer.build(eventTableLayer(env.location, { client }))

        const ignoring = recording("ignoring", ["/r/"], false)
        yield* Rebuild.rebuild(ignoring.projection).pipe(Effect.provide(context))
        expect(ignoring.log.map((event) => [event.key, event.seq, event.op, event.value])).toEqual([
          ["/r/a", 1, "put", undefined],
          ["/r/b", 2, "delete", undefined]
        ])
        expect(counted.reads).toEqual([])

        const reading = recording("reading", ["/r/"])
        yield* Rebuild.rebuild(reading.projection).pipe(Effect.provide(context))
        expect(reading.log.map((event) => [event.key, event.seq])).toEqual([["/r/a", 1], ["/r/b", 2]])
        expect(Buffer.compare(reading.log[0]!.value!, value)).toBe(0)
        expect(counted.reads.length).toBe(Math.ceil(mib / ValueChunks.chunkBytes))
      }),
    90_000
  )

  it.live(
    "the replay of a seq gap reads a large value's chunks only when asked to",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("gap-large")
        const store = yield* openStore(env.location, { client: env.client })
        const value = randomBytes(mib)
        for (let i = 0; i < 3; i++) yield* store.put({ key: "/g/a", value })
        const counted = chunkReads()
        const client = observedClient(counted.observe)
        yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
        const context = yield* Layer.build(
          HistoryArea.layer.pipe(Layer.provideMerge(eventTableLayer(env.location, { client })))
        )
        const between = (readChunks: boolean) =>
          Effect.gen(function*() {
            const table = yield* EventTable
            const area = yield* HistoryArea
            return yield* History.eventsBetween(table, area, "/g/a", 0, 3, { readChunks })
          }).pipe(Effect.provide(context))

        const without = yield* between(false)
        expect(without.events.map((event) => [event.seq, event.op, event.value])).toEqual([
          [1, "put", undefined],
          [2, "put", undefined]
        ])
        expect(counted.reads).toEqual([])
        const whole = yield* between(true)
        expect(whole.events.map((event) => Buffer.compare(event.value!, value))).toEqual([0, 0])
        expect(counted.reads.length).toBe(2 * Math.ceil(mib / ValueChunks.chunkBytes))
      }),
    90_000
  )
})
