import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import { bucketOf } from "../../bench/simulation/Remap.ts"
import { layouts, layoutsOf, onePartition, prefix } from "../../bench/workloads/partitionLayouts.ts"
import * as Partitioning from "../../src/domain/Partitioning.ts"

describe("the partitions workload's layouts", () => {
  it("are layouts the store accepts, the baseline first, buckets as declared", () => {
    expect(layouts[0]).toBe(onePartition)
    for (const layout of layouts) {
      expect(Result.isSuccess(Partitioning.validate(layout.partitions)), layout.name).toBe(true)
      const declared = layout.partitions.map((entry) => entry.buckets ?? 1)
      expect(declared, layout.name).toEqual(layout.buckets === 0 ? [] : [layout.buckets])
    }
    expect(layouts.map((layout) => layout.buckets)).toEqual([0, 1, 16, 64])
  })

  it("keep the baseline and one bucketed layout in a quick run", () => {
    expect(layoutsOf(true).map((layout) => layout.buckets)).toEqual([0, 16])
    expect(layoutsOf(false)).toEqual(layouts)
  })

  it("bucket a key where the what-if re-mapping does, so the cross-check compares like with like", () => {
    for (const layout of layouts.filter((l) => l.buckets > 1)) {
      for (let i = 0; i < 200; i++) {
        const key = `${prefix}${String(i).padStart(5, "0")}`
        expect(Partitioning.partitionOf(layout.partitions, key)).toBe(`nodes.${bucketOf(key, layout.buckets)}`)
      }
    }
  })
})
