/**
 * Commands queued in a key's actor behind a write that changed the key fail on a state established after they were
 * invoked, without a read each: the first runs at once in its caller's fiber and sends its write before the others
 * come, so the first of them reads once, and that read, sent after all of them were invoked, was the key's newest
 * within every queued command's span. A command that came after the state was established still reads before it fails.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { openStore, provisionTable } from "../../support/TestStore.ts"
import { bytes, countOf, faultyClient, outcomeTag, text } from "./helpers.ts"

const counting = () => faultyClient(5, () => "pass")

describe("failures of queued commands", () => {
  it.live("15 of 16 concurrent compareAndSwaps of one counter lose to the first with one read between them", () =>
    Effect.gen(function*() {
      const { client, log } = counting()
      const location = yield* provisionTable(client)
      const store = yield* openStore(location, { client })
      yield* store.put({ key: "/counter", value: bytes("0") })
      const queriesBefore = countOf(log.sent, "QueryCommand")
      const putsBefore = countOf(log.sent, "PutItemCommand")
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 16 }, (_, i) => i),
        () =>
          Effect.exit(
            store.compareAndSwap({ key: "/counter", value: bytes("0") }, { key: "/counter", value: bytes("1") })
          ),
        { concurrency: "unbounded" }
      )
      const tags = outcomes.map(outcomeTag)
      expect(tags.filter((tag) => tag === "Success")).toHaveLength(1)
      expect(tags.filter((tag) => tag === "CompareFailed")).toHaveLength(15)
      expect(countOf(log.sent, "PutItemCommand") - putsBefore).toBe(1)
      expect(countOf(log.sent, "QueryCommand") - queriesBefore).toBeLessThanOrEqual(1)
      expect(text((yield* store.get("/counter")).value)).toBe("1")
    }))

  it.live("a command that came after the state was established reads again before it fails", () =>
    Effect.gen(function*() {
      const { client, log } = counting()
      const location = yield* provisionTable(client)
      const store = yield* openStore(location, { client })
      const other = yield* openStore(location, { client })
      yield* store.put({ key: "/counter", value: bytes("0") })
      yield* other.put({ key: "/counter", value: bytes("5") })
      const queriesBefore = countOf(log.sent, "QueryCommand")
      // The cache says "0", the key holds "5": the failure on the cache is checked by a read, which lets it succeed.
      yield* store.compareAndSwap({ key: "/counter", value: bytes("5") }, { key: "/counter", value: bytes("6") })
      expect(countOf(log.sent, "QueryCommand") - queriesBefore).toBe(1)
      const stale = yield* Effect.exit(
        other.compareAndSwap({ key: "/counter", value: bytes("5") }, { key: "/counter", value: bytes("7") })
      )
      expect(outcomeTag(stale)).toBe("CompareFailed")
      expect(text((yield* other.get("/counter")).value)).toBe("6")
    }))
})
