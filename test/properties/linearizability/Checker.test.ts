import { describe, expect, it } from "vitest"
import { formatResult } from "./format.ts"
import type { KvCondition, KvInput, KvOutput } from "./KvModel.ts"
import { Kv, kvModel, partitionByKey } from "./KvModel.ts"
import type { Row } from "./testing.ts"
import { expectLinearizable, expectViolation, history } from "./testing.ts"

const kv = (...rows: ReadonlyArray<Row<KvInput, KvOutput>>) => history(...rows)

describe("KvModel: linearizable histories", () => {
  it("accepts a sequential history exercising every operation", () => {
    expectLinearizable(
      kvModel,
      kv(
        ["p", 0, 1, Kv.get("k"), Kv.err("NotFound")],
        ["p", 2, 3, Kv.update("k", "a"), Kv.err("NotFound")],
        ["p", 4, 5, Kv.create("k", "a"), Kv.ok("r1")],
        ["p", 6, 7, Kv.create("k", "b"), Kv.err("AlreadyExists")],
        ["p", 8, 9, Kv.get("k"), Kv.found("a", "r1")],
        ["p", 10, 11, Kv.put("k", "b"), Kv.ok("r2")],
        ["p", 12, 13, Kv.update("k", "c"), Kv.ok("r3")],
        ["p", 14, 15, Kv.cas("k", "zzz", "d"), Kv.err("CompareFailed")],
        ["p", 16, 17, Kv.cas("k", "c", "d"), Kv.ok("r4")],
        ["p", 18, 19, Kv.conditionalUpdate("k", "r3", "e"), Kv.err("IncorrectRevision")],
        ["p", 20, 21, Kv.conditionalUpdate("k", "r4", "e"), Kv.ok("r5")],
        ["p", 22, 23, Kv.get("k"), Kv.found("e", "r5")],
        ["p", 24, 25, Kv.conditionalDelete("k", "r4"), Kv.err("IncorrectRevision")],
        ["p", 26, 27, Kv.conditionalDelete("k", "r5"), Kv.ok()],
        ["p", 28, 29, Kv.delete("k"), Kv.err("NotFound")],
        ["p", 30, 31, Kv.cas("k", "e", "f"), Kv.err("NotFound")],
        ["p", 32, 33, Kv.put("k", "g"), Kv.ok("r6")],
        ["p", 34, 35, Kv.delete("k"), Kv.ok()],
        ["p", 36, 37, Kv.get("k"), Kv.err("NotFound")]
      )
    )
  })

  it("accepts overlapping writes read in either order", () => {
    const writes: ReadonlyArray<Row<KvInput, KvOutput>> = [
      ["p1", 0, 10, Kv.put("k", "a"), Kv.ok("r1")],
      ["p2", 1, 11, Kv.put("k", "b"), Kv.ok("r2")]
    ]
    expectLinearizable(kvModel, kv(...writes, ["p3", 12, 13, Kv.get("k"), Kv.found("a", "r1")]))
    expectLinearizable(kvModel, kv(...writes, ["p3", 12, 13, Kv.get("k"), Kv.found("b", "r2")]))
    // Reads concurrent with both writes may see either value, or none yet.
    expectLinearizable(
      kvModel,
      kv(...writes, ["p3", 2, 5, Kv.get("k"), Kv.err("NotFound")], ["p3", 6, 9, Kv.get("k"), Kv.found("b", "r2")])
    )
    // ...but once a read saw b then a, a later read cannot go back to b.
    expectViolation(
      kvModel,
      kv(...writes, ["p3", 12, 13, Kv.get("k"), Kv.found("a", "r1")], ["p3", 14, 15, Kv.get("k"), Kv.found("b", "r2")])
    )
  })

  it("accepts concurrent CAS with exactly one winner", () => {
    expectLinearizable(
      kvModel,
      kv(
        ["p0", 0, 1, Kv.put("k", "0"), Kv.ok("r1")],
        ["p1", 2, 10, Kv.cas("k", "0", "A"), Kv.err("CompareFailed")],
        ["p2", 3, 9, Kv.cas("k", "0", "B"), Kv.ok("r2")],
        ["p3", 4, 8, Kv.cas("k", "0", "C"), Kv.err("CompareFailed")],
        ["p0", 11, 12, Kv.get("k"), Kv.found("B", "r2")]
      )
    )
  })

  it("accepts pending ops whether or not they took effect", () => {
    const prefix: ReadonlyArray<Row<KvInput, KvOutput>> = [
      ["p1", 0, 1, Kv.put("k", "a"), Kv.ok("r1")],
      ["p2", 2, "pending", Kv.put("k", "b")]
    ]
    // Took effect: its revision is unknown until a read reveals it.
    expectLinearizable(
      kvModel,
      kv(...prefix, ["p1", 3, 4, Kv.get("k"), Kv.found("b", "rX")], ["p1", 5, 6, Kv.get("k"), Kv.found("b", "rX")])
    )
    // Never took effect.
    expectLinearizable(kvModel, kv(...prefix, ["p1", 3, 4, Kv.get("k"), Kv.found("a", "r1")]))
    // Took effect late, long after the call.
    expectLinearizable(
      kvModel,
      kv(...prefix, ["p1", 3, 4, Kv.get("k"), Kv.found("a", "r1")], ["p1", 50, 51, Kv.get("k"), Kv.found("b", "rX")])
    )
    // A revealed revision is pinned: the same write cannot show another one later.
    expectViolation(
      kvModel,
      kv(...prefix, ["p1", 3, 4, Kv.get("k"), Kv.found("b", "rX")], ["p1", 5, 6, Kv.get("k"), Kv.found("b", "rY")])
    )
    // A conditional write against the unknown revision is judged by its outcome.
    expectLinearizable(
      kvModel,
      kv(...prefix, ["p1", 3, 4, Kv.conditionalUpdate("k", "rX", "c"), Kv.ok("r3")], [
        "p1",
        5,
        6,
        Kv.get("k"),
        Kv.found("c", "r3")
      ])
    )
  })

  it("accepts atomic writes across two keys", () => {
    expectLinearizable(
      kvModel,
      kv(
        ["p0", 0, 1, Kv.put("x", "1"), Kv.ok("r1")],
        ["p0", 2, 3, Kv.put("y", "1"), Kv.ok("r2")],
        [
          "p1",
          4,
          20,
          Kv.atomic(
            { key: "x", condition: { _tag: "Revision", revision: "r1" }, action: { _tag: "Put", value: "2" } },
            { key: "y", condition: { _tag: "Exists" }, action: { _tag: "Put", value: "2" } }
          ),
          Kv.ok("r3")
        ],
        ["p2", 5, 6, Kv.get("x"), Kv.found("1", "r1")],
        ["p2", 7, 8, Kv.get("y"), Kv.found("1", "r2")],
        ["p2", 9, 10, Kv.get("x"), Kv.found("2", "r3")],
        ["p2", 11, 12, Kv.get("y"), Kv.found("2", "r3")],
        [
          "p3",
          21,
          22,
          Kv.atomic(
            { key: "x", condition: { _tag: "Revision", revision: "r1" }, action: { _tag: "Delete" } },
            { key: "z", condition: { _tag: "NotExists" }, action: { _tag: "Put", value: "9" } }
          ),
          Kv.err("ConditionFailed")
        ],
        [
          "p3",
          23,
          24,
          Kv.atomic(
            { key: "x", condition: { _tag: "Revision", revision: "r3" }, action: { _tag: "Nop" } },
            { key: "y", condition: { _tag: "Whatever" }, action: { _tag: "Delete" } }
          ),
          Kv.ok("r4")
        ],
        ["p3", 25, 26, Kv.get("y"), Kv.err("NotFound")],
        ["p3", 27, 28, Kv.get("z"), Kv.err("NotFound")]
      )
    )
  })
})

describe("KvModel: non-linearizable histories", () => {
  it("rejects a stale read after a completed write, and explains it", () => {
    const h = kv(
      ["p1", 0, 1, Kv.put("k", "a"), Kv.ok("r1")],
      ["p2", 2, 3, Kv.put("k", "b"), Kv.ok("r2")],
      ["p0", 4, 5, Kv.put("other", "z"), Kv.ok("r3")],
      ["p1", 6, 7, Kv.get("k"), Kv.found("a", "r1")],
      ["p1", 8, 9, Kv.get("k"), Kv.found("a", "r1")]
    )
    const result = expectViolation(kvModel, h)
    expect(result.partition.map((op) => op.id)).toEqual([0, 1, 3, 4])
    expect(result.culprits.map((op) => op.id)).toEqual([3])
    expect(result.minimalPrefix.map((op) => op.id)).toEqual([0, 1, 3])
    expect([...result.essential].sort()).toEqual([0, 1, 3])
    const report = formatResult(kvModel, h, result)
    expect(report).toContain(`! p1  [6, 7]  #3  Get(k) → Ok("a" @r1)`)
    expect(report).toContain(`  p0  [4, 5]  #2  Put(other, "z") → Ok(@r3)`)
    expect(report).toContain(`* p1  [8, 9]  #4`)
  })

  it("rejects a stale revision even when the value is the same", () => {
    expectViolation(
      kvModel,
      kv(
        ["p1", 0, 1, Kv.put("k", "a"), Kv.ok("r1")],
        ["p1", 2, 3, Kv.put("k", "a"), Kv.ok("r2")],
        ["p2", 4, 5, Kv.get("k"), Kv.found("a", "r1")]
      )
    )
  })

  it("rejects two CAS winners on the same expected value", () => {
    expectViolation(
      kvModel,
      kv(
        ["p0", 0, 1, Kv.put("k", "0"), Kv.ok("r1")],
        ["p1", 2, 10, Kv.cas("k", "0", "A"), Kv.ok("r2")],
        ["p2", 3, 9, Kv.cas("k", "0", "B"), Kv.ok("r3")]
      )
    )
  })

  it("rejects a read of a value never written", () => {
    expectViolation(
      kvModel,
      kv(
        ["p1", 0, 10, Kv.put("k", "a"), Kv.ok("r1")],
        ["p2", 1, 2, Kv.get("k"), Kv.found("ghost", "r9")]
      )
    )
  })

  it("rejects a Get that sees a write which started after the Get returned", () => {
    expectViolation(
      kvModel,
      kv(
        ["p1", 0, 1, Kv.get("k"), Kv.found("a", "r1")],
        ["p2", 2, 3, Kv.put("k", "a"), Kv.ok("r1")]
      )
    )
  })

  it("rejects an atomic write observed half-applied", () => {
    const h = kv(
      ["p0", 0, 1, Kv.put("x", "1"), Kv.ok("r1")],
      ["p0", 2, 3, Kv.put("y", "1"), Kv.ok("r2")],
      [
        "p1",
        4,
        20,
        Kv.atomic(
          { key: "x", condition: { _tag: "Whatever" }, action: { _tag: "Put", value: "2" } },
          { key: "y", condition: { _tag: "Whatever" }, action: { _tag: "Put", value: "2" } }
        ),
        Kv.ok("r3")
      ],
      ["p2", 5, 6, Kv.get("x"), Kv.found("2", "r3")],
      ["p2", 7, 8, Kv.get("y"), Kv.found("1", "r2")]
    )
    expect(partitionByKey(h)).toHaveLength(1)
    expectViolation(kvModel, h)
  })

  it("rejects a lost acknowledged write", () => {
    expectViolation(
      kvModel,
      kv(
        ["p1", 0, 1, Kv.create("k", "a"), Kv.ok("r1")],
        ["p2", 2, 3, Kv.get("k"), Kv.err("NotFound")]
      )
    )
  })

  it("rejects an error the operation could not have produced in any order", () => {
    const existing: Row<KvInput, KvOutput> = ["p0", 0, 1, Kv.put("k", "a"), Kv.ok("r1")]
    expectViolation(kvModel, kv(existing, ["p1", 2, 3, Kv.create("k", "b"), Kv.err("NotFound")]))
    expectViolation(kvModel, kv(existing, ["p1", 2, 3, Kv.cas("k", "zzz", "b"), Kv.err("NotFound")]))
    expectViolation(kvModel, kv(existing, ["p1", 2, 3, Kv.conditionalUpdate("k", "r0", "b"), Kv.err("CompareFailed")]))
    expectViolation(kvModel, kv(["p1", 2, 3, Kv.update("k", "b"), Kv.err("IncorrectRevision")]))
  })

  it("rejects atomic writes that ignore their conditions", () => {
    const existing: Row<KvInput, KvOutput> = ["p0", 0, 1, Kv.put("x", "1"), Kv.ok("r1")]
    const write = (condition: KvCondition) =>
      Kv.atomic({ key: "x", condition, action: { _tag: "Put", value: "2" } }, {
        key: "y",
        condition: { _tag: "Whatever" },
        action: { _tag: "Nop" }
      })
    expectViolation(kvModel, kv(existing, ["p1", 2, 3, write({ _tag: "NotExists" }), Kv.ok("r2")]))
    expectViolation(kvModel, kv(existing, ["p1", 2, 3, write({ _tag: "Revision", revision: "r0" }), Kv.ok("r2")]))
    expectViolation(kvModel, kv(existing, ["p1", 2, 3, write({ _tag: "Exists" }), Kv.err("ConditionFailed")]))
    expectViolation(
      kvModel,
      kv(existing, ["p1", 2, 3, write({ _tag: "Revision", revision: "r1" }), Kv.err("ConditionFailed")])
    )
  })

  it("rejects a revision handed out twice", () => {
    expectViolation(
      kvModel,
      kv(
        ["p1", 0, 1, Kv.put("k", "a"), Kv.ok("r1")],
        ["p1", 2, 3, Kv.put("k", "b"), Kv.ok("r1")]
      )
    )
  })
})
