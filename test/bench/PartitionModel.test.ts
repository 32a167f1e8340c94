import { describe, expect, it } from "@effect/vitest"
import { ceiling, documentedLimits, loadsOf, replay } from "../../bench/simulation/PartitionModel.ts"
import type { Kind, Touch, TracedRequest } from "../../bench/simulation/Touches.ts"

const touch = (pk: string, kind: Kind, units: number, table = "events"): Touch => ({
  table,
  pk,
  key: { _tag: "None" },
  kind,
  units,
  consistent: false
})
const request = (at: number, ...touches: Array<Touch>): TracedRequest => ({ at, operation: "PutItem", touches })

/** `operations` puts, one every `gap` ms: each writes 1 unit live, then 1 unit history and 1 unit live again. */
const putTrace = (operations: number, gap = 1): Array<TracedRequest> =>
  Array.from({ length: operations }, (_, i) => [
    request(i * gap, touch("ns", "write", 1)),
    request(i * gap + 0.5, touch("ns\u0000history", "write", 1), touch("ns", "write", 1))
  ]).flat()

describe("the documented limits", () => {
  it("are 1,000 write units and 3,000 read units a second per partition", () => {
    expect(documentedLimits).toEqual({ writeUnitsPerSecond: 1000, readUnitsPerSecond: 3000 })
  })
})

describe("ceiling", () => {
  it("is the rate at which the busiest partition-key value reaches its limit, and names it", () => {
    const result = ceiling(putTrace(100), 100)
    // The live value takes 2 WCU per put: 1000 / 2.
    expect(result.operationsPerSecond).toBe(500)
    expect(result.bottleneck).toEqual({
      table: "events",
      pk: "ns",
      kind: "write",
      unitsPerOperation: 2,
      share: 2 / 3
    })
    expect(result.writeUnitsPerSecond).toBe(1500)
    expect(result.writeUnitsPerOperation).toBe(3)
    expect(result.partitions).toBe(2)
  })

  it("judges reads and writes against their own limits", () => {
    // 4 RCU and 1 WCU per operation on one value: reads allow 750/s, writes 1000/s.
    const reads = [request(0, touch("ns", "read", 4), touch("ns", "write", 1))]
    const result = ceiling(reads, 1)
    expect(result.operationsPerSecond).toBe(750)
    expect(result.bottleneck?.kind).toBe("read")
    expect(result.readUnitsPerSecond).toBe(3000)
    expect(result.writeUnitsPerSecond).toBe(750)
  })

  it("grows with the number of values the same units are spread over", () => {
    const spread = (values: number) =>
      Array.from({ length: 1000 }, (_, i) => request(i, touch(`ns#${i % values}`, "write", 1)))
    expect(ceiling(spread(1), 1000).operationsPerSecond).toBe(1000)
    expect(ceiling(spread(10), 1000).operationsPerSecond).toBe(10_000)
    expect(ceiling(spread(10), 1000).bottleneck?.share).toBeCloseTo(0.1, 10)
  })

  it("is unbounded for a trace that consumed nothing, and refuses a count of no operations", () => {
    expect(ceiling([], 5).operationsPerSecond).toBe(Infinity)
    expect(ceiling([], 5).bottleneck).toBeUndefined()
    expect(() => ceiling(putTrace(1), 0)).toThrow(RangeError)
  })

  it("adds every request's units up per value", () => {
    const loads = loadsOf([...putTrace(3), request(9, touch("ns", "read", 0.5))])
    expect(loads).toEqual([
      { table: "events", pk: "ns", readUnits: 0.5, writeUnits: 6 },
      { table: "events", pk: "ns\u0000history", readUnits: 0, writeUnits: 3 }
    ])
  })
})

describe("replay", () => {
  const trace = putTrace(1000)

  it("throttles nothing of a smooth pattern below its ceiling", () => {
    const result = replay(trace, { operations: 1000, offeredOperationsPerSecond: 450, seconds: 20 })
    expect(result.throttledWriteShare).toBe(0)
    expect(result.throttledSteps).toBe(0)
    expect(result.worst).toBeUndefined()
    expect(result.steps).toBe(20)
  })

  it("throttles what exceeds the bottleneck's limit above it", () => {
    // At 1000/s the live value is offered 2000 WCU/s and takes 1000: 1000 of the 3000 WCU offered are throttled.
    const result = replay(trace, { operations: 1000, offeredOperationsPerSecond: 1000, seconds: 20 })
    expect(result.throttledWriteShare).toBeCloseTo(1 / 3, 2)
    expect(result.throttledSteps).toBe(20)
    expect(result.worst).toEqual({ table: "events", pk: "ns", kind: "write" })
  })

  it("throttles a bursty pattern even below its steady-state ceiling", () => {
    // All 1000 puts in the first tenth of the trace's time, then a long quiet tail.
    const bursty = [
      ...Array.from({ length: 1000 }, (_, i) => request(i * 0.1, touch("ns", "write", 1))),
      request(1000, touch("ns", "read", 0.5))
    ]
    expect(ceiling(bursty, 1000).operationsPerSecond).toBe(1000)
    const result = replay(bursty, { operations: 1000, offeredOperationsPerSecond: 500, seconds: 20, stepMillis: 100 })
    expect(result.throttledWriteShare).toBeGreaterThan(0.5)
    expect(result.throttledReadShare).toBe(0)
  })
})
