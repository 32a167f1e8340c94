/**
 * Throttling: SDK middleware (inside the SDK's retry loop) answers requests
 * with `ProvisionedThroughputExceededException` without sending them. The SDK
 * retries (maxAttempts 2 keeps it fast), then the store must fail with the
 * typed `Throttled` error, never a defect or another tag, and write nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Stream } from "effect"
import { Action, Condition } from "../../../src/domain/AtomicWrite.ts"
import { makeClient, openStore, provisionTable } from "../../support/TestStore.ts"
import type { TestTable } from "../../support/TestStore.ts"
import { bytes, countOf, faultyClient, isEventPut, outcomeTag, rawEvents, rawEventsOf, text } from "./helpers.ts"
import type { Interception } from "./helpers.ts"

const admin = makeClient()
const tableOnce = Effect.runPromise(provisionTable(admin))
const table = Effect.promise(() => tableOnce)

const writeCommands = new Set(["PutItemCommand", "TransactWriteItemsCommand"])

/**
 * A store whose client throttles the commands `throttles` picks once it is open (opening reads the namespace's
 * layout record, see "opening under throttling" below); its own log counts every attempt.
 */
const throttledStore = (location: TestTable, throttles: (command: string) => boolean) =>
  Effect.gen(function*() {
    let open = false
    const { client, log } = faultyClient(
      2,
      (command): Interception => open && throttles(command) ? "throttle" : "pass"
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
    // Its layout lease outlasts the test: reads of the layout record are throttled too, and a lapsed lease would
    // fail every operation before it reaches DynamoDB (see test/store/layoutFence.test.ts).
    const store = yield* openStore(location, {
      client,
      storeOptions: { layoutLease: { leaseMillis: 120_000, drainMillis: 120_000 } }
    })
    open = true
    return { store, log }
  })

const expectThrottled = <A, E>(exit: Exit.Exit<A, E>, operation: string) => {
  expect(outcomeTag(exit), operation).toBe("Throttled")
  if (Exit.isFailure(exit)) {
    const error = exit.cause.reasons[0] as unknown as { error: { operation: string; reason: string } }
    expect(error.error.reason).toContain("ProvisionedThroughputExceededException")
  }
}

describe("throttling", () => {
  it.live("every request throttled: put, get, getRange, items, atomicWrite and create fail with Throttled; nothing is written", () =>
    Effect.gen(function*() {
      const location = yield* table
      // A value written before the throttling, so reads have something they could have returned.
      const healthy = yield* openStore(location)
      yield* healthy.put({ key: "/all/existing", value: bytes("old") })
      const before = yield* rawEvents(admin, location)

      const { store, log } = yield* throttledStore(location, () => true)
      const sentCount = () => [...log.sent.values()].reduce((sum, count) => sum + count, 0)
      const sentWhileOpening = sentCount()
      const operations: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]> = [
        ["put", store.put({ key: "/all/new", value: bytes("x") })],
        ["put existing", store.put({ key: "/all/existing", value: bytes("y") })],
        ["create", store.create({ key: "/all/created", value: bytes("x") })],
        ["get", store.get("/all/existing")],
        ["getRange", store.getRange("/all/", "/all/~")],
        ["items", Stream.runCollect(store.items({ start: "/all/", end: "/all/~", descending: true }))],
        [
          "atomicWrite",
          store.atomicWrite([
            { key: "/all/tx1", condition: Condition.whatever, action: Action.put(bytes("x")) },
            { key: "/all/tx2", condition: Condition.notExists, action: Action.put(bytes("x")) }
          ])
        ]
      ]
      for (const [operation, effect] of operations) {
        const queriesBefore = countOf(log.throttled, "QueryCommand")
        expectThrottled(yield* Effect.exit(effect), operation)
        const attempts = countOf(log.throttled, "QueryCommand") - queriesBefore
        // Every operation starts with a read; the SDK tried it twice (maxAttempts 2). The atomic write reads
        // both keys at once, and the first read to give up interrupts the other.
        if (operation === "atomicWrite") expect(attempts, operation).toBeGreaterThanOrEqual(2)
        else expect(attempts, operation).toBe(2)
      }
      // Nothing reached DynamoDB once throttled, and no write was even attempted (each write's first read failed).
      expect(sentCount()).toBe(sentWhileOpening)
      expect(countOf(log.throttled, "PutItemCommand")).toBe(0)
      expect(countOf(log.throttled, "TransactWriteItemsCommand")).toBe(0)

      expect(yield* rawEvents(admin, location)).toEqual(before)
      expect(text((yield* healthy.get("/all/existing")).value)).toBe("old")
    }).pipe(Effect.scoped))

  it.live("only writes throttled: reads succeed, put/create/update/delete/atomicWrite fail with Throttled after the write attempts", () =>
    Effect.gen(function*() {
      const location = yield* table
      const healthy = yield* openStore(location)
      yield* healthy.put({ key: "/writes/existing", value: bytes("old") })
      const before = yield* rawEventsOf(admin, location, "/writes/existing")

      let throttling = true
      const eventPuts: Array<boolean> = []
      const { client, log } = faultyClient(2, (command, input): Interception => {
        if (command === "PutItemCommand" && throttling) eventPuts.push(isEventPut(location, input))
        return throttling && writeCommands.has(command) ? "throttle" : "pass"
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const store = yield* openStore(location, { client })
      // A fresh instance's first write stores a data key first: that PutItem is throttled (twice) too.
      expectThrottled(yield* Effect.exit(store.put({ key: "/writes/new", value: bytes("x") })), "first put")
      expect(eventPuts).toEqual([false, false])
      // Let the data key through, then throttle again: from now on only event writes are attempted.
      throttling = false
      yield* store.put({ key: "/writes/warm-up", value: bytes("w") })
      throttling = true
      eventPuts.length = 0
      const throttledBefore = countOf(log.throttled, "PutItemCommand")

      // Reads still work and warm this instance's actor for the key.
      expect(text((yield* store.get("/writes/existing")).value)).toBe("old")
      expect((yield* store.getRange("/writes/", "/writes/~")).map((item) => item.key)).toEqual([
        "/writes/existing",
        "/writes/warm-up"
      ])

      const results = yield* Effect.all({
        put: Effect.exit(store.put({ key: "/writes/new", value: bytes("x") })),
        update: Effect.exit(store.update({ key: "/writes/existing", value: bytes("y") })),
        delete: Effect.exit(store.delete("/writes/existing")),
        create: Effect.exit(store.create({ key: "/writes/created", value: bytes("x") })),
        atomicWrite: Effect.exit(store.atomicWrite([
          { key: "/writes/tx", condition: Condition.notExists, action: Action.put(bytes("x")) },
          { key: "/writes/warm-up", condition: Condition.exists, action: Action.delete }
        ]))
      }, { concurrency: "unbounded" })
      for (const [operation, exit] of Object.entries(results)) {
        expectThrottled(exit as Exit.Exit<unknown, unknown>, operation)
      }

      // Two attempts per write: put, update, delete, create (event PutItems) and one transaction.
      expect(countOf(log.throttled, "PutItemCommand") - throttledBefore).toBe(2 * 4)
      expect(eventPuts.every((isEvent) => isEvent)).toBe(true)
      expect(countOf(log.throttled, "TransactWriteItemsCommand")).toBe(2)

      const all = yield* rawEvents(admin, location)
      expect(all.filter((event) => event.key.startsWith("/writes/")).map((event) => event.key).sort())
        .toEqual(["/writes/existing", "/writes/warm-up"])
      expect(yield* rawEventsOf(admin, location, "/writes/existing")).toEqual(before)
      // The same instance still decides on the real state (no cached phantom writes): create needs no write to fail.
      const created = yield* Effect.exit(store.create({ key: "/writes/existing", value: bytes("z") }))
      expect(outcomeTag(created)).toBe("AlreadyExists")
      expect(text((yield* store.get("/writes/existing")).value)).toBe("old")
    }).pipe(Effect.scoped))

  it.live("a throttled write leaves the actor usable: once throttling stops, the next write appends the next seq", () =>
    Effect.gen(function*() {
      const location = yield* table
      let throttling = false
      const { client, log } = faultyClient(
        2,
        (command): Interception => throttling && writeCommands.has(command) ? "throttle" : "pass"
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const store = yield* openStore(location, { client })
      yield* store.put({ key: "/recover/k", value: bytes("1") })
      throttling = true
      expectThrottled(yield* Effect.exit(store.put({ key: "/recover/k", value: bytes("2") })), "put")
      throttling = false
      const lease = yield* store.put({ key: "/recover/k", value: bytes("3") })
      expect(countOf(log.throttled, "PutItemCommand")).toBe(2)
      expect(countOf(log.serviceErrors, "ConditionalCheckFailedException")).toBe(0)
      const events = yield* rawEventsOf(admin, location, "/recover/k")
      expect(events.map((event) => event.seq)).toEqual([1, 2])
      expect(events[1]!.revision).toBe(lease.revision)
      expect(text((yield* store.get("/recover/k")).value)).toBe("3")
    }).pipe(Effect.scoped))

  it.live("a fresh instance whose data-key reads are throttled fails reads with Throttled, not DecryptionFailed", () =>
    Effect.gen(function*() {
      const location = yield* table
      const healthy = yield* openStore(location)
      yield* healthy.put({ key: "/keys/k", value: bytes("secret") })
      const { store, log } = yield* throttledStore(location, (command) => command === "GetItemCommand")
      expectThrottled(yield* Effect.exit(store.get("/keys/k")), "get")
      expectThrottled(yield* Effect.exit(store.getRange("/keys/", "/keys/~")), "getRange")
      expect(countOf(log.throttled, "GetItemCommand")).toBeGreaterThanOrEqual(2)
      // The healthy instance still reads it: nothing was damaged.
      expect(text((yield* healthy.get("/keys/k")).value)).toBe("secret")
    }).pipe(Effect.scoped))

  it.live("opening under throttling fails with Throttled (the layout record cannot be read) and writes nothing", () =>
    Effect.gen(function*() {
      const location = yield* table
      const before = yield* rawEvents(admin, location)
      const { client, log } = faultyClient(2, (): Interception => "throttle")
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const opened = yield* Effect.exit(openStore(location, { client }))
      expect(Exit.isFailure(opened)).toBe(true)
      if (Exit.isFailure(opened)) expect(String(Cause.squash(opened.cause))).toContain("Throttled")
      expect(log.sent.size).toBe(0)
      expect(yield* rawEvents(admin, location)).toEqual(before)
    }).pipe(Effect.scoped))

  // Regression (was a bug until src/programs/store/AtomicWriter.ts `commit` maps ThrottlingError /
  // ProvisionedThroughputExceeded cancellation reasons to Throttled): DynamoDB reports a transaction it
  // lacked capacity for as TransactionCanceledException with a ThrottlingError reason, which the SDK does
  // not retry; `commit` turns any code it does not know into StorageFailure("cancelled: ThrottlingError, None").
  it.live("a transaction cancelled for throttling fails with Throttled and writes nothing", () =>
    Effect.gen(function*() {
      const location = yield* table
      const { client, log } = faultyClient(
        2,
        (command): Interception => command === "TransactWriteItemsCommand" ? "cancel-throttled" : "pass"
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const store = yield* openStore(location, { client })
      const exit = yield* Effect.exit(store.atomicWrite([
        { key: "/tx-throttled/a", condition: Condition.whatever, action: Action.put(bytes("a")) },
        { key: "/tx-throttled/b", condition: Condition.notExists, action: Action.put(bytes("b")) }
      ]))
      expect(countOf(log.throttled, "TransactWriteItemsCommand")).toBeGreaterThanOrEqual(1)
      expect(
        yield* rawEvents(admin, location).pipe(
          Effect.map((events) => events.filter((e) => e.key.startsWith("/tx-throttled/")))
        )
      )
        .toEqual([])
      expect(outcomeTag(exit), Exit.isFailure(exit) ? String(exit.cause.reasons[0]) : "").toBe("Throttled")
    }).pipe(Effect.scoped))
})
