/**
 * Built-in views and projections under overlapping applies: a rebuild beside
 * a running worker, a worker whose lease lapsed mid-batch applying beside the
 * new owner, sibling shards of a split read by different workers. Whatever the
 * interleaving (any order, repeats, concurrent), each must end up holding what
 * the highest seq seen for a key says, deletions included.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { ScanCommand } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Option, Stream } from "effect"
import * as fc from "fast-check"
import type { Event } from "../../src/domain/Event.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import { EventTable } from "../../src/infra/EventTable.ts"
import { HistoryArea } from "../../src/infra/HistoryArea.ts"
import { Store } from "../../src/programs/store/Store.ts"
import { WriteAcks } from "../../src/programs/store/WriteAcks.ts"
import * as IndexView from "../../src/programs/views/IndexView.ts"
import * as ReplicatedView from "../../src/programs/views/ReplicatedView.ts"
import * as ExpiryProjection from "../../src/programs/worker/projections/ExpiryProjection.ts"
import * as HistoryProjection from "../../src/programs/worker/projections/HistoryProjection.ts"
import { eventTableLayer, makeClient, openStore } from "../support/TestStore.ts"
import { allEvents, bytes, eventually, freshEnv, liveEvents, text } from "./support.ts"

const user = (email: string) => bytes(JSON.stringify({ email }))
const emailOf = (value: Uint8Array) => (JSON.parse(text(value)) as { email?: string }).email

const put = (key: string, seq: number, email: string): Event => ({
  key,
  seq,
  revision: `${key}@${seq}`,
  op: "put",
  value: user(email),
  timestamp: seq
})
const remove = (key: string, seq: number): Event => ({
  key,
  seq,
  revision: `${key}@${seq}`,
  op: "delete",
  timestamp: seq
})

/** What a request asked for, as the delaying middleware sees it. */
interface Request {
  readonly TableName?: string
  readonly Key?: { readonly ix?: { readonly S?: string }; readonly key?: { readonly S?: string } }
}

/** Holds back the responses of chosen requests: the request was served, its answer arrives `delayOf` ms late. */
const delayingClient = (delayOf: (command: string, input: Request) => number): DynamoDBClient => {
  const client = makeClient()
  const stack = client.middlewareStack as unknown as {
    add: (middleware: unknown, options: { step: string; name: string }) => void
  }
  stack.add(
    (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
    async (args: { input: Request }) => {
      const result = await next(args)
      const millis = delayOf(String(context.commandName), args.input)
      if (millis > 0) await new Promise((resolve) => setTimeout(resolve, millis))
      return result
    },
    { step: "initialize", name: "testDelayResponses" }
  )
  return client
}

/** Delays the reads of a view's by-key items by what `delayOf(key)` says. */
const delayingByKeyReads = (delayOf: (key: string) => number): DynamoDBClient =>
  delayingClient((command, { TableName, Key }) =>
    command === "GetItemCommand" && TableName?.includes(".view.") && Key?.ix?.S === "\u0000by-key"
      ? delayOf(Key.key?.S ?? "")
      : 0
  )

/** The rows of a view table for `key`: its index entries (blinded) and its by-key bookkeeping item. */
const rowsOf = (client: DynamoDBClient, table: string, key: string) =>
  Effect.promise(() => client.send(new ScanCommand({ TableName: table, ConsistentRead: true }))).pipe(
    Effect.map((output) => {
      const rows = (output.Items ?? []).filter((item) => item.key?.S === key)
      const byKey = rows.find((item) => item.ix?.S === "\u0000by-key")
      return {
        entries: rows.filter((item) => item.ix?.S !== "\u0000by-key").length,
        seq: Number(byKey?.seq?.N ?? 0)
      }
    })
  )

describe("index view under overlapping applies", () => {
  it.live("an apply that read the by-key item before a newer apply moved the entry leaves no ghost", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("overlap-ghost")
      let slow: number | undefined
      const client = delayingByKeyReads(() => {
        const millis = slow ?? 0
        slow = undefined
        return millis
      })
      const services = yield* Layer.build(eventTableLayer(env.location, { client }))
      const byEmail = yield* IndexView.make({
        name: "ghost",
        prefix: "/users/",
        indexOf: (item) => emailOf(item.value)
      })
        .pipe(Effect.provide(services))
      const key = "/users/k"
      yield* byEmail.projection.apply(put(key, 1, "p@old"))

      // The worker applies seq 3; its by-key read (seq 1, p@old) answers a second late.
      slow = 1000
      const worker = yield* Effect.forkChild(byEmail.projection.apply(put(key, 3, "six@new")))
      yield* Effect.sleep(200)
      // Meanwhile a rebuild beside it replays seq 2, the newest it read: the entry moves to five@mid.
      yield* byEmail.projection.apply(put(key, 2, "five@mid"))
      yield* Fiber.join(worker)

      expect(yield* byEmail.view.query("five@mid")).toEqual([])
      expect(yield* byEmail.view.query("p@old")).toEqual([])
      const now = yield* byEmail.view.query("six@new")
      expect(now.map((item) => [item.key, emailOf(item.value)])).toEqual([[key, "six@new"]])
      expect(yield* rowsOf(env.client, `${env.location.table}.view.ghost`, key)).toEqual({ entries: 1, seq: 3 })
    }))
  it.live(
    "any interleaving of applies of one key (any order, repeats, concurrent) leaves the entry of the highest seq",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("overlap-index-property")
        const delays = new Map<string, Array<number>>()
        const client = delayingByKeyReads((key) => delays.get(key)?.shift() ?? 0)
        const services = yield* Layer.build(eventTableLayer(env.location, { client }))
        const byEmail = yield* IndexView.make({ name: "fold", prefix: "/p/", indexOf: (item) => emailOf(item.value) })
          .pipe(Effect.provide(services))
        const viewTable = `${env.location.table}.view.fold`
        const emails = ["a@x", "b@x", "c@x"]
        // A key's history (a put of one of a few e-mails, or a delete, per seq) and applies of its events.
        const scenario = fc.array(fc.option(fc.constantFrom(...emails), { nil: undefined }), {
          minLength: 1,
          maxLength: 6
        })
          .chain((history) =>
            fc.record({
              history: fc.constant(history),
              applies: fc.array(
                fc.record({ seq: fc.integer({ min: 1, max: history.length }), startMillis: fc.nat(20) }),
                { minLength: 1, maxLength: 8 }
              ),
              readDelays: fc.array(fc.nat(40), { maxLength: 12 })
            })
          )
        let run = 0
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(scenario, ({ history, applies, readDelays }) => {
              const key = `/p/k${run++}`
              const events = history.map((email, i) =>
                email === undefined ? remove(key, i + 1) : put(key, i + 1, email)
              )
              delays.set(key, [...readDelays])
              const program = Effect.gen(function*() {
                yield* Effect.forEach(
                  applies,
                  ({ seq, startMillis }) =>
                    Effect.sleep(startMillis).pipe(Effect.andThen(byEmail.projection.apply(events[seq - 1]!))),
                  { concurrency: "unbounded", discard: true }
                )
                const highest = Math.max(...applies.map(({ seq }) => seq))
                const winner = history[highest - 1]
                for (const email of emails) {
                  const filed = (yield* byEmail.view.query(email)).filter((item) => item.key === key)
                  expect(filed.map((item) => [item.revision, emailOf(item.value)]), email).toEqual(
                    email === winner ? [[`${key}@${highest}`, email]] : []
                  )
                }
                expect(yield* rowsOf(env.client, viewTable, key)).toEqual({
                  entries: winner === undefined ? 0 : 1,
                  seq: highest
                })
              })
              return Effect.runPromise(program)
            }),
            { seed: Number(process.env.FC_SEED ?? 20261202), numRuns: Number(process.env.FC_RUNS ?? 40) }
          )
        )
      }),
    120_000
  )
})

describe("expiry projection under overlapping applies", () => {
  it.live("an older event applied after a newer one neither unschedules nor postpones the newer expiry", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("overlap-expiry")
      const store = yield* openStore(env.location, { client: env.client })
      const services = yield* Layer.build(eventTableLayer(env.location, { client: env.client }))
      const expiry = yield* ExpiryProjection.make.pipe(Effect.provide(services), Effect.provideService(Store, store))
      const expires = Date.now() + 1500
      const stamp = (key: string, seq: number, op: Event["op"], at?: number): Event => ({
        key,
        seq,
        revision: `${key}@${seq}`,
        op,
        value: bytes(key),
        expires: at,
        timestamp: seq
      })
      // Each key's newest event expires soon; its older ones, delivered late (a sibling shard, a lapsed worker),
      // say otherwise: never expiring, expiring later, deleted.
      const far = Date.now() + 60_000
      const cases = [
        { key: "/x/forever-then-expiring", history: [undefined] },
        { key: "/x/later-then-sooner", history: [far] },
        { key: "/x/deleted-then-recreated", history: [far, "delete" as const] }
      ]
      for (const { key, history } of cases) {
        for (const step of history) {
          if (step === "delete") yield* store.delete(key)
          else yield* store.put({ key, value: bytes(key), expires: step })
        }
        yield* store.put({ key, value: bytes(key), expires })
        const newest = history.length + 1
        yield* expiry.apply(stamp(key, newest, "put", expires))
        for (let seq = history.length; seq >= 1; seq--) {
          const step = history[seq - 1]
          yield* expiry.apply(step === "delete" ? stamp(key, seq, "delete") : stamp(key, seq, "put", step))
        }
        yield* expiry.apply(stamp(key, newest - 1, "put"))
      }
      const opsOf = (events: ReadonlyArray<{ key: string; seq: number; op: string }>, key: string) =>
        events.filter((event) => event.key === key).sort((a, b) => a.seq - b.seq).map((event) => event.op)
      // Nobody reads: only the projection's timer can record the expiries.
      yield* eventually(
        "every expiry recorded",
        Effect.gen(function*() {
          const events = yield* allEvents(env)
          for (const { key, history } of cases) {
            expect(opsOf(events, key), key).toEqual([
              ...history.map((step) => step === "delete" ? "delete" : "put"),
              "put",
              "expire"
            ])
          }
        }),
        8000
      )
    }))
})

describe("replicated view under overlapping applies", () => {
  it.live("a rebuild whose read of the table predates applies beside it keeps what those applies brought", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("overlap-replica-rebuild")
      const store = yield* openStore(env.location, { client: env.client })
      yield* store.put({ key: "/r/a", value: bytes("a1") })
      yield* store.put({ key: "/r/a", value: bytes("a2") })
      yield* store.put({ key: "/r/gone", value: bytes("g1") })
      let slow = 0
      const client = delayingClient((command) => {
        const millis = command === "QueryCommand" ? slow : 0
        slow = 0
        return millis
      })
      const services = yield* Layer.build(eventTableLayer(env.location, { client }))
      const replica = yield* ReplicatedView.make("rebuild-overlap", "/r/").pipe(
        Effect.provide(services),
        Effect.provide(WriteAcks.layer)
      )

      // The rebuild's read of the table is served now and answers a second late; meanwhile the worker applies
      // a newer event of /r/a, a key created since, and the deletion of /r/gone.
      slow = 1000
      const rebuild = yield* Effect.forkChild(replica.projection.rebuild!)
      yield* Effect.sleep(300)
      yield* replica.projection.apply({
        key: "/r/a",
        seq: 3,
        revision: "a3",
        op: "put",
        value: bytes("a3"),
        timestamp: 3
      })
      yield* replica.projection.apply({
        key: "/r/new",
        seq: 1,
        revision: "n1",
        op: "put",
        value: bytes("n1"),
        timestamp: 1
      })
      yield* replica.projection.apply({ key: "/r/gone", seq: 2, revision: "g2", op: "delete", timestamp: 2 })
      yield* Fiber.join(rebuild)

      const items = yield* replica.view.items
      expect(items.map((item) => [item.key, text(item.value)])).toEqual([["/r/a", "a3"], ["/r/new", "n1"]])
      // The deletion applied beside the rebuild is remembered: a replayed older put does not bring the key back.
      yield* replica.projection.apply({
        key: "/r/gone",
        seq: 1,
        revision: "g1",
        op: "put",
        value: bytes("g1"),
        timestamp: 1
      })
      expect(Option.isNone(yield* replica.view.get("/r/gone"))).toBe(true)
    }))

  it.live("any interleaving of applies of a key (any order, repeats, concurrent) leaves the fold of its events", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("overlap-replica-property")
      const services = yield* Layer.build(eventTableLayer(env.location, { client: env.client }))
      const replica = yield* ReplicatedView.make("fold", "/p/").pipe(
        Effect.provide(services),
        Effect.provide(WriteAcks.layer)
      )
      const scenario = fc.array(fc.option(fc.constantFrom("a", "b", "c"), { nil: undefined }), {
        minLength: 1,
        maxLength: 8
      }).chain((history) =>
        fc.record({
          history: fc.constant(history),
          applies: fc.array(fc.record({ seq: fc.integer({ min: 1, max: history.length }), startMillis: fc.nat(5) }), {
            minLength: 1,
            maxLength: 12
          })
        })
      )
      let run = 0
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(scenario, ({ history, applies }) => {
            const key = `/p/k${run++}`
            const events = history.map((value, i): Event =>
              value === undefined
                ? remove(key, i + 1)
                : { key, seq: i + 1, revision: `${key}@${i + 1}`, op: "put", value: bytes(value), timestamp: i + 1 }
            )
            return Effect.runPromise(Effect.gen(function*() {
              yield* Effect.forEach(
                applies,
                ({ seq, startMillis }) =>
                  Effect.sleep(startMillis).pipe(Effect.andThen(replica.projection.apply(events[seq - 1]!))),
                { concurrency: "unbounded", discard: true }
              )
              const highest = Math.max(...applies.map(({ seq }) => seq))
              const found = yield* replica.view.get(key)
              expect(Option.map(found, (item) => [item.revision, text(item.value)])).toEqual(
                history[highest - 1] === undefined
                  ? Option.none()
                  : Option.some([`${key}@${highest}`, history[highest - 1]])
              )
            }))
          }),
          { seed: Number(process.env.FC_SEED ?? 20261202), numRuns: Number(process.env.FC_RUNS ?? 100) }
        )
      )
    }))
})

describe("history projection under overlapping applies", () => {
  /**
   * With `delivered`, each apply also gets the event's item as the stream would deliver it (read from the live
   * range before any compaction), which compaction moves without reading it again when it knows the key; the
   * events up to the lowest seq applied are first applied in the stream's order, as the worker does.
   */
  const anyOrder = (name: string, delivered: boolean) =>
    Effect.gen(function*() {
      const env = yield* freshEnv(name)
      const store = yield* openStore(env.location, { client: env.client })
      const services = yield* Layer.build(
        HistoryArea.layer.pipe(Layer.provideMerge(eventTableLayer(env.location, { client: env.client })))
      )
      // Settling at once: every step compaction may take, it takes as soon as it is applied.
      const table = Context.get(services, EventTable)
      const history = yield* HistoryProjection.make({ retention: { _tag: "Forever" }, settleMillis: 0 }).pipe(
        Effect.provide(services)
      )
      const scenario = fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }).chain((puts) =>
        fc.record({
          puts: fc.constant(puts),
          applies: fc.array(fc.integer({ min: 1, max: puts.length }), { minLength: 1, maxLength: 8 })
        })
      )
      let run = 0
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(scenario, ({ puts, applies }) => {
            const key = `/h/k${run++}`
            return Effect.runPromise(Effect.gen(function*() {
              // A key's events, puts and deletes (only a present key can be deleted: a delete follows a put).
              let present = false
              for (const [i, isPut] of puts.entries()) {
                if (isPut || !present) yield* store.put({ key, value: bytes(`${key}#${i + 1}`) })
                else yield* store.delete(key)
                present = isPut || !present
              }
              const events = yield* Stream.runCollect(store.history(key))
              const n = events.length
              const items = delivered
                ? [
                  ...yield* Stream.runCollect(table.scan({
                    lower: SortKey.lowerBound(key),
                    upper: SortKey.upperBound(key),
                    descending: true
                  }))
                ]
                : []
              // Delivered: the stream's order up to the lowest seq applied, so the known path is taken from there on.
              if (delivered) {
                for (let seq = 1; seq <= Math.min(...applies); seq++) {
                  yield* history.apply(events[seq - 1]!, items[seq - 1])
                }
              }
              yield* Effect.forEach(applies, (seq) => history.apply(events[seq - 1]!, items[seq - 1]), {
                concurrency: "unbounded",
                discard: true
              })
              // As of the highest seq applied: everything before it moved out, and it too when it is a tombstone.
              const highest = Math.max(...applies)
              const first = events[highest - 1]!.op === "delete" ? highest + 1 : highest
              const live = (yield* liveEvents(env)).filter((event) => event.key === key).map((event) => event.seq)
              expect(live).toEqual(Array.from({ length: n - first + 1 }, (_, i) => first + i))
              const after = yield* Stream.runCollect(store.history(key))
              expect(after.map((event) => [event.seq, event.op])).toEqual(
                events.map((event) => [event.seq, event.op])
              )
              const newest = events[n - 1]!
              const current = yield* Effect.result(store.get(key))
              if (newest.op === "delete") expect(current._tag === "Failure" && current.failure._tag).toBe("NotFound")
              else expect(current._tag === "Success" && current.success.revision).toBe(newest.revision)
              // The numbering goes on from the newest event, never from a seq compaction freed.
              yield* store.put({ key, value: bytes("next") })
              expect((yield* Stream.runCollect(store.history(key))).map((event) => event.seq)).toEqual(
                Array.from({ length: n + 1 }, (_, i) => i + 1)
              )
            }))
          }),
          { seed: Number(process.env.FC_SEED ?? 20261202), numRuns: Number(process.env.FC_RUNS ?? 25) }
        )
      )
    })

  it.live(
    "compacting a key's events in any order, repeated and concurrently, loses and revives nothing",
    () => anyOrder("overlap-history", false),
    120_000
  )

  it.live(
    "the same with the stream's items handed to each apply (compaction moves what it knows without reading it)",
    () => anyOrder("overlap-history-delivered", true),
    120_000
  )
})
