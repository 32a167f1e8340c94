/**
 * Reads answer from what they read, even when the process cannot write. A `get` that meets an expired item tries
 * to record its `expire` event, but only as a courtesy (the projection worker records it anyway): when writes are
 * denied (AccessDenied), throttled past the SDK's retries, or keep conflicting (`WriteContention`), the read
 * still answers `NotFound`, logs the failure (key and error, no value) and counts it in
 * `dynastate_store_expiry_record_failures`. Range reads never write at all. Faults are injected by SDK middleware
 * on the reading instance's client; the table is DynamoDB Local.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer, Logger, Metric, References, Stream } from "effect"
import { NotFound } from "../../../src/domain/Errors.ts"
import * as Key from "../../../src/domain/Key.ts"
import { expiryRecordFailures } from "../../../src/programs/store/ExpiryRecording.ts"
import { defaultActorOptions } from "../../../src/programs/store/KeyActors.ts"
import { makeClient, openStore, provisionTable } from "../../support/TestStore.ts"
import type { TestTable } from "../../support/TestStore.ts"
import { bytes, countOf, faultyClient, isEventPut, outcomeTag, rawEventsOf, text } from "./helpers.ts"
import type { FaultLog, Interception } from "./helpers.ts"

const admin = makeClient()
const tableOnce = Effect.runPromise(provisionTable(admin))
const table = Effect.promise(() => tableOnce)

const writeCommands = new Set(["PutItemCommand", "TransactWriteItemsCommand", "UpdateItemCommand", "DeleteItemCommand"])

/** Every write attempt the client saw, however it was answered. */
const writeAttempts = (log: FaultLog): number =>
  [...writeCommands].reduce(
    (total, command) =>
      total + countOf(log.sent, command) + countOf(log.denied, command) + countOf(log.throttled, command) +
      countOf(log.conflicted, command),
    0
  )

/** Long enough for the reading instance to be opened and see the item live on a loaded machine. */
const ttl = 2_000

/** A store whose event writes meet `fault` while `failing` says so; reads always pass. */
const crippledStore = (location: TestTable, fault: Interception, failing: () => boolean) =>
  Effect.gen(function*() {
    const { client, log } = faultyClient(2, (command, input): Interception => {
      if (!failing() || !writeCommands.has(command)) return "pass"
      // Only event appends conflict; anything else is denied or throttled as asked.
      if (fault === "conflict") return command === "PutItemCommand" && isEventPut(location, input) ? fault : "pass"
      return fault
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
    const store = yield* openStore(location, {
      client,
      storeOptions: { actors: { ...defaultActorOptions, maxConflicts: 2 } }
    })
    return { store, log }
  })

/** Collects what is logged at any level, as text with its annotations. */
const capturingLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ fiber, logLevel, message }) => {
    const annotations = fiber.getRef(References.CurrentLogAnnotations)
    lines.push(`${logLevel} ${(message as ReadonlyArray<unknown>).join(" ")} ${JSON.stringify(annotations)}`)
  })
  const layer = Layer.mergeAll(Logger.layer([logger]), Layer.succeed(References.MinimumLogLevel, "All"))
  return { lines, layer }
}

const faults: ReadonlyArray<readonly [string, Interception, string]> = [
  ["AccessDenied", "deny", "StorageFailure"],
  ["throttling that outlasts the SDK's retries", "throttle", "Throttled"],
  ["conflicts past maxConflicts (WriteContention)", "conflict", "WriteContention"]
]

describe("reads answer from what they read when the process cannot write", () => {
  for (const [name, fault, failureTag] of faults) {
    it.live(`${name}: get of an expired key is NotFound; the failed recording is logged and counted`, () =>
      Effect.gen(function*() {
        const location = yield* table
        const p = `/${fault}/`
        const [expiring, kept] = [`${p}expiring`, `${p}kept`]
        const healthy = yield* openStore(location)
        const now = yield* Clock.currentTimeMillis
        const secret = `secret-${fault}-value`
        const expires = now + ttl
        yield* healthy.put({ key: expiring, value: bytes(secret), expires })
        yield* healthy.put({ key: kept, value: bytes("kept") })

        let failing = true
        const { store, log } = yield* crippledStore(location, fault, () => failing)
        // The reading instance has seen the item live (its actor caches it), as a long-running process would.
        expect(text((yield* store.get(expiring)).value)).toBe(secret)
        yield* Effect.sleep(Math.max(0, expires - (yield* Clock.currentTimeMillis)) + 100)

        const { lines, layer } = capturingLogs()
        const before = (yield* Metric.value(expiryRecordFailures)).count
        const outcome = yield* Effect.flip(store.get(expiring)).pipe(Effect.provide(layer))
        expect(outcome).toEqual(new NotFound({ key: expiring }))
        // The recording was tried, failed as the fault makes it fail, was counted and logged, and wrote nothing.
        expect(writeAttempts(log)).toBeGreaterThanOrEqual(1)
        expect((yield* Metric.value(expiryRecordFailures)).count - before).toBe(1)
        const warnings = lines.filter((line) => line.includes(expiring))
        expect(warnings.length).toBe(1)
        expect(warnings[0]).toContain(failureTag)
        expect(lines.join("\n")).not.toContain(secret)
        expect((yield* rawEventsOf(admin, location, expiring)).map((event) => event.op)).toEqual(["put"])

        // Live keys and ranges are read as before, and a range read never tries to write.
        const attempts = writeAttempts(log)
        expect(text((yield* store.get(kept)).value)).toBe("kept")
        expect((yield* store.getRange(p, Key.rangeEnd(p))).map((item) => item.key)).toEqual([kept])
        const descending = yield* Stream.runCollect(store.items({ start: p, end: Key.rangeEnd(p), descending: true }))
        expect([...descending].map((item) => item.key)).toEqual([kept])
        expect(writeAttempts(log)).toBe(attempts)

        // Once it can write again, the next read that meets the expiry records it, once.
        failing = false
        expect(yield* Effect.flip(store.get(expiring))).toEqual(new NotFound({ key: expiring }))
        expect(yield* Effect.flip(store.get(expiring))).toEqual(new NotFound({ key: expiring }))
        expect((yield* rawEventsOf(admin, location, expiring)).map((event) => event.op)).toEqual(["put", "expire"])
        expect(outcomeTag(yield* Effect.exit(store.get(kept)))).toBe("Success")
      }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map())))
  }

  it.live("getRange and items of a range holding expired keys send no write, with or without write faults", () =>
    Effect.gen(function*() {
      const location = yield* table
      const p = "/ranges-only-read/"
      const healthy = yield* openStore(location)
      const now = yield* Clock.currentTimeMillis
      for (const name of ["a", "b", "c", "d"]) {
        yield* healthy.put({ key: p + name, value: bytes(name), expires: name === "c" ? undefined : now + ttl })
      }
      const { client, log } = faultyClient(2, (): Interception => "pass")
      yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
      const store = yield* openStore(location, { client })
      yield* Effect.sleep(ttl + 100)
      expect((yield* store.getRange(p, Key.rangeEnd(p))).map((item) => item.key)).toEqual([`${p}c`])
      for (const descending of [false, true]) {
        const items = yield* Stream.runCollect(store.items({ start: p, end: Key.rangeEnd(p), descending, limit: 2 }))
        expect([...items].map((item) => item.key)).toEqual([`${p}c`])
      }
      expect(writeAttempts(log)).toBe(0)
      for (const name of ["a", "b", "d"]) {
        expect((yield* rawEventsOf(admin, location, p + name)).map((event) => event.op)).toEqual(["put"])
      }
    }).pipe(Effect.scoped))
})
