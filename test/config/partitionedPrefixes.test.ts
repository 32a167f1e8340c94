import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"

const load = (env: Record<string, string>) => StoreConfig.load({ env })

describe("storage.partitioned_prefixes", () => {
  it.effect("PREFIX:NAME for an own partition, PREFIX:NAME:BUCKETS for hash buckets, none by default", () =>
    Effect.gen(function*() {
      expect((yield* load({})).partitionedPrefixes).toEqual([])
      const config = yield* load({ DYNASTATE_PARTITIONED_PREFIXES: "/nodes/:nodes, /sessions/:sessions:8, /a:b/:ab" })
      expect(config.partitionedPrefixes).toEqual([
        { prefix: "/nodes/", name: "nodes" },
        { prefix: "/sessions/", name: "sessions", buckets: 8 },
        { prefix: "/a:b/", name: "ab" }
      ])
    }))

  it.effect("refuses a layout that cannot route soundly before any I/O, naming the key", () =>
    Effect.gen(function*() {
      for (
        const [text, reason] of [
          ["/nodes/", "without a name"],
          [":nodes", "non-empty"],
          ["/a/:a,/a/b/:b", "must not nest"],
          ["/a/:a:0", "1 to 64"],
          ["/a/:a:65", "1 to 64"],
          ["/a/:x,/b/:x", "used twice"],
          ["/a/:a.b", "partition name"]
        ] as const
      ) {
        const error = yield* Effect.flip(load({ DYNASTATE_PARTITIONED_PREFIXES: text }))
        expect(error._tag).toBe("ConfigInvalid")
        expect(error.field).toBe("storage.partitioned_prefixes")
        expect(error.reason).toContain(reason)
      }
    }))

  it.effect("refuses a partitioned prefix inside a sealed one (its keys are stored sealed, outside it)", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        load({ DYNASTATE_PARTITIONED_PREFIXES: "/tokens/a/:a", DYNASTATE_SEALED_PREFIXES: "/tokens/" })
      )
      expect(error.field).toBe("storage.partitioned_prefixes[0].prefix")
      expect(error.reason).toContain("inside the sealed prefix /tokens/")
      const sound = yield* load({
        DYNASTATE_PARTITIONED_PREFIXES: "/tokens/:t:4",
        DYNASTATE_SEALED_PREFIXES: "/tokens/"
      })
      expect(sound.partitionedPrefixes).toEqual([{ prefix: "/tokens/", name: "t", buckets: 4 }])
    }))
})
