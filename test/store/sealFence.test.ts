/**
 * The layout lease fences sealing too (see `LayoutRecord` sealed prefixes, `LayoutFence`): a store running without a
 * sealed prefix that `seal-migrate` begins sealing keeps writing a cached clear key until its lease says the prefix
 * is recorded, then fails with `LayoutSuperseded`; the migration moves nothing before every such process has lost its
 * lease, so the key is never forked and the sealed store reads every acknowledged write. A store opened without a
 * recorded sealed prefix is refused, naming the prefix and never a key.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Stream } from "effect"
import type { Layout } from "../../src/domain/Partitioning.ts"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import * as PartitionMigration from "../../src/programs/store/PartitionMigration.ts"
import * as SealMigration from "../../src/programs/store/SealMigration.ts"
import { shortLease, shortLeaseOptions, writeUntilRefused } from "../support/Fencing.ts"
import { rawKeyItems } from "../support/RawTable.ts"
import { openStore, openStoreChecked, tablePerFile, withLayout } from "../support/TestStore.ts"

const { client, freshLocation } = tablePerFile("sealfence")
const bytes = (value: string) => new TextEncoder().encode(value)
const text = (value: Uint8Array) => new TextDecoder().decode(value)
const sealed: ReadonlyArray<SealedPrefix> = [{ prefix: "/tokens/", seal: "rest" }]
const secretKey = "/tokens/tok-4-secret"

const lease = shortLease
const storeOptions = (prefixes: ReadonlyArray<SealedPrefix>) => ({ sealed: prefixes, ...shortLeaseOptions })

describe("the sealing fence", () => {
  it.live(
    "fences a store running without the sealed prefix: its writes stop before the key moves, and nothing forks",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const clear = yield* openStore(location, { client, storeOptions: storeOptions([]) })
        yield* clear.put({ key: secretKey, value: bytes("0") })
        // The store without the sealed prefix keeps writing its cached clear key while seal-migrate runs.
        const writer = yield* Effect.forkChild(writeUntilRefused(clear, secretKey))
        yield* Effect.sleep("200 millis")
        const startedAt = yield* Clock.currentTimeMillis
        const [report] = yield* withLayout(location, [], client, SealMigration.run(sealed, { lease }))
        expect(report).toMatchObject({ found: 1, moved: 1, failed: 0, done: true })
        // The runner waited out the clear store's lease before moving anything.
        expect((yield* Clock.currentTimeMillis) - startedAt).toBeGreaterThanOrEqual(2_900)

        const { acked, failure } = yield* Fiber.join(writer).pipe(Effect.timeout("10 seconds"))
        expect(failure._tag).toBe("LayoutSuperseded")
        expect(failure.message).toContain("sealed prefix /tokens/")
        expect(failure.message).toContain("Restart it configured with the recorded sealed prefixes")
        expect(failure.message).not.toContain("tok-4-secret")
        expect(acked.length).toBeGreaterThan(2)
        expect((yield* Effect.flip(clear.get(secretKey)))._tag).toBe("LayoutSuperseded")
        expect(yield* Effect.promise(() => rawKeyItems(client, location, secretKey))).toEqual([])

        // One dense history under the sealed key, every acknowledged write in it.
        const fresh = yield* openStore(location, { client, storeOptions: storeOptions(sealed) })
        expect(text((yield* fresh.get(secretKey)).value)).toBe(acked[acked.length - 1])
        const history = yield* Stream.runCollect(fresh.history(secretKey))
        expect(history.map((event) => event.seq)).toEqual(history.map((_, index) => index + 1))
        expect(history.map((event) => event.value === undefined ? "" : text(event.value))).toEqual(["0", ...acked])

        // A process started without the recorded sealed prefix is refused at open, naming the prefix only.
        const refused = yield* Effect.flip(openStoreChecked(location, { client, storeOptions: storeOptions([]) }))
        expect(refused._tag).toBe("ConfigInvalid")
        expect(refused.message).toContain("/tokens/")
        expect(refused.message).not.toContain("tok-4-secret")
      }),
    20_000
  )

  it.live(
    "a store opening with clear keys under its sealed prefix records the sealing and moves nothing before the drain",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        const clear = yield* openStore(location, { client, storeOptions: storeOptions([]) })
        yield* clear.put({ key: secretKey, value: bytes("1") })
        const openedAt = yield* Clock.currentTimeMillis
        const sealing = yield* openStore(location, { client, storeOptions: storeOptions(sealed) })
        // Reads fall back to the clear key at once; the first write (a move) waits out the clear store's lease.
        expect(text((yield* sealing.get(secretKey)).value)).toBe("1")
        yield* sealing.put({ key: secretKey, value: bytes("2") })
        expect((yield* Clock.currentTimeMillis) - openedAt).toBeGreaterThanOrEqual(2_900)
        expect((yield* Effect.flip(clear.get(secretKey)))._tag).toBe("LayoutSuperseded")
        const history = yield* Stream.runCollect(sealing.history(secretKey))
        expect(history.map((event) => event.value === undefined ? "" : text(event.value))).toEqual(["1", "2"])
      }),
    20_000
  )

  it.live(
    "a layout change keeps the recorded sealed prefixes: the record item holds both",
    () =>
      Effect.gen(function*() {
        const location = freshLocation()
        yield* withLayout(location, [], client, SealMigration.run(sealed, { lease }))
        const hot: Layout = [{ prefix: "/hot/", name: "hot", buckets: 2 }]
        const moved = yield* withLayout(location, hot, client, PartitionMigration.run({ lease }))
        expect(moved).toMatchObject({ done: true })
        const laidOut = { ...location, partitions: hot }
        const refused = yield* Effect.flip(openStoreChecked(laidOut, { client, storeOptions: storeOptions([]) }))
        expect(refused.message).toContain("seals the prefix /tokens/")
        const store = yield* openStore(laidOut, { client, storeOptions: { ...storeOptions(sealed), partitions: hot } })
        yield* store.put({ key: secretKey, value: bytes("sealed") })
        expect(yield* Effect.promise(() => rawKeyItems(client, location, secretKey))).toEqual([])
      }),
    20_000
  )
})
