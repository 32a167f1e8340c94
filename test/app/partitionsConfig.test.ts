/**
 * The layout of a partitioned key space from configuration or the layer option (see `Partitioning`): the file's
 * `partitioned_prefixes` wins when it names any, the option serves when it names none, and both naming different
 * layouts is refused before any I/O.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import { defaultStoreOptions } from "../../src/programs/store/Store.ts"

const option = [{ prefix: "/nodes/", name: "nodes", buckets: 4 }]

describe("partitioned prefixes from configuration and options", () => {
  it.effect("the configuration's layout wins; the option serves when the configuration names none", () =>
    Effect.gen(function*() {
      const plain = yield* StoreConfig.load({ env: {} })
      expect(StoreLive.storeOptions(plain, { ...defaultStoreOptions, partitions: option }).partitions).toEqual(option)
      expect(StoreLive.storeOptions(plain).partitions).toBeUndefined()
      const configured = yield* StoreConfig.load({ env: { DYNASTATE_PARTITIONED_PREFIXES: "/nodes/:nodes:4" } })
      expect(StoreLive.storeOptions(configured).partitions).toEqual([{ prefix: "/nodes/", name: "nodes", buckets: 4 }])
      expect(StoreLive.conflictingOptions(configured, { ...defaultStoreOptions, partitions: option })).toBeUndefined()
    }))

  it.effect("an option naming another layout than the configuration's is ConfigInvalid before any I/O", () =>
    Effect.gen(function*() {
      // Nothing listens on port 1: were the options not checked first, opening would fail on the connection.
      const config = yield* StoreConfig.load({
        env: {
          DYNASTATE_ENDPOINT: "http://127.0.0.1:1",
          DYNASTATE_REGION: "us-east-1",
          DYNASTATE_PARTITIONED_PREFIXES: "/nodes/:nodes"
        }
      })
      const refused = yield* Effect.flip(
        Layer.build(StoreLive.layer(config, { ...defaultStoreOptions, partitions: option })).pipe(Effect.scoped)
      )
      expect(refused._tag).toBe("ConfigInvalid")
      expect(refused.message).toContain("storage.partitioned_prefixes")
      expect(refused.message).toContain("/nodes/ → nodes (4 buckets)")
    }))
})
