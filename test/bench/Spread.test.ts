import { describe, expect, it } from "@effect/vitest"
import type { Load } from "../../bench/simulation/PartitionModel.ts"
import { loadsOf } from "../../bench/simulation/PartitionModel.ts"
import { inArea, spreadOf } from "../../bench/simulation/Spread.ts"
import type { Touch, TracedRequest } from "../../bench/simulation/Touches.ts"

const load = (pk: string, writeUnits: number, readUnits = 0): Load => ({ table: "events", pk, writeUnits, readUnits })

describe("inArea", () => {
  it("accepts the area beside any live partition, and nothing else", () => {
    const chunks = inArea("chunks")
    expect(chunks(load("ns\u0000chunks", 1))).toBe(true)
    expect(chunks(load("ns\u0000@nodes.3\u0000chunks", 1))).toBe(true)
    expect(chunks(load("ns", 1))).toBe(false)
    expect(chunks(load("ns\u0000@nodes.3\u0000history", 1))).toBe(false)
    // A name that merely ends in the word is not the area.
    expect(chunks(load("ns\u0000@chunks", 1))).toBe(false)
  })
})

describe("spreadOf", () => {
  it("counts the values that carried units and the busiest one's share", () => {
    const loads = [
      load("ns\u0000@nodes.0\u0000chunks", 300),
      load("ns\u0000@nodes.1\u0000chunks", 100),
      load("ns\u0000@nodes.2\u0000chunks", 0, 50),
      load("ns\u0000@nodes.0", 900)
    ]
    expect(spreadOf(loads, inArea("chunks"), "write")).toEqual({ partitions: 2, units: 400, busiestShare: 0.75 })
    expect(spreadOf(loads, inArea("chunks"), "read")).toEqual({ partitions: 1, units: 50, busiestShare: 1 })
  })

  it("is empty, not NaN, when nothing matches", () => {
    expect(spreadOf([load("ns", 5)], inArea("chunks"), "write")).toEqual({ partitions: 0, units: 0, busiestShare: 0 })
  })

  it("reads one value holding every chunk as a share of 1, from a trace", () => {
    const touch = (pk: string, units: number): Touch => ({
      table: "events",
      pk,
      key: { _tag: "Key", key: "/nodes/a" },
      kind: "write",
      units,
      consistent: false
    })
    const requests: Array<TracedRequest> = [
      { at: 0, operation: "BatchWriteItem", touches: [touch("ns\u0000chunks", 400), touch("ns\u0000chunks", 400)] },
      { at: 1, operation: "PutItem", touches: [touch("ns", 2)] }
    ]
    expect(spreadOf(loadsOf(requests), inArea("chunks"), "write")).toEqual({
      partitions: 1,
      units: 800,
      busiestShare: 1
    })
  })
})
