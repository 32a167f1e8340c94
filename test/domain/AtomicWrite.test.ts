import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import * as AtomicWrite from "../../src/domain/AtomicWrite.ts"
import type { Condition, ConditionalAction } from "../../src/domain/AtomicWrite.ts"
import { BadParameter } from "../../src/domain/Errors.ts"
import type { Item } from "../../src/domain/Item.ts"
import * as Key from "../../src/domain/Key.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261125), numRuns: Number(process.env.FC_RUNS ?? 200) }

const { Action } = AtomicWrite
const value = new Uint8Array([1, 2, 3])
const entry = (
  key: string,
  condition: Condition = AtomicWrite.Condition.whatever,
  action = Action.put(value)
): ConditionalAction => ({
  key,
  condition,
  action
})
const entries = (n: number): Array<ConditionalAction> => Array.from({ length: n }, (_, i) => entry(`/k/${i}`))

const failureOf = (result: Result.Result<ReadonlyArray<ConditionalAction>, BadParameter>): BadParameter => {
  if (Result.isSuccess(result)) throw new Error("expected validate to fail")
  expect(result.failure).toBeInstanceOf(BadParameter)
  expect(result.failure._tag).toBe("BadParameter")
  return result.failure
}

describe("AtomicWrite constructors", () => {
  it("build the tagged conditions and actions", () => {
    expect(AtomicWrite.Condition.whatever).toEqual({ _tag: "Whatever" })
    expect(AtomicWrite.Condition.exists).toEqual({ _tag: "Exists" })
    expect(AtomicWrite.Condition.notExists).toEqual({ _tag: "NotExists" })
    expect(AtomicWrite.Condition.revision("r1")).toEqual({ _tag: "Revision", revision: "r1" })
    expect(Action.put(value)).toEqual({ _tag: "Put", value, expires: undefined })
    expect(Action.put(value, 42)).toEqual({ _tag: "Put", value, expires: 42 })
    expect(Action.delete).toEqual({ _tag: "Delete" })
    expect(Action.nop).toEqual({ _tag: "Nop" })
  })

  it("describe names conditions for error messages", () => {
    expect(AtomicWrite.describe(AtomicWrite.Condition.whatever)).toBe("Whatever")
    expect(AtomicWrite.describe(AtomicWrite.Condition.exists)).toBe("Exists")
    expect(AtomicWrite.describe(AtomicWrite.Condition.notExists)).toBe("NotExists")
    expect(AtomicWrite.describe(AtomicWrite.Condition.revision("abc"))).toBe("Revision(abc)")
  })
})

describe("AtomicWrite.validate", () => {
  it("rejects an empty write", () => {
    const error = failureOf(AtomicWrite.validate([]))
    expect(error.field).toBe("actions")
    expect(error.reason).toContain("got 0")
  })

  it("accepts 1 and exactly 64 entries, returning them unchanged", () => {
    expect(AtomicWrite.maxEntries).toBe(64)
    for (const n of [1, 2, 64]) {
      const actions = entries(n)
      const result = AtomicWrite.validate(actions)
      expect(Result.isSuccess(result)).toBe(true)
      expect(Result.getOrThrow(result)).toBe(actions)
    }
  })

  it("rejects 65 entries", () => {
    const error = failureOf(AtomicWrite.validate(entries(65)))
    expect(error.field).toBe("actions")
    expect(error.reason).toContain("1 to 64")
    expect(error.reason).toContain("got 65")
  })

  it("rejects a duplicate key, naming the second occurrence", () => {
    const error = failureOf(
      AtomicWrite.validate([entry("/a"), entry("/b"), entry("/a", AtomicWrite.Condition.exists, Action.delete)])
    )
    expect(error.field).toBe("actions[2].key")
    expect(error.reason).toContain("duplicate key /a")
  })

  it("treats keys that differ only in normalization or case as distinct", () => {
    const result = AtomicWrite.validate([entry("/é"), entry("/e\u0301"), entry("/A"), entry("/a")])
    expect(Result.isSuccess(result)).toBe(true)
  })

  it("rejects a bad key with the entry's index in the field", () => {
    const tooLong = "x".repeat(Key.maxKeyBytes + 1)
    for (
      const [bad, reason] of [["", /non-empty/], ["/a\u0000", /NUL/], ["/a\ud800", /lone surrogate/], [
        tooLong,
        /at most 1015/
      ]] as const
    ) {
      const error = failureOf(AtomicWrite.validate([entry("/ok"), entry("/ok2"), entry(bad)]))
      expect(error.field).toBe("actions[2].key")
      expect(error.reason).toMatch(reason)
    }
  })

  it("accepts a key of exactly maxKeyBytes", () => {
    expect(Result.isSuccess(AtomicWrite.validate([entry("€".repeat(338) + "a")]))).toBe(true)
  })

  it("rejects an empty revision condition, naming the entry's condition", () => {
    const error = failureOf(AtomicWrite.validate([entry("/a"), entry("/b", AtomicWrite.Condition.revision(""))]))
    expect(error.field).toBe("actions[1].condition")
    expect(error.reason).toMatch(/revision/)
    expect(Result.isSuccess(AtomicWrite.validate([entry("/b", AtomicWrite.Condition.revision("r1"))]))).toBe(true)
  })

  it("rejects a write where every action is Nop", () => {
    for (const n of [1, 3, 64]) {
      const actions = Array.from({ length: n }, (_, i) => entry(`/k/${i}`, AtomicWrite.Condition.exists, Action.nop))
      const error = failureOf(AtomicWrite.validate(actions))
      expect(error.field).toBe("actions")
      expect(error.reason).toMatch(/Put or Delete/)
    }
  })

  it("accepts Nop entries (pure conditions) next to one Put or Delete", () => {
    for (const action of [Action.delete, Action.put(value, 1)]) {
      const actions = [
        entry("/a", AtomicWrite.Condition.revision("r1"), Action.nop),
        entry("/b", AtomicWrite.Condition.notExists, action)
      ]
      expect(Result.isSuccess(AtomicWrite.validate(actions))).toBe(true)
    }
  })

  it("accepts exactly the writes a straightforward oracle accepts (property)", () => {
    const condition = fc.oneof(
      fc.constant(AtomicWrite.Condition.whatever),
      fc.constant(AtomicWrite.Condition.exists),
      fc.constant(AtomicWrite.Condition.notExists),
      fc.constantFrom("", "r1").map(AtomicWrite.Condition.revision)
    )
    const action = fc.constantFrom(Action.nop, Action.delete, Action.put(value))
    const key = fc.constantFrom("", "/a", "/b", "/c", "/d\u0000", "/e", "/f", "/g", "/h", "/i")
    fc.assert(
      fc.property(fc.array(fc.record({ key, condition, action }), { maxLength: 8 }), (actions) => {
        const keys = actions.map((a) => a.key)
        const ok = actions.length >= 1 &&
          actions.length <= 64 &&
          keys.every((k) => k !== "" && !k.includes("\u0000")) &&
          new Set(keys).size === keys.length &&
          actions.every((a) => a.condition._tag !== "Revision" || a.condition.revision !== "") &&
          actions.some((a) => a.action._tag !== "Nop")
        expect(Result.isSuccess(AtomicWrite.validate(actions))).toBe(ok)
      }),
      params
    )
  })
})

describe("AtomicWrite.holds", () => {
  const live: Item = { key: "/a", value, revision: "r1" }
  const table: ReadonlyArray<readonly [Condition, boolean, boolean]> = [
    // condition, holds for the live item, holds when absent
    [AtomicWrite.Condition.whatever, true, true],
    [AtomicWrite.Condition.exists, true, false],
    [AtomicWrite.Condition.notExists, false, true],
    [AtomicWrite.Condition.revision("r1"), true, false],
    [AtomicWrite.Condition.revision("r2"), false, false],
    [AtomicWrite.Condition.revision(""), false, false]
  ]
  for (const [condition, whenLive, whenAbsent] of table) {
    it(`${AtomicWrite.describe(condition)}: live → ${whenLive}, absent → ${whenAbsent}`, () => {
      expect(AtomicWrite.holds(condition, live)).toBe(whenLive)
      expect(AtomicWrite.holds(condition, undefined)).toBe(whenAbsent)
    })
  }

  it("a revision condition compares against the item's revision, not its value or expiry", () => {
    const other: Item = { ...live, value: new Uint8Array(0), expires: 5 }
    expect(AtomicWrite.holds(AtomicWrite.Condition.revision("r1"), other)).toBe(true)
    expect(AtomicWrite.holds(AtomicWrite.Condition.revision("R1"), live)).toBe(false)
  })
})
