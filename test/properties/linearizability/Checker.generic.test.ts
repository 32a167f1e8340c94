import { describe, expect, it } from "vitest"
import { checkLinearizable } from "./Checker.ts"
import { completed } from "./History.ts"
import type { Model } from "./Model.ts"
import type { Row } from "./testing.ts"
import { expectLinearizable, expectViolation, history } from "./testing.ts"

type RegisterInput = { readonly op: "write"; readonly value: number } | { readonly op: "read" }

/** A single integer register starting at 0, as in Porcupine's and Knossos' examples. */
const register: Model<number, RegisterInput, number | undefined> = {
  init: () => 0,
  step: (s, i, o) => (i.op === "write" ? { ok: true, next: i.value } : { ok: o === undefined || o === s, next: s }),
  hash: String,
  equal: (a, b) => a === b,
  describe: (i, o) => (i.op === "write" ? `write(${i.value})` : `read() → ${o ?? "?"}`)
}

type QueueInput = { readonly op: "enq"; readonly value: string } | { readonly op: "deq" }

/** A FIFO queue, the running example of Herlihy & Wing's linearizability paper. */
const queue: Model<ReadonlyArray<string>, QueueInput, string | undefined> = {
  init: () => [],
  step: (s, i, o) => {
    if (i.op === "enq") return { ok: true, next: [...s, i.value] }
    // Deq on an empty queue blocks in the paper; here it simply cannot be linearized.
    return { ok: s.length > 0 && (o === undefined || o === s[0]), next: s.slice(1) }
  },
  hash: (s) => JSON.stringify(s),
  equal: (a, b) => JSON.stringify(a) === JSON.stringify(b),
  describe: (i, o) => (i.op === "enq" ? `Enq(${i.value})` : `Deq() → ${o ?? "?"}`)
}

describe("literature sanity checks", () => {
  it("register: a read may see the old value while a write is in flight (Porcupine example 1)", () => {
    expectLinearizable(
      register,
      history<RegisterInput, number | undefined>(
        ["c0", 0, 100, { op: "write", value: 100 }, undefined],
        ["c1", 25, 75, { op: "read" }, 100],
        ["c2", 30, 60, { op: "read" }, 0]
      )
    )
  })

  it("register: once a read saw the new value, a later read cannot see the old one (Porcupine example 2)", () => {
    expectViolation(
      register,
      history<RegisterInput, number | undefined>(
        ["c0", 0, 100, { op: "write", value: 200 }, undefined],
        ["c1", 10, 30, { op: "read" }, 200],
        ["c2", 40, 90, { op: "read" }, 0]
      )
    )
  })

  it("queue: concurrent enqueues may take effect in either order", () => {
    expectLinearizable(
      queue,
      history<QueueInput, string | undefined>(
        ["A", 0, 4, { op: "enq", value: "x" }, undefined],
        ["B", 1, 3, { op: "enq", value: "y" }, undefined],
        ["A", 5, 6, { op: "deq" }, "y"],
        ["B", 7, 8, { op: "deq" }, "x"]
      )
    )
  })

  it("queue: sequential enqueues must dequeue in FIFO order, and only once", () => {
    expectViolation(
      queue,
      history<QueueInput, string | undefined>(
        ["A", 0, 1, { op: "enq", value: "x" }, undefined],
        ["B", 2, 3, { op: "enq", value: "y" }, undefined],
        ["A", 4, 5, { op: "deq" }, "y"]
      )
    )
    expectViolation(
      queue,
      history<QueueInput, string | undefined>(
        ["A", 0, 1, { op: "enq", value: "x" }, undefined],
        ["B", 2, 5, { op: "deq" }, "x"],
        ["C", 3, 4, { op: "deq" }, "x"]
      )
    )
  })
})

describe("checker mechanics", () => {
  it("refuses malformed histories", () => {
    expect(() => checkLinearizable(register, [completed(0, "p", 5, 5, { op: "read" } as RegisterInput, 0)])).toThrow(
      /call < return/
    )
    expect(() =>
      checkLinearizable(register, [
        completed(0, "p", 0, 1, { op: "read" } as RegisterInput, 0),
        completed(0, "p", 2, 3, { op: "read" } as RegisterInput, 0)
      ])
    ).toThrow(/duplicate/)
  })

  it("gives up with 'unknown' when the time budget runs out", () => {
    // 40 fully concurrent writes followed by an impossible read: the memo table
    // cannot collapse 2^40 subsets, so only the timeout can end the search.
    const writes: Array<Row<RegisterInput, number | undefined>> = Array.from(
      { length: 40 },
      (_, i) => [`w${i}`, i, 1000, { op: "write", value: i + 1 }, undefined]
    )
    const h = history<RegisterInput, number | undefined>(...writes, ["r", 1001, 1002, { op: "read" }, -1])
    const result = checkLinearizable(register, h, { timeoutMs: 50 })
    expect(result.ok).toBe("unknown")
  })
})
