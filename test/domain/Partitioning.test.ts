import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import * as Key from "../../src/domain/Key.ts"
import * as Partitioning from "../../src/domain/Partitioning.ts"
import type { Layout } from "../../src/domain/Partitioning.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import * as PartitionKeys from "../../src/infra/PartitionKeys.ts"

const params = { seed: 20261202, numRuns: 300 }

const layout: Layout = [
  { prefix: "/nodes/", name: "nodes" },
  { prefix: "/sessions/", name: "sessions", buckets: 8 }
]

const problems = (candidate: Layout) => {
  const checked = Partitioning.validate(candidate)
  return Result.isFailure(checked) ? checked.failure.map((problem) => problem.reason) : []
}

/** The key range [start, end] as sort-key bounds, as the store reads it. */
const keyRange = (start: string, end: string) => ({ lower: SortKey.lowerBound(start), upper: SortKey.upperBound(end) })

describe("Partitioning", () => {
  describe("routing", () => {
    it("sends a key under an own-partition prefix to it, the prefix itself included, and every other key to the default", () => {
      expect(Partitioning.partitionOf(layout, "/nodes/a")).toBe("nodes")
      expect(Partitioning.partitionOf(layout, "/nodes/")).toBe("nodes")
      expect(Partitioning.partitionOf(layout, "/nodes")).toBe("")
      expect(Partitioning.partitionOf(layout, "/users/a")).toBe("")
      expect(Partitioning.partitionOf([], "/nodes/a")).toBe("")
    })

    it("spreads a bucketed prefix's keys over every bucket by a stable hash", () => {
      const buckets = new Set(
        Array.from({ length: 400 }, (_, i) => Partitioning.partitionOf(layout, `/sessions/${i}`))
      )
      expect([...buckets].sort()).toEqual(Array.from({ length: 8 }, (_, b) => `sessions.${b}`).sort())
      // FNV-1a of the UTF-8 bytes: fixed forever, or keys written by an older version would be looked for elsewhere.
      expect(Partitioning.hash("")).toBe(0x811c9dc5)
      expect(Partitioning.hash("a")).toBe(0xe40c292c)
      expect(Partitioning.partitionOf(layout, "/sessions/a")).toBe(`sessions.${Partitioning.hash("/sessions/a") % 8}`)
    })

    it("maps partitions to partition keys that keep the default one the namespace, byte for byte", () => {
      const location = { namespace: "ns", partitions: layout }
      expect(PartitionKeys.keyPartition(location, "/users/a")).toBe("ns")
      expect(PartitionKeys.keyPartition(location, "/nodes/a")).toBe("ns\u0000@nodes")
      expect(PartitionKeys.keyArea(location, "/users/a", "history")).toBe("ns\u0000history")
      expect(PartitionKeys.keyArea(location, "/nodes/a", "graves")).toBe("ns\u0000@nodes\u0000graves")
      expect(PartitionKeys.livePartitions(location)).toHaveLength(1 + 1 + 8)
      for (const live of PartitionKeys.livePartitions(location)) {
        expect(PartitionKeys.isLivePartition("ns", live)).toBe(true)
        expect(PartitionKeys.isLivePartition("ns", PartitionKeys.areaPartition(live, "history"))).toBe(false)
        expect(PartitionKeys.liveOfArea(PartitionKeys.areaPartition(live, "graves"), "graves")).toBe(live)
      }
      expect(PartitionKeys.isLivePartition("ns", "ns2")).toBe(false)
      expect(PartitionKeys.isLivePartition("ns", "ns\u0000meta")).toBe(false)
    })
  })

  describe("which partitions a range touches", () => {
    it("a range inside a prefix touches only its partitions; one around or across it also the default", () => {
      expect(Partitioning.partitionsOfRange(layout, keyRange("/nodes/a", "/nodes/z"))).toEqual(["nodes"])
      expect(Partitioning.partitionsOfRange(layout, keyRange("/nodes/", Key.rangeEnd("/nodes/")))).toEqual([
        "",
        "nodes"
      ])
      expect(Partitioning.partitionsOfRange(layout, keyRange("/sessions/a", "/sessions/b"))).toHaveLength(8)
      expect(Partitioning.partitionsOfRange(layout, keyRange("/", Key.rangeEnd("/")))).toHaveLength(1 + 1 + 8)
      expect(Partitioning.partitionsOfRange(layout, keyRange("/a", "/m"))).toEqual([""])
      expect(Partitioning.partitionsOfRange(layout, keyRange("/z", "/a"))).toEqual([])
    })

    it("a range of one key's events (a get, its history, compaction's read, its grave) touches only its bucket", () => {
      const key = "/sessions/a"
      const bucket = [Partitioning.partitionOf(layout, key)]
      expect(Partitioning.partitionsOfRange(layout, keyRange(key, key))).toEqual(bucket)
      expect(Partitioning.partitionsOfRange(layout, { lower: SortKey.encode(key, 7), upper: SortKey.upperBound(key) }))
        .toEqual(bucket)
      expect(Partitioning.partitionsOfRange(layout, { lower: SortKey.lowerBound(key), upper: SortKey.encode(key, 3) }))
        .toEqual(bucket)
      // A grave is filed under `key ‖ 0x00`; reading one key's grave names that alone.
      expect(Partitioning.partitionsOfRange(layout, { lower: SortKey.keyPrefix(key), upper: SortKey.keyPrefix(key) }))
        .toEqual(bucket)
      expect(Partitioning.partitionsOfRange(layout, keyRange("/users/a", "/users/a"))).toEqual([""])
    })

    it("every key of a range lives in one of the partitions the range touches (property)", () => {
      const segment = fc.constantFrom("/nodes/", "/nodes", "/sessions/", "/n", "/s", "/", "/t", "")
      const key = fc.tuple(segment, fc.string({ maxLength: 4 })).map(([head, tail]) => `${head}${tail}`)
        .filter((candidate) => Result.isSuccess(Key.validate(candidate)))
      fc.assert(
        fc.property(key, key, key, (a, b, inner) => {
          const [start, end] = Key.compare(a, b) <= 0 ? [a, b] : [b, a]
          fc.pre(Key.compare(start, inner) <= 0 && Key.compare(inner, end) <= 0)
          const touched = Partitioning.partitionsOfRange(layout, keyRange(start, end))
          expect(touched).toContain(Partitioning.partitionOf(layout, inner))
        }),
        params
      )
    })
  })

  describe("validation", () => {
    it("accepts a sound layout and describes it", () => {
      expect(problems(layout)).toEqual([])
      expect(Partitioning.describe(layout)).toBe("/nodes/ → nodes, /sessions/ → sessions (8 buckets)")
      expect(Partitioning.describe([])).toBe("none (one partition)")
    })

    it("refuses empty prefixes, NUL, bad names, duplicate names, nesting and bucket counts outside 1..64", () => {
      expect(problems([{ prefix: "", name: "a" }])[0]).toMatch(/non-empty/)
      expect(problems([{ prefix: "/a\u0000/", name: "a" }])[0]).toMatch(/NUL/)
      expect(problems([{ prefix: "/a/", name: "a\u0000b" }])[0]).toMatch(/partition name/)
      expect(problems([{ prefix: "/a/", name: "a.b" }])[0]).toMatch(/partition name/)
      expect(problems([{ prefix: "/a/", name: "x" }, { prefix: "/b/", name: "x" }])[0]).toMatch(/used twice/)
      expect(problems([{ prefix: "/a/", name: "a" }, { prefix: "/a/b/", name: "b" }])[0]).toMatch(/must not nest/)
      expect(problems([{ prefix: "/a/", name: "a" }, { prefix: "/a/", name: "b" }])[0]).toMatch(/twice/)
      expect(problems([{ prefix: "/a/", name: "a", buckets: 0 }])[0]).toMatch(/1 to 64/)
      expect(problems([{ prefix: "/a/", name: "a", buckets: 65 }])[0]).toMatch(/1 to 64/)
      expect(problems([{ prefix: "/a/", name: "a", buckets: 1.5 }])[0]).toMatch(/1 to 64/)
      expect(problems([{ prefix: "/a/", name: "a", buckets: 64 }])).toEqual([])
    })

    it("refuses a partitioned prefix inside a sealed one, and accepts a sealed prefix inside or equal to a partitioned one", () => {
      const sealedInside = Partitioning.checkSealed(layout, [{ prefix: "/nodes/secret/", seal: "segment" }])
      expect(sealedInside).toEqual([])
      expect(Partitioning.checkSealed(layout, [{ prefix: "/nodes/", seal: "rest" }])).toEqual([])
      const [unsound] = Partitioning.checkSealed(layout, [{ prefix: "/", seal: "segment" }])
      expect(unsound?.reason).toMatch(/lies inside the sealed prefix \//)
    })

    it("compares layouts by routing, not by order or spelled-out defaults", () => {
      const reordered: Layout = [layout[1]!, { prefix: "/nodes/", name: "nodes", buckets: 1 }]
      expect(Partitioning.same(layout, reordered)).toBe(true)
      expect(Partitioning.same(layout, [layout[0]!])).toBe(false)
      expect(Partitioning.same(layout, [layout[0]!, { ...layout[1]!, buckets: 4 }])).toBe(false)
    })
  })
})
