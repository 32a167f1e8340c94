/**
 * Sealing a prefix that already holds keys in clear: a store opens in migrating mode (see `SealedFallback`) rather
 * than hiding them. It reads a clear key where it is, moves it to its sealed form before writing it (keeping its
 * revision), and never needs the migration to have run first.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import { rawKeyItems } from "../support/RawTable.ts"
import { openStore, storedKeyOf, tablePerFile, testLayoutLease } from "../support/TestStore.ts"

const { client, freshLocation } = tablePerFile("sealclear")
const bytes = (value: string) => new TextEncoder().encode(value)
const text = (value: Uint8Array) => new TextDecoder().decode(value)
const sealed: ReadonlyArray<SealedPrefix> = [{ prefix: "/tokens/", seal: "rest" }]

describe("a sealed prefix over keys written in clear", () => {
  it.live("opens in migrating mode: clear keys read, and a write moves its key first", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const clear = yield* openStore(location, { client })
      const key = "/tokens/join-secret-1234"
      const first = yield* clear.put({ key, value: bytes("node") })
      // Keys beside the prefix, and the prefix itself, are not under it.
      yield* clear.put({ key: "/tokens", value: bytes("x") })
      yield* clear.put({ key: "/tokenz/a", value: bytes("x") })

      const store = yield* openStore(location, { client, storeOptions: { sealed } })
      const read = yield* store.get(key)
      expect([text(read.value), read.revision]).toEqual(["node", first.revision])
      expect((yield* store.getRange("/tokens/", "/tokens0")).map((item) => item.key)).toEqual([key])

      // A conditional write on the revision read before: the key moves (same revision), then the write lands.
      const lease = yield* store.conditionalUpdate({ key, value: bytes("node-2"), revision: first.revision })
      expect(text((yield* store.get(key)).value)).toBe("node-2")
      expect(lease.key).toBe(key)
      expect(yield* Effect.promise(() => rawKeyItems(client, location, key))).toEqual([])
      const stored = yield* storedKeyOf(location, sealed, key, client)
      const moved = yield* Effect.promise(() => rawKeyItems(client, location, stored))
      expect(moved.map((item) => item["seq"]?.N)).toEqual(["2", "1"])
      expect(text((yield* store.get("/tokens")).value)).toBe("x")
      // The store recorded the sealing: the one configured without the prefix is fenced within its lease (its next
      // re-read of the record, at most a lease away).
      const deadline = Date.now() + testLayoutLease.leaseMillis + 5_000
      let refused = yield* Effect.result(clear.get("/tokens"))
      while (refused._tag === "Success" && Date.now() < deadline) {
        yield* Effect.sleep("200 millis")
        refused = yield* Effect.result(clear.get("/tokens"))
      }
      expect(refused._tag === "Failure" ? refused.failure._tag : "still serving").toBe("LayoutSuperseded")
    }), 30_000)
})
