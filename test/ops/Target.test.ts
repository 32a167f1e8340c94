/**
 * The target of the operational commands comes from the store's configuration: the same table, namespace and
 * store id the store binds values to, and the worker's side tables beside it.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { fromProvider } from "../../src/infra/StoreConfig.ts"
import * as Target from "../../src/programs/ops/Target.ts"

const configOf = (storage: Record<string, unknown>) => fromProvider(ConfigProvider.fromUnknown({ storage }))

describe("Target", () => {
  it.effect("names the configured table, namespace, store id and side tables", () =>
    Effect.gen(function*() {
      const restored = Target.fromConfig(
        yield* configOf({ table_name: "copy", namespace: "teleport", store_id: "original" }),
        { leaseGroup: "blue", views: ["byEmail"] }
      )
      expect(restored).toEqual({
        table: "copy",
        namespace: "teleport",
        storeId: "original",
        leaseTable: "copy.projections",
        leaseGroup: "blue",
        viewTables: ["copy.view.byEmail"]
      })
      expect(Target.locationOf(restored)).toEqual({ table: "copy", namespace: "teleport", storeId: "original" })

      const plain = Target.fromConfig(yield* configOf({ table_name: "main" }))
      expect(plain).toMatchObject({ storeId: "main", namespace: "default", leaseGroup: "default", viewTables: [] })
      expect(Target.locationOf(plain).storeId).toBeUndefined()
    }))
})
