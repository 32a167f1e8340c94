import { describe, expect, it } from "@effect/vitest"
import { ceiling } from "../../bench/simulation/PartitionModel.ts"
import {
  bucketOf,
  bucketPartition,
  hash,
  namespacePartitions,
  remap,
  remapTouch
} from "../../bench/simulation/Remap.ts"
import type { Bucketing } from "../../bench/simulation/Remap.ts"
import type { KeyRef, Touch, TracedRequest } from "../../bench/simulation/Touches.ts"
import * as SortKey from "../../src/domain/SortKey.ts"

const layout: Bucketing = { prefix: "/nodes/", buckets: 16, partitions: namespacePartitions("events", "ns") }
const touch = (pk: string, key: KeyRef, units = 1, kind: "read" | "write" = "write"): Touch => ({
  table: "events",
  pk,
  key,
  kind,
  units,
  consistent: kind === "read"
})
const one = (key: string): KeyRef => ({ _tag: "Key", key })
const range = (start: string, end: string): KeyRef => ({
  _tag: "Range",
  lower: SortKey.lowerBound(start),
  upper: SortKey.prefixUpperBound(end)
})

describe("hash buckets", () => {
  it("are stable and within range", () => {
    expect(hash("/nodes/a")).toBe(hash("/nodes/a"))
    expect(hash("")).toBe(0x811c9dc5)
    for (let i = 0; i < 100; i++) {
      const bucket = bucketOf(`/nodes/${i}`, 16)
      expect(bucket).toBeGreaterThanOrEqual(0)
      expect(bucket).toBeLessThan(16)
    }
  })
})

describe("remapTouch", () => {
  it("moves a key under the prefix to its bucket in the live, history, graves and chunks partitions", () => {
    const bucket = bucketPartition("ns", bucketOf("/nodes/a", 16))
    expect(remapTouch(touch("ns", one("/nodes/a")), layout)).toEqual([touch(bucket, one("/nodes/a"))])
    const history = remapTouch(touch("ns\u0000history", one("/nodes/a")), layout)
    expect(history[0]!.pk).toBe(bucketPartition("ns\u0000history", bucketOf("/nodes/a", 16)))
    expect(remapTouch(touch("ns\u0000graves", one("/nodes/a")), layout)[0]!.pk).not.toBe("ns\u0000graves")
    expect(remapTouch(touch("ns\u0000chunks", one("/nodes/a")), layout)[0]!.pk).toBe(
      bucketPartition("ns\u0000chunks", bucketOf("/nodes/a", 16))
    )
    // Chunks read by digest (no key) stay where they were.
    const digest = touch("ns\u0000chunks", {
      _tag: "Range",
      lower: new Uint8Array([1, 9]),
      upper: new Uint8Array([1, 10])
    })
    expect(remapTouch(digest, layout)).toEqual([digest])
  })

  it("leaves keys outside the prefix, items not filed by key and other partitions where they were", () => {
    const outside = touch("ns", one("/roles/a"))
    expect(remapTouch(outside, layout)).toEqual([outside])
    const dataKey = touch("ns\u0000data-keys", one("/nodes/a"))
    expect(remapTouch(dataKey, layout)).toEqual([dataKey])
    const lease = { ...touch("shard", one("/nodes/a")), table: "events.projections" }
    expect(remapTouch(lease, layout)).toEqual([lease])
    const none = touch("ns", { _tag: "None" })
    expect(remapTouch(none, layout)).toEqual([none])
  })

  it("spreads a range read inside the prefix over every bucket, each billed at least a read's minimum", () => {
    const read = touch("ns", range("/nodes/", "/nodes/"), 32, "read")
    const spread = remapTouch(read, layout)
    expect(spread).toHaveLength(16)
    expect(new Set(spread.map((t) => t.pk)).size).toBe(16)
    expect(spread.every((t) => t.units === 2)).toBe(true)
    const small = remapTouch(touch("ns", range("/nodes/a", "/nodes/b"), 1, "read"), layout)
    // A strongly consistent Query costs at least one unit per bucket.
    expect(small.every((t) => t.units === 1)).toBe(true)
  })

  it("keeps a share on the original value for a range reaching beyond the prefix, and ignores ranges outside it", () => {
    const wide = remapTouch(touch("ns", range("/a", "/z"), 34, "read"), layout)
    expect(wide).toHaveLength(17)
    expect(wide.filter((t) => t.pk === "ns")).toHaveLength(1)
    const outside = touch("ns", range("/roles/", "/roles/"), 3, "read")
    expect(remapTouch(outside, layout)).toEqual([outside])
    const whole = remapTouch(touch("ns", { _tag: "All" }, 17, "read"), layout)
    expect(whole).toHaveLength(17)
  })
})

describe("remap", () => {
  it("lifts the ceiling of a uniform put pattern by about the number of buckets", () => {
    const keys = 1600
    const trace: Array<TracedRequest> = Array.from({ length: keys }, (_, i) => ({
      at: i,
      operation: "PutItem",
      touches: [touch("ns", one(`/nodes/${i}`), 2), touch("ns\u0000history", one(`/nodes/${i}`), 1)]
    }))
    const single = ceiling(trace, keys)
    expect(single.operationsPerSecond).toBe(500)
    const bucketed = ceiling(remap(trace, layout), keys)
    const ratio = bucketed.operationsPerSecond / single.operationsPerSecond
    expect(ratio).toBeGreaterThan(10)
    expect(ratio).toBeLessThanOrEqual(16)
    expect(bucketed.writeUnitsPerOperation).toBe(3)
    expect(bucketed.bottleneck?.pk.startsWith("ns#")).toBe(true)
  })

  it("refuses a bucket count that is not a positive whole number", () => {
    expect(() => remap([], { ...layout, buckets: 0 })).toThrow(RangeError)
    expect(() => remap([], { ...layout, buckets: 2.5 })).toThrow(RangeError)
  })
})
