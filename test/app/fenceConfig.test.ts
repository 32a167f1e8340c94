/**
 * The write fence from configuration reaches both sides: the store's writers (actors and atomic writes) and the
 * worker's compaction, which is checked against the writers' real fence, not the default one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import * as WorkerLive from "../../src/programs/app/WorkerLive.ts"
import { defaultStoreOptions } from "../../src/programs/store/Store.ts"

describe("the write fence from configuration", () => {
  it.effect("sets the store's fence and write mode and compaction's settle time and writer fence", () =>
    Effect.gen(function*() {
      const config = yield* StoreConfig.load({
        env: {
          DYNASTATE_MAX_STATE_AGE: "5s",
          DYNASTATE_WRITE_TIMEOUT: "10s",
          DYNASTATE_COMPACTION_SETTLE: "8m",
          DYNASTATE_WRITE_MODE: "strict"
        }
      })
      const fence = { maxStateAgeMillis: 5_000, writeTimeoutMillis: 10_000 }
      const options = StoreLive.storeOptions(config, { ...defaultStoreOptions, deleteConcurrency: 3 })
      expect(options.actors).toEqual({ ...defaultStoreOptions.actors, fence, writeMode: "strict" })
      expect(options.atomicWrite).toEqual({ ...defaultStoreOptions.atomicWrite, fence, writeMode: "strict" })
      expect(options.deleteConcurrency).toBe(3)
      // The layout lease a layout migration waits for: the configuration's, with its write timeout.
      expect(options.layoutLease).toEqual(StoreConfig.layoutLeaseOf(config))
      // The embedded DynamoDB Local: lease + write timeout, no margins.
      expect(options.layoutLease?.drainMillis).toBe(30_000 + 10_000)
      const compaction = WorkerLive.compactionOptions(config)
      expect(compaction).toMatchObject({
        settleMillis: 480_000,
        writerFence: fence,
        writerMode: "strict",
        retention: { _tag: "Forever" }
      })
    }))

  it.effect("refuses store options whose fence or write mode disagree with the configuration's, before any I/O", () =>
    Effect.gen(function*() {
      // Nothing listens on port 1: were the options not checked first, opening would fail on the connection.
      const config = yield* StoreConfig.load({
        env: { DYNASTATE_ENDPOINT: "http://127.0.0.1:1", DYNASTATE_REGION: "us-east-1" }
      })
      const fence = { maxStateAgeMillis: 1_000, writeTimeoutMillis: 1_000 }
      const refused = yield* Effect.flip(
        Layer.build(
          StoreLive.layer(config, { ...defaultStoreOptions, actors: { ...defaultStoreOptions.actors, fence } })
        )
          .pipe(Effect.scoped)
      )
      expect(refused._tag).toBe("ConfigInvalid")
      expect(refused.message).toContain("max_state_age")
      expect(refused.message).toContain("write_timeout")
      const strict = yield* Effect.flip(
        Layer.build(
          StoreLive.layer(config, {
            ...defaultStoreOptions,
            atomicWrite: { ...defaultStoreOptions.atomicWrite, writeMode: "strict" }
          })
        ).pipe(Effect.scoped)
      )
      expect(strict.message).toContain("write_mode")
      const lease = yield* Effect.flip(
        Layer.build(
          StoreLive.layer(config, { ...defaultStoreOptions, layoutLease: { leaseMillis: 5_000, drainMillis: 5_000 } })
        ).pipe(Effect.scoped)
      )
      expect(lease.message).toContain("storage.layout_lease")
    }))
})
