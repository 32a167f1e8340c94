import * as fc from "fast-check"
import { describe, expect, it } from "vitest"
import { checkLinearizable } from "./Checker.ts"
import { formatResult } from "./format.ts"
import type { History, Operation } from "./History.ts"
import { completed, isPending, pending } from "./History.ts"
import type { KvAction, KvCondition, KvInput, KvOutput } from "./KvModel.ts"
import { Kv, kvModel } from "./KvModel.ts"

/**
 * A deliberately naive in-memory store implementing the contract directly, so
 * that generated histories are correct by construction (the model is not used
 * to produce them, only to check them).
 */
const makeReferenceStore = () => {
  const data = new Map<string, { value: string; revision: string }>()
  let counter = 0
  const issued: Array<string> = []
  const fresh = () => {
    const r = `r${++counter}`
    issued.push(r)
    return r
  }
  const write = (key: string, value: string): KvOutput => {
    const revision = fresh()
    data.set(key, { value, revision })
    return Kv.ok(revision)
  }
  const holds = (key: string, c: KvCondition): boolean => {
    const cur = data.get(key)
    if (c._tag === "Exists") return cur !== undefined
    if (c._tag === "NotExists") return cur === undefined
    if (c._tag === "Revision") return cur?.revision === c.revision
    return true
  }
  const apply = (input: KvInput): KvOutput => {
    if (input._tag === "AtomicWrite") {
      if (!input.entries.every((e) => holds(e.key, e.condition))) return Kv.err("ConditionFailed")
      const revision = fresh()
      for (const e of input.entries) {
        if (e.action._tag === "Put") data.set(e.key, { value: e.action.value, revision })
        else if (e.action._tag === "Delete") data.delete(e.key)
      }
      return Kv.ok(revision)
    }
    const cur = data.get(input.key)
    switch (input._tag) {
      case "Get":
        return cur ? Kv.found(cur.value, cur.revision) : Kv.err("NotFound")
      case "Put":
        return write(input.key, input.value)
      case "Create":
        return cur ? Kv.err("AlreadyExists") : write(input.key, input.value)
      case "Update":
        return cur ? write(input.key, input.value) : Kv.err("NotFound")
      case "Delete":
        if (!cur) return Kv.err("NotFound")
        data.delete(input.key)
        return Kv.ok()
      case "CompareAndSwap":
        return !cur
          ? Kv.err("NotFound")
          : cur.value !== input.expected
          ? Kv.err("CompareFailed")
          : write(input.key, input.value)
      case "ConditionalUpdate":
        return !cur
          ? Kv.err("NotFound")
          : cur.revision !== input.revision
          ? Kv.err("IncorrectRevision")
          : write(input.key, input.value)
      case "ConditionalDelete":
        if (!cur) return Kv.err("NotFound")
        if (cur.revision !== input.revision) return Kv.err("IncorrectRevision")
        data.delete(input.key)
        return Kv.ok()
    }
  }
  return { apply, issued }
}

// Revisions only exist once the store mints them, so commands carry an index
// into the revisions issued so far (plus one never-issued value, to hit the
// IncorrectRevision/ConditionFailed paths too).
type RevisionPick = number
type Command =
  | { readonly kind: "simple"; readonly make: (pickRevision: (p: RevisionPick) => string) => KvInput }
  | { readonly kind: "phantom"; readonly input: KvInput }

const simple = (make: (pickRevision: (p: RevisionPick) => string) => KvInput): Command => ({ kind: "simple", make })
const value = fc.constantFrom("x", "y", "z")
const pick = fc.nat(1000)
const condition: fc.Arbitrary<(r: (p: RevisionPick) => string) => KvCondition> = fc.oneof(
  fc.constant(() => ({ _tag: "Whatever" }) as const),
  fc.constant(() => ({ _tag: "Exists" }) as const),
  fc.constant(() => ({ _tag: "NotExists" }) as const),
  pick.map((p) => (r: (p: RevisionPick) => string) => ({ _tag: "Revision", revision: r(p) }) as const)
)
const action: fc.Arbitrary<KvAction> = fc.oneof(
  value.map((v) => ({ _tag: "Put", value: v }) as const),
  fc.constant({ _tag: "Delete" } as const),
  fc.constant({ _tag: "Nop" } as const)
)

const commandOn = (key: fc.Arbitrary<string>, phantomWeight: number): fc.Arbitrary<Command> =>
  fc.oneof(...[
    { weight: 4, arbitrary: key.map((k) => simple(() => Kv.get(k))) },
    { weight: 3, arbitrary: fc.tuple(key, value).map(([k, v]) => simple(() => Kv.put(k, v))) },
    { weight: 2, arbitrary: fc.tuple(key, value).map(([k, v]) => simple(() => Kv.create(k, v))) },
    { weight: 1, arbitrary: fc.tuple(key, value).map(([k, v]) => simple(() => Kv.update(k, v))) },
    { weight: 1, arbitrary: key.map((k) => simple(() => Kv.delete(k))) },
    { weight: 2, arbitrary: fc.tuple(key, value, value).map(([k, e, v]) => simple(() => Kv.cas(k, e, v))) },
    {
      weight: 2,
      arbitrary: fc.tuple(key, pick, value).map(([k, p, v]) => simple((r) => Kv.conditionalUpdate(k, r(p), v)))
    },
    { weight: 1, arbitrary: fc.tuple(key, pick).map(([k, p]) => simple((r) => Kv.conditionalDelete(k, r(p)))) },
    {
      weight: 2,
      arbitrary: fc
        .uniqueArray(fc.tuple(key, condition, action), { minLength: 1, maxLength: 3, selector: ([k]) => k })
        .map((es) => simple((r) => Kv.atomic(...es.map(([k, c, a]) => ({ key: k, condition: c(r), action: a })))))
    },
    // A write whose response is lost and which never takes effect.
    {
      weight: phantomWeight,
      arbitrary: fc.tuple(key, value).map(([k, v]): Command => ({ kind: "phantom", input: Kv.put(k, v) }))
    }
  ].filter((a) => a.weight > 0))

/** Where an op falls in time: fractions in [0, 1) of the room available before and after its linearization point. */
interface Shape {
  readonly process: number
  readonly before: number
  readonly after: number
  /** The response was lost (the op still took effect, at its point). */
  readonly lost: boolean
}

interface Scenario {
  readonly processes: number
  readonly commands: ReadonlyArray<Command>
  readonly shapes: ReadonlyArray<Shape>
}

const SPACING = 10

interface ScenarioOptions {
  readonly keys: ReadonlyArray<string>
  /** Concurrent clients; with their ops never overlapping, this bounds how many completed ops overlap. */
  readonly processes: number
  readonly minOps: number
  readonly maxOps: number
  readonly lostOneIn: number
  /** Relative weight (0 = none) of pending writes that never take effect; the other commands weigh 19 in total. */
  readonly phantomWeight: number
}

// Unbiased: fast-check otherwise favours 0, i.e. tight intervals and lost responses.
const fraction = fc.noBias(fc.nat(999)).map((n) => n / 1000)

const scenario = (opts: ScenarioOptions): fc.Arbitrary<Scenario> =>
  fc.array(commandOn(fc.constantFrom(...opts.keys), opts.phantomWeight), {
    minLength: opts.minOps,
    maxLength: opts.maxOps,
    size: "max"
  }).chain((commands) =>
    fc
      .array(
        fc.record({
          process: fc.nat(opts.processes - 1),
          before: fraction,
          after: fraction,
          lost: fc.noBias(fc.nat(opts.lostOneIn - 1)).map((n) => n === 0)
        }),
        { minLength: commands.length, maxLength: commands.length }
      )
      .map((shapes) => ({ processes: opts.processes, commands, shapes }))
  )

/**
 * Runs the commands sequentially against the reference store, placing op i's
 * linearization point at i * SPACING, then widens each interval around that
 * point as far as its client allows: a client's ops never overlap, as with
 * real clients. Every interval still contains its point, so the sequential
 * order is a valid linearization whatever the overlap. A client whose response
 * was lost moves on after a timeout, leaving that op pending forever.
 */
const buildHistory = ({ processes, commands, shapes }: Scenario): History<KvInput, KvOutput> => {
  const store = makeReferenceStore()
  // Recent revisions are the ones likely to still be current, so favour them.
  const pickRevision = (p: RevisionPick) =>
    p % 7 === 0 || store.issued.length === 0 ? "r-never" : store.issued[Math.max(0, store.issued.length - 1 - (p % 4))]!
  const nextPoint: Array<number> = []
  const upcoming = new Map<number, number>()
  for (let i = commands.length - 1; i >= 0; i--) {
    const process = shapes[i]!.process
    nextPoint[i] = upcoming.get(process) ?? i * SPACING + 2 * processes * SPACING
    upcoming.set(process, i * SPACING)
  }
  const lastEnd = new Map<number, number>()
  return commands.map((cmd, id): Operation<KvInput, KvOutput> => {
    const { process, before, after, lost } = shapes[id]!
    const point = id * SPACING
    const low = (lastEnd.get(process) ?? -1) + 1
    const call = point - Math.floor(before * (point - low))
    const end = point + 1 + Math.floor(after * (nextPoint[id]! - point - 2))
    lastEnd.set(process, end)
    if (cmd.kind === "phantom") return pending(id, `p${process}`, call, cmd.input)
    const input = cmd.make(pickRevision)
    const output = store.apply(input)
    return lost ? pending(id, `p${process}`, call, input) : completed(id, `p${process}`, call, end, input, output)
  })
}

const small = fc
  .integer({ min: 1, max: 5 })
  .chain((processes) =>
    scenario({ keys: ["a", "b"], processes, minOps: 1, maxOps: 40, lostOneIn: 15, phantomWeight: 1 })
  )

const large = (seed: number) =>
  buildHistory(
    fc.sample(scenario({ keys: ["a"], processes: 6, minOps: 300, maxOps: 300, lostOneIn: 30, phantomWeight: 0 }), {
      seed,
      numRuns: 1
    })[0]!
  )

const corrupt = (h: History<KvInput, KvOutput>, victim: Operation<KvInput, KvOutput>) =>
  h.map((
    op
  ) => (op === victim
    ? completed(op.id, op.process, op.call, op.return, op.input, Kv.found("never-written", "r-never"))
    : op)
  )

const check = (h: History<KvInput, KvOutput>) => checkLinearizable(kvModel, h, { timeoutMs: 10_000 })

describe("KvModel checker properties", () => {
  it("accepts histories of a correct store, however their intervals overlap", () => {
    fc.assert(
      fc.property(small, (s) => {
        const h = buildHistory(s)
        const result = check(h)
        if (result.ok !== true) throw new Error(formatResult(kvModel, h, result))
      }),
      { seed: 42, numRuns: 300 }
    )
  })

  it("rejects a history once one Get is corrupted to a value never written", () => {
    fc.assert(
      fc.property(small, fc.nat(), (s, n) => {
        const h = buildHistory(s)
        const gets = h.filter((op) => op.input._tag === "Get" && !isPending(op))
        fc.pre(gets.length > 0)
        const victim = gets[n % gets.length]!
        const corrupted = corrupt(h, victim)
        // "prefix" still names the culprit but skips the costly essential-op analysis.
        const result = checkLinearizable(kvModel, corrupted, {
          timeoutMs: 10_000,
          explain: "prefix",
          explainTimeoutMs: 5_000
        })
        if (result.ok !== false) {
          throw new Error(`corruption of #${victim.id} went unnoticed:\n${formatResult(kvModel, corrupted, result)}`)
        }
        expect(result.culprits.map((op) => op.id)).toContain(victim.id)
      }),
      { seed: 42, numRuns: 300 }
    )
  })

  it("checks a few hundred overlapping ops on one key quickly, whatever the verdict", () => {
    for (const seed of [1, 2, 3]) {
      const h = large(seed)
      let started = performance.now()
      const result = check(h)
      expect(performance.now() - started).toBeLessThan(2_000)
      if (result.ok !== true) expect.fail(formatResult(kvModel, h, result))
      expect(result.linearization).toHaveLength(1)
      // A violation forces the search to exhaust everything before it, the costly case.
      const gets = h.filter((op) => op.input._tag === "Get" && !isPending(op))
      const victim = gets[Math.floor(gets.length / 2)]!
      started = performance.now()
      const bad = checkLinearizable(kvModel, corrupt(h, victim), { timeoutMs: 10_000, explain: "prefix" })
      expect(performance.now() - started).toBeLessThan(5_000)
      expect(bad.ok).toBe(false)
    }
  })
})
