import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as LayoutLease from "../../src/domain/LayoutLease.ts"
import type { Layout } from "../../src/domain/Partitioning.ts"
import { localMargins } from "../../src/domain/WriteFence.ts"

const params = { seed: 20261203, numRuns: 300 }
const a: Layout = [{ prefix: "/hot/", name: "hot" }]
const b: Layout = [{ prefix: "/hot/", name: "hot", buckets: 4 }]

describe("LayoutLease", () => {
  it("serves only while the layout was confirmed less than a lease ago, and never once superseded", () => {
    fc.assert(
      fc.property(fc.nat(1e12), fc.nat(120_000), fc.integer({ min: 1, max: 60_000 }), (confirmedAt, age, lease) => {
        const standing = LayoutLease.standing({ confirmedAt }, confirmedAt + age, lease)
        expect(standing._tag).toBe(age < lease ? "Serving" : "Lapsed")
        if (standing._tag === "Lapsed") expect(standing.sinceMillis).toBe(age)
        const superseded = LayoutLease.standing({ confirmedAt, superseded: "x" }, confirmedAt + age, lease)
        expect(superseded).toEqual({ _tag: "Superseded", recorded: "x" })
      }),
      params
    )
    expect(LayoutLease.standing({ confirmedAt: 1_000 }, 1_999, 1_000)._tag).toBe("Serving")
    expect(LayoutLease.standing({ confirmedAt: 1_000 }, 2_000, 1_000)._tag).toBe("Lapsed")
  })

  it("re-reads the record three times per lease", () => {
    expect(LayoutLease.refreshMillis(30_000)).toBe(10_000)
    expect(LayoutLease.refreshMillis(1)).toBe(1)
  })

  it("allows a running store's layout exactly where a store with it could open now", () => {
    // Settled on the store's layout, or migrating to it (a store in migrating mode whose migration finished too).
    expect(LayoutLease.allows({ layout: a }, a)).toBe(true)
    expect(LayoutLease.allows({ layout: a, to: b }, b)).toBe(true)
    expect(LayoutLease.allows({ layout: b }, b)).toBe(true)
    // A migration away from the store's layout began, or the namespace settled on another one.
    expect(LayoutLease.allows({ layout: a, to: b }, a)).toBe(false)
    expect(LayoutLease.allows({ layout: b }, a)).toBe(false)
    expect(LayoutLease.allows({ layout: [], to: a }, [])).toBe(false)
    expect(LayoutLease.allows({ layout: b, to: [] }, b)).toBe(false)
    // No record: only the store without a layout (a record never goes away on its own).
    expect(LayoutLease.allows(undefined, [])).toBe(true)
    expect(LayoutLease.allows(undefined, a)).toBe(false)
    expect(LayoutLease.describeRecord({ layout: [], to: a })).toBe(
      "migrating from [none (one partition)] to [/hot/ → hot]"
    )
  })

  it("moves no key before every stale process lost its lease and what it sent has landed", () => {
    // 30 s lease + 30 s write timeout + 2 × 5 min late delivery + 1 min skew on AWS.
    expect(LayoutLease.defaultLease).toEqual({ leaseMillis: 30_000, drainMillis: 720_000 })
    expect(LayoutLease.movesFrom(1_000, LayoutLease.make(1_000, { writeTimeoutMillis: 2_000 }, localMargins)))
      .toBe(4_000)
    fc.assert(
      fc.property(
        fc.nat(1e12),
        fc.integer({ min: 1, max: 120_000 }),
        fc.integer({ min: 1, max: 60_000 }),
        fc.nat(600_000),
        fc.nat(120_000),
        fc.nat(1_000_000),
        (begin, lease, timeout, late, skew, lastConfirmation) => {
          const margins = { lateDeliveryMillis: late, skewMillis: skew }
          // The stale process's last confirming read was applied before the change, itself applied by begin + late.
          const confirmedAt = Math.min(begin + late + skew, lastConfirmation)
          // Its last request is sent before its lease lapses, retried within the write timeout, applied late.
          const lastLanding = confirmedAt + lease + timeout + late
          expect(LayoutLease.movesFrom(begin, LayoutLease.make(lease, { writeTimeoutMillis: timeout }, margins)))
            .toBeGreaterThanOrEqual(lastLanding)
        }
      ),
      params
    )
  })
})
