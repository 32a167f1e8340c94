/**
 * "The write succeeded but its response was lost": SDK middleware inside the
 * SDK's retry loop lets a request reach DynamoDB Local and then throws a
 * transient `TimeoutError` instead of returning the answer. The SDK retries
 * the identical request; the store must recognise its own write (PutItem: the
 * ALL_OLD item of the conditional failure carries our event id;
 * TransactWriteItems: the ClientRequestToken makes the retry idempotent).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { Action, Condition } from "../../../src/domain/AtomicWrite.ts"
import type { Lease } from "../../../src/domain/Item.ts"
import { makeClient, openStore, provisionTable } from "../../support/TestStore.ts"
import type { TestTable } from "../../support/TestStore.ts"
import { bytes, countOf, failedWith, faultyClient, isEventPut, outcomeTag, rawEventsOf, text } from "./helpers.ts"
import type { FaultLog, Interception } from "./helpers.ts"

const admin = makeClient()
const tableOnce = Effect.runPromise(provisionTable(admin))
const table = Effect.promise(() => tableOnce)

/**
 * A store whose client drops responses of `command` requests that `matches` (by default: event writes, not
 * data-key writes) while `armed.remaining > 0` (each drop counts down; Infinity = always).
 */
const droppingStore = (
  location: TestTable,
  command: string,
  maxAttempts = 5,
  matches: (input: unknown) => boolean = (input) => command !== "PutItemCommand" || isEventPut(location, input)
) =>
  Effect.gen(function*() {
    const armed = { remaining: 0 }
    const inputs: Array<Record<string, unknown>> = []
    const { client, log } = faultyClient(maxAttempts, (name, input): Interception => {
      if (name !== command || !matches(input)) return "pass"
      inputs.push(input as Record<string, unknown>)
      if (armed.remaining <= 0) return "pass"
      armed.remaining--
      return "drop-response"
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
    const store = yield* openStore(location, { client })
    return { store, log, armed, inputs }
  })

/** What happened to the requests the store's dropping middleware matched. */
const counts = (inputs: ReadonlyArray<unknown>, log: FaultLog, command: string) => ({
  sent: inputs.length,
  dropped: countOf(log.dropped, command)
})

describe("lost responses", () => {
  it.live("put: the first PutItem response is lost, the SDK retry finds our own event, one event is written", () =>
    Effect.gen(function*() {
      const location = yield* table
      const { store, log, armed, inputs } = yield* droppingStore(location, "PutItemCommand")
      armed.remaining = 1
      const lease = yield* store.put({ key: "/lost/put", value: bytes("v1") })

      expect(counts(inputs, log, "PutItemCommand")).toEqual({ sent: 2, dropped: 1 })
      // The retry really reached DynamoDB and lost the condition to our own first attempt.
      expect(countOf(log.serviceErrors, "ConditionalCheckFailedException")).toBe(1)
      const events = yield* rawEventsOf(admin, location, "/lost/put")
      expect(events.map((event) => [event.seq, event.op, event.revision])).toEqual([[1, "put", lease.revision]])
      const item = yield* store.get("/lost/put")
      expect(text(item.value)).toBe("v1")
      expect(item.revision).toBe(lease.revision)

      // The actor's cache is consistent with the table: the next write appends seq 2 without conflict.
      yield* store.put({ key: "/lost/put", value: bytes("v2") })
      expect(countOf(log.serviceErrors, "ConditionalCheckFailedException")).toBe(1)
      expect((yield* rawEventsOf(admin, location, "/lost/put")).map((event) => event.seq)).toEqual([1, 2])
    }).pipe(Effect.scoped))

  it.live("every single-key command: a lost PutItem response still yields exactly one new event", () =>
    Effect.gen(function*() {
      const location = yield* table
      const { store, log, armed, inputs } = yield* droppingStore(location, "PutItemCommand")
      const key = "/lost/commands"
      const value = (v: string) => ({ key, value: bytes(v) })
      const commands: ReadonlyArray<readonly [string, () => Effect.Effect<Lease | undefined, unknown>]> = [
        ["create", () => store.create(value("c"))],
        ["update", () => store.update(value("u"))],
        ["compareAndSwap", () => store.compareAndSwap(value("u"), value("s"))],
        [
          "conditionalUpdate",
          () => Effect.flatMap(store.get(key), (item) => store.conditionalUpdate({ ...item, value: bytes("r") }))
        ],
        ["keepAlive", () => Effect.flatMap(store.get(key), (item) => store.keepAlive(item, Date.now() + 3_600_000))],
        [
          "conditionalDelete",
          () =>
            Effect.flatMap(store.get(key), (item) => Effect.as(store.conditionalDelete(key, item.revision), undefined))
        ],
        ["put", () => store.put(value("p"))],
        ["delete", () => Effect.as(store.delete(key), undefined)]
      ]
      for (const [name, command] of commands) {
        armed.remaining = 1
        const exit = yield* Effect.exit(command())
        expect(outcomeTag(exit), name).toBe("Success")
        expect(armed.remaining, name).toBe(0)
      }
      expect(counts(inputs, log, "PutItemCommand")).toEqual({ sent: 2 * commands.length, dropped: commands.length })
      expect(countOf(log.serviceErrors, "ConditionalCheckFailedException")).toBe(commands.length)
      const events = yield* rawEventsOf(admin, location, key)
      expect(events.map((event) => event.op))
        .toEqual(["put", "put", "put", "put", "keep-alive", "delete", "put", "delete"])
      expect(events.map((event) => event.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
      // Not mistaken for a conflict or an unknown state: the instance's view matches the table.
      expect(outcomeTag(yield* Effect.exit(store.get(key)))).toBe("NotFound")
      expect(outcomeTag(yield* Effect.exit(store.update(value("x"))))).toBe("NotFound")
      yield* store.create(value("again"))
      expect((yield* rawEventsOf(admin, location, key)).length).toBe(9)
    }).pipe(Effect.scoped))

  it.live("atomicWrite: a lost TransactWriteItems response is retried idempotently with the same ClientRequestToken", () =>
    Effect.gen(function*() {
      const location = yield* table
      const { store, log, armed, inputs } = yield* droppingStore(location, "TransactWriteItemsCommand")
      yield* store.put({ key: "/lost/tx/b", value: bytes("b0") })
      armed.remaining = 1
      const revision = yield* store.atomicWrite([
        { key: "/lost/tx/a", condition: Condition.notExists, action: Action.put(bytes("a1")) },
        { key: "/lost/tx/b", condition: Condition.exists, action: Action.put(bytes("b1")) },
        { key: "/lost/tx/c", condition: Condition.whatever, action: Action.put(bytes("c1")) }
      ])
      // The SDK resent the very same request, token included.
      expect(inputs.length).toBe(2)
      expect(typeof inputs[0]!["ClientRequestToken"]).toBe("string")
      expect(inputs[1]!["ClientRequestToken"]).toBe(inputs[0]!["ClientRequestToken"])
      expect(counts(inputs, log, "TransactWriteItemsCommand")).toEqual({ sent: 2, dropped: 1 })
      expect(countOf(log.serviceErrors, "TransactionCanceledException")).toBe(0)

      for (
        const [key, value, seq] of [["/lost/tx/a", "a1", 1], ["/lost/tx/b", "b1", 2], ["/lost/tx/c", "c1", 1]] as const
      ) {
        const events = yield* rawEventsOf(admin, location, key)
        expect(events.length, key).toBe(seq)
        expect(events.at(-1)!.revision).toBe(revision)
        const item = yield* store.get(key)
        expect(text(item.value)).toBe(value)
        expect(item.revision).toBe(revision)
      }
    }).pipe(Effect.scoped))

  it.live("put: responses lost on every attempt fail with StorageFailure, and the one write that happened is visible", () =>
    Effect.gen(function*() {
      const location = yield* table
      const { store, log, armed, inputs } = yield* droppingStore(location, "PutItemCommand", 3)
      armed.remaining = Infinity
      const exit = yield* Effect.exit(store.put({ key: "/lost/always", value: bytes("maybe") }))
      armed.remaining = 0

      expect(outcomeTag(exit)).toBe("StorageFailure")
      expect(failedWith(exit, "StorageFailure")).toBe(true)
      if (Exit.isFailure(exit)) expect(String(exit.cause.reasons[0]!)).toContain("PutItem")
      // 3 attempts: the first wrote, the two retries lost the condition to it (answers dropped too).
      expect(counts(inputs, log, "PutItemCommand")).toEqual({ sent: 3, dropped: 3 })
      expect(countOf(log.serviceErrors, "ConditionalCheckFailedException")).toBe(2)

      const events = yield* rawEventsOf(admin, location, "/lost/always")
      expect(events.length).toBe(1)
      expect(text((yield* store.get("/lost/always")).value)).toBe("maybe")
      // The unknown outcome cleared the actor's cache: the next command decides on the real state.
      const created = yield* Effect.exit(store.create({ key: "/lost/always", value: bytes("other") }))
      expect(failedWith(created, "AlreadyExists")).toBe(true)
      yield* store.update({ key: "/lost/always", value: bytes("sure") })
      expect((yield* rawEventsOf(admin, location, "/lost/always")).map((event) => event.seq)).toEqual([1, 2])
      expect(text((yield* store.get("/lost/always")).value)).toBe("sure")
    }).pipe(Effect.scoped))

  it.live("atomicWrite: responses lost on every attempt fail with StorageFailure; at most one event per key exists", () =>
    Effect.gen(function*() {
      const location = yield* table
      const { store, log, armed, inputs } = yield* droppingStore(location, "TransactWriteItemsCommand", 3)
      armed.remaining = Infinity
      const exit = yield* Effect.exit(store.atomicWrite([
        { key: "/lost/txa/a", condition: Condition.notExists, action: Action.put(bytes("a")) },
        { key: "/lost/txa/b", condition: Condition.whatever, action: Action.put(bytes("b")) }
      ]))
      armed.remaining = 0
      expect(outcomeTag(exit)).toBe("StorageFailure")
      expect(counts(inputs, log, "TransactWriteItemsCommand")).toEqual({ sent: 3, dropped: 3 })

      const a = yield* rawEventsOf(admin, location, "/lost/txa/a")
      const b = yield* rawEventsOf(admin, location, "/lost/txa/b")
      expect(a.length).toBe(1)
      expect(b.length).toBe(1)
      expect(a[0]!.revision).toBe(b[0]!.revision)
      expect(text((yield* store.get("/lost/txa/a")).value)).toBe("a")
      expect(text((yield* store.get("/lost/txa/b")).value)).toBe("b")
      // And the store keeps working on those keys (atomicWrite invalidation, actor reload).
      yield* store.put({ key: "/lost/txa/a", value: bytes("a2") })
      expect((yield* rawEventsOf(admin, location, "/lost/txa/a")).map((event) => event.seq)).toEqual([1, 2])
    }).pipe(Effect.scoped))

  // Regression (was a bug until src/infra/crypto/DataKeyStore.ts `put` treats a conditional failure on its own
  // data key as success): the first write of a fresh instance stores a new data key with a conditional
  // PutItem through `dynamo.call`; when its response is lost, the SDK's retry meets our own item, gets
  // ConditionalCheckFailed, and `call` turns that into StorageFailure("unexpected ConditionalCheckFailed").
  it.live("a lost response to the data-key PutItem of a fresh instance does not fail the write", () =>
    Effect.gen(function*() {
      const location = yield* table
      const { store, log, armed, inputs } = yield* droppingStore(
        location,
        "PutItemCommand",
        5,
        (input) => !isEventPut(location, input)
      )
      armed.remaining = 1
      const exit = yield* Effect.exit(store.put({ key: "/lost/data-key", value: bytes("v") }))
      // The data key's PutItem reached DynamoDB, its answer was dropped, the SDK retried it once.
      expect(counts(inputs, log, "PutItemCommand")).toEqual({ sent: 2, dropped: 1 })
      expect(countOf(log.serviceErrors, "ConditionalCheckFailedException")).toBe(1)
      expect(outcomeTag(exit), Exit.isFailure(exit) ? String(exit.cause.reasons[0]) : "").toBe("Success")
      expect((yield* rawEventsOf(admin, location, "/lost/data-key")).length).toBe(1)
      expect(text((yield* store.get("/lost/data-key")).value)).toBe("v")
    }).pipe(Effect.scoped))
})
