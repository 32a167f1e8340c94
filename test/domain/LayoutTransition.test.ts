import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as Key from "../../src/domain/Key.ts"
import * as LayoutTransition from "../../src/domain/LayoutTransition.ts"
import type { Transition } from "../../src/domain/LayoutTransition.ts"
import * as Partitioning from "../../src/domain/Partitioning.ts"
import type { Layout } from "../../src/domain/Partitioning.ts"
import * as SortKey from "../../src/domain/SortKey.ts"

const params = { seed: 20261202, numRuns: 300 }

const before: Layout = [{ prefix: "/nodes/", name: "nodes" }, { prefix: "/sessions/", name: "sessions", buckets: 4 }]
const after: Layout = [{ prefix: "/nodes/", name: "nodes" }, { prefix: "/sessions/", name: "sessions", buckets: 8 }, {
  prefix: "/hot/",
  name: "hot",
  buckets: 4
}]
const transition: Transition = { from: before, to: after }

const keyArb = fc.constantFrom("/nodes/", "/sessions/", "/hot/", "/other/", "/hot", "/sessions").chain((prefix) =>
  fc.string({ minLength: 0, maxLength: 8 }).map((rest) => `${prefix}${rest.replaceAll("\u0000", "")}`)
)

describe("LayoutTransition", () => {
  describe("which keys move", () => {
    it("names the prefixes whose entries differ, in key order, and no unchanged one", () => {
      expect(LayoutTransition.changedPrefixes(transition)).toEqual(["/hot/", "/sessions/"])
      expect(LayoutTransition.changedPrefixes({ from: after, to: after })).toEqual([])
      expect(LayoutTransition.changedPrefixes({ from: [], to: [{ prefix: "/a/", name: "a" }] })).toEqual(["/a/"])
      // Removing a partitioned prefix moves its keys back to the default partition.
      expect(LayoutTransition.changedPrefixes({ from: before, to: [] })).toEqual(["/nodes/", "/sessions/"])
      // A rename moves the keys too (another partition key).
      expect(
        LayoutTransition.changedPrefixes({ from: [{ prefix: "/a/", name: "a" }], to: [{ prefix: "/a/", name: "b" }] })
      )
        .toEqual(["/a/"])
    })

    it("moves a key exactly when the two layouts route it apart, and only under a changed prefix", () => {
      fc.assert(
        fc.property(keyArb, (key) => {
          const moves = LayoutTransition.moves(transition, key)
          expect(moves).toBe(Partitioning.partitionOf(before, key) !== Partitioning.partitionOf(after, key))
          if (moves) {
            expect(LayoutTransition.changedPrefixes(transition).some((prefix) => key.startsWith(prefix))).toBe(true)
          }
        }),
        params
      )
      expect(LayoutTransition.moves(transition, "/nodes/a")).toBe(false)
      expect(LayoutTransition.moves(transition, "/hot/a")).toBe(true)
      expect(LayoutTransition.moves(transition, "/other/a")).toBe(false)
    })

    it("says a sort-key range may hold moving keys whenever it holds the sort key of one", () => {
      fc.assert(
        fc.property(keyArb, keyArb, keyArb, (a, b, inside) => {
          const [start, end] = Key.compare(a, b) <= 0 ? [a, b] : [b, a]
          if (Key.compare(start, inside) > 0 || Key.compare(inside, end) > 0) return
          if (!LayoutTransition.moves(transition, inside)) return
          expect(LayoutTransition.touches(transition, SortKey.lowerBound(start), SortKey.upperBound(end))).toBe(true)
        }),
        params
      )
      expect(LayoutTransition.touches(transition, SortKey.lowerBound("/nodes/"), SortKey.upperBound("/nodes/zz")))
        .toBe(false)
      expect(LayoutTransition.touches(transition, SortKey.lowerBound("/a"), SortKey.upperBound("/z"))).toBe(true)
    })
  })

  describe("opening a store", () => {
    it("opens the recorded layout as it is and refuses another, naming both", () => {
      expect(LayoutTransition.opening({ layout: before }, before, undefined)).toEqual({
        _tag: "Settled",
        record: false
      })
      const refused = LayoutTransition.opening({ layout: before }, after, undefined)
      expect(refused._tag).toBe("Refused")
      expect(refused._tag === "Refused" && refused.reason).toContain("partition-migrate")
    })

    it("records a first layout only when no key is stored under its prefixes", () => {
      expect(LayoutTransition.opening(undefined, [], "/hot/")).toEqual({ _tag: "Settled", record: false })
      expect(LayoutTransition.opening(undefined, after, undefined)).toEqual({ _tag: "Settled", record: true })
      expect(LayoutTransition.opening(undefined, after, "/hot/")).toMatchObject({
        _tag: "Refused",
        reason: expect.stringContaining("already holds keys under /hot/")
      })
    })

    it("serves the layout a recorded migration moves to, and refuses the old one and any other", () => {
      const recorded = { layout: before, to: after }
      expect(LayoutTransition.opening(recorded, after, undefined)).toEqual({ _tag: "Migrating", from: before })
      const old = LayoutTransition.opening(recorded, before, undefined)
      expect(old._tag === "Refused" && old.reason).toContain("only stores with the new layout")
      expect(LayoutTransition.opening(recorded, [], undefined)._tag).toBe("Refused")
      // Layouts compare canonically: order and spelled-out buckets do not matter.
      expect(LayoutTransition.opening(recorded, [...after].reverse(), undefined)._tag).toBe("Migrating")
    })
  })

  describe("beginning a migration", () => {
    it("records a transition from the recorded layout, or from one partition when none is recorded", () => {
      expect(LayoutTransition.beginning({ layout: before }, after)).toEqual({
        _tag: "Begin",
        from: before,
        record: true
      })
      expect(LayoutTransition.beginning(undefined, after)).toEqual({ _tag: "Begin", from: [], record: true })
      expect(LayoutTransition.beginning(undefined, [])).toEqual({ _tag: "Settled" })
      expect(LayoutTransition.beginning({ layout: after }, after)).toEqual({ _tag: "Settled" })
    })

    it("resumes a recorded transition to the same layout and refuses one to another", () => {
      expect(LayoutTransition.beginning({ layout: before, to: after }, after))
        .toEqual({ _tag: "Begin", from: before, record: false })
      const other = LayoutTransition.beginning({ layout: before, to: after }, [])
      expect(other._tag === "Refused" && other.reason).toContain("under way")
    })
  })
})
