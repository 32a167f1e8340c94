/**
 * fast-check commands over the whole Store API. Each command predicts its
 * outcome with the reference model, runs the real call on one of the run's
 * two store instances (`@0`/`@1`), asserts that both agree (value bytes, error
 * tag and fields, item lists and order, counts, revisions), and only then
 * commits a success to the model with the revision the real store returned.
 *
 * What depends on the model's state (a live key, the current value for a
 * compare-and-swap, a live or stale revision) is drawn symbolically and
 * resolved when the command runs; `toString` shows the symbol and, after the
 * command ran, what it resolved to in `{…}`. Commands are cloned per run
 * (`fc.cloneMethod`), so a printed counterexample shows its own resolutions.
 */
import { Stream } from "effect"
import type { Effect, Result } from "effect"
import fc from "fast-check"
import { expect } from "vitest"
import type { ConditionalAction } from "../../../src/domain/AtomicWrite.ts"
import {
  expiresAt,
  expiryArb,
  keyArb,
  limitArb,
  rangeArb,
  resolveKey,
  resolveRevision,
  revisionArb,
  segments,
  shortRevision,
  showKey,
  showRevision,
  targetArb,
  valueArb,
  viaArb
} from "./arbitraries.ts"
import type { RevisionPick } from "./arbitraries.ts"
import { agree, commitLease, expectItems, outcome } from "./checks.ts"
import type { Run, StoreService } from "./harness.ts"
import { showBytes, showExpiry } from "./harness.ts"
import type { ModelEntry, ReferenceModel } from "./ReferenceModel.ts"

/** The system under test of one run, with the trace of what each command resolved to and got. */
export interface Real {
  readonly run: Run
  readonly trace: Array<string>
  /** The clock at the start of the run, so the trace shows times relative to it. */
  readonly start: number
}

export type StoreCommand = fc.AsyncCommand<ReferenceModel, Real>

// ---------------------------------------------------------------- the command shape

interface Context {
  readonly model: ReferenceModel
  readonly store: StoreService
  readonly real: Real
  /** Records what a symbolic argument resolved to, for toString and the trace. */
  readonly note: (text: string) => void
  readonly exec: <A, E>(effect: Effect.Effect<A, E>) => Promise<Result.Result<A, E>>
}

const command = (label: string, via: number, body: (context: Context) => Promise<string>): StoreCommand => {
  const notes: Array<string> = []
  const describe = () => `${label}@${via}${notes.length > 0 ? ` {${notes.join(", ")}}` : ""}`
  const self = {
    check: () => true,
    run: async (model: ReferenceModel, real: Real) => {
      notes.length = 0
      const index = real.trace.push("") - 1
      const at = `t=${model.now - real.start}`
      let result = "✗✗ assertion failed here"
      try {
        result = await body({
          model,
          real,
          store: real.run.stores[via]!,
          note: (text) => notes.push(text),
          exec: real.run.exec
        })
      } finally {
        real.trace[index] = `${at} ${describe()} → ${result}`
      }
    },
    toString: describe,
    [fc.cloneMethod]: () => command(label, via, body)
  }
  return self
}

// ---------------------------------------------------------------- single-key writes

const writeCommand = fc.record({
  kind: fc.constantFrom("create", "put", "update"),
  target: targetArb,
  value: valueArb,
  expiry: expiryArb,
  via: viaArb
})
  .map(({ kind, target, value, expiry, via }) =>
    command(
      `${kind}(${showKey(target)}, ${showBytes(value)}, exp=${showExpiry(expiry)})`,
      via,
      async ({ model, store, note, exec }) => {
        const key = resolveKey(model, target)
        if (target._tag !== "Key") note(key)
        const expires = expiresAt(model, expiry)
        const prediction = model[kind](key, value, expires)
        const write: Effect.Effect<{ key: string; revision: string }, unknown> = store[kind]({ key, value, expires })
        const result = await exec(write)
        const lease = agree(prediction, result, kind)
        if (lease) commitLease(model, prediction, lease, key, kind)
        return outcome(result)
      }
    )
  )

const compareAndSwapCommand = fc.record({
  target: targetArb,
  otherKey: fc.oneof({ weight: 15, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: keyArb }),
  expected: fc.oneof({ weight: 2, arbitrary: fc.constant("current" as const) }, { weight: 1, arbitrary: valueArb }),
  value: valueArb,
  expiry: expiryArb,
  via: viaArb
}).map(({ target, otherKey, expected, value, expiry, via }) => {
  const shown = expected === "current" ? "current" : showBytes(expected)
  const label = `compareAndSwap(${otherKey === undefined ? "" : `${otherKey} vs `}${
    showKey(target)
  }, expected=${shown}, ${showBytes(value)}, exp=${showExpiry(expiry)})`
  return command(label, via, async ({ model, store, note, exec }) => {
    const key = resolveKey(model, target)
    const expectedKey = otherKey ?? key
    const expectedValue = expected === "current" ? model.lastKnown.get(key)?.value ?? new Uint8Array() : expected
    if (target._tag !== "Key") note(key)
    if (expected === "current") note(`current=${showBytes(expectedValue)}`)
    const prediction = model.compareAndSwap(expectedKey, expectedValue, key, value, expiresAt(model, expiry))
    const result = await exec(
      store.compareAndSwap({ key: expectedKey, value: expectedValue }, {
        key,
        value,
        expires: expiresAt(model, expiry)
      })
    )
    const lease = agree(prediction, result, "compareAndSwap")
    if (lease) commitLease(model, prediction, lease, key, "compareAndSwap")
    return outcome(result)
  })
})

const conditionalUpdateCommand = fc.record({
  target: targetArb,
  revision: revisionArb,
  value: valueArb,
  expiry: expiryArb,
  via: viaArb
})
  .map(({ target, revision, value, expiry, via }) =>
    command(
      `conditionalUpdate(${showKey(target)}, rev=${showRevision(revision)}, ${showBytes(value)}, exp=${
        showExpiry(expiry)
      })`,
      via,
      async (c) => {
        const key = resolveKey(c.model, target)
        const rev = resolveRevision(c.model, key, revision)
        c.note(`${target._tag !== "Key" ? `${key} ` : ""}rev=${shortRevision(rev)}`)
        const expires = expiresAt(c.model, expiry)
        const prediction = c.model.conditionalUpdate(key, value, expires, rev)
        const result = await c.exec(c.store.conditionalUpdate({ key, value, expires, revision: rev }))
        const lease = agree(prediction, result, "conditionalUpdate")
        if (lease) commitLease(c.model, prediction, lease, key, "conditionalUpdate")
        return outcome(result)
      }
    )
  )

const conditionalDeleteCommand = fc.record({ target: targetArb, revision: revisionArb, via: viaArb })
  .map(({ target, revision, via }) =>
    command(`conditionalDelete(${showKey(target)}, rev=${showRevision(revision)})`, via, async (c) => {
      const key = resolveKey(c.model, target)
      const rev = resolveRevision(c.model, key, revision)
      c.note(`${target._tag !== "Key" ? `${key} ` : ""}rev=${shortRevision(rev)}`)
      const prediction = c.model.conditionalDelete(key, rev)
      const result = await c.exec(c.store.conditionalDelete(key, rev))
      agree(prediction, result, "conditionalDelete")
      if (result._tag === "Success" && prediction._tag === "Ok") prediction.commit("")
      return outcome(result)
    })
  )

const deleteCommand = fc.record({ target: targetArb, via: viaArb }).map(({ target, via }) =>
  command(`delete(${showKey(target)})`, via, async (c) => {
    const key = resolveKey(c.model, target)
    if (target._tag !== "Key") c.note(key)
    const prediction = c.model.delete(key)
    const result = await c.exec(c.store.delete(key))
    agree(prediction, result, "delete")
    if (result._tag === "Success" && prediction._tag === "Ok") prediction.commit("")
    return outcome(result)
  })
)

const keepAliveCommand = fc.record({ target: targetArb, revision: revisionArb, expiry: expiryArb, via: viaArb })
  .map(({ target, revision, expiry, via }) =>
    command(
      `keepAlive(${showKey(target)}, rev=${showRevision(revision)}, exp=${showExpiry(expiry)})`,
      via,
      async (c) => {
        const key = resolveKey(c.model, target)
        const rev = resolveRevision(c.model, key, revision)
        c.note(`${target._tag !== "Key" ? `${key} ` : ""}rev=${shortRevision(rev)}`)
        const expires = expiresAt(c.model, expiry)
        const prediction = c.model.keepAlive(key, rev, expires)
        const result = await c.exec(c.store.keepAlive({ key, revision: rev }, expires))
        const lease = agree(prediction, result, "keepAlive")
        if (lease && prediction._tag === "Ok") {
          expect(lease, "keepAlive: the lease names the item's own revision").toEqual({
            key,
            revision: prediction.expect
          })
          prediction.commit(prediction.expect)
        }
        return outcome(result)
      }
    )
  )

// ---------------------------------------------------------------- reads and ranges

const getCommand = fc.record({ target: targetArb, via: viaArb }).map(({ target, via }) =>
  command(`get(${showKey(target)})`, via, async (c) => {
    const key = resolveKey(c.model, target)
    if (target._tag !== "Key") c.note(key)
    const expected = c.model.get(key)
    const result = await c.exec(c.store.get(key))
    if (expected._tag === "Fail") {
      agree(expected, result, "get")
      return outcome(result)
    }
    expect(
      result._tag === "Failure" ? `failed with ${String(result.failure)}` : "found",
      "get: the model has a live item"
    ).toBe("found")
    if (result._tag === "Success") expectItems([result.success], [expected.item], "get")
    return outcome(result)
  })
)

const keysOf = (items: ReadonlyArray<{ readonly key: string }>) => `[${items.map((item) => item.key).join(" ")}]`

const getRangeCommand = fc.record({ range: rangeArb, limit: limitArb, via: viaArb }).map(({ range, limit, via }) =>
  command(`getRange(${range.start}, ${range.end}, limit=${limit ?? "∞"})`, via, async (c) => {
    const result = await c.exec(c.store.getRange(range.start, range.end, limit === undefined ? undefined : { limit }))
    expect(outcome(result).slice(0, 1), "getRange succeeds").toBe("✓")
    if (result._tag === "Success") expectItems(result.success, c.model.range({ ...range, limit }), "getRange")
    return result._tag === "Success" ? keysOf(result.success) : outcome(result)
  })
)

const itemsCommand = fc.record({ range: rangeArb, descending: fc.boolean(), limit: limitArb, via: viaArb })
  .map(({ range, descending, limit, via }) =>
    command(
      `items(${range.start}, ${range.end}, ${descending ? "desc" : "asc"}, limit=${limit ?? "∞"})`,
      via,
      async (c) => {
        const options = { ...range, descending, ...(limit === undefined ? {} : { limit }) }
        const result = await c.exec(Stream.runCollect(c.store.items(options)))
        expect(outcome(result).slice(0, 1), "items succeeds").toBe("✓")
        if (result._tag === "Success") expectItems(result.success, c.model.range(options), "items")
        return result._tag === "Success" ? keysOf(result.success) : outcome(result)
      }
    )
  )

/** Whole-store check: every live item, ascending. */
const scanCommand = viaArb.map((via) =>
  command("scan()", via, async (c) => {
    const result = await c.exec(c.store.getRange("/", "\u{10FFFF}"))
    expect(outcome(result).slice(0, 1), "scan succeeds").toBe("✓")
    if (result._tag === "Success") expectItems(result.success, c.model.range({ start: "/", end: "\u{10FFFF}" }), "scan")
    return result._tag === "Success" ? keysOf(result.success) : outcome(result)
  })
)

const deleteRangeCommand = fc.record({ range: rangeArb, via: viaArb }).map(({ range, via }) =>
  command(`deleteRange(${range.start}, ${range.end})`, via, async (c) => {
    const prediction = c.model.deleteRange(range.start, range.end)
    const result = await c.exec(c.store.deleteRange(range.start, range.end))
    const count = agree(prediction, result, "deleteRange")
    if (prediction._tag === "Ok" && count !== undefined) {
      expect(count, "deleteRange: how many live items it deleted").toBe(prediction.expect)
      prediction.commit("")
    }
    return outcome(result)
  })
)

const advanceCommand = fc.oneof({ weight: 1, arbitrary: fc.integer({ min: 1, max: 10 }) }, {
  weight: 1,
  arbitrary: fc.integer({ min: 11, max: 60 })
})
  .map((millis): StoreCommand => ({
    check: () => true,
    run: async (model, real) => {
      await real.run.advance(millis)
      model.advance(millis)
      expect(await real.run.now(), "the store's clock is the model's").toBe(model.now)
      real.trace.push(`advance(${millis}) → t=${model.now - real.start}`)
    },
    toString: () => `advance(${millis})`
  }))

/**
 * Compaction, as the projection worker does it: superseded events move to history and deleted keys' tombstones
 * into their graves. Nothing a caller can observe changes, and later writes (from either instance, cached or not)
 * must continue every key's numbering.
 */
const compactCommand = fc.constantFrom("forever", "none").map((retention): StoreCommand => ({
  check: () => true,
  run: async (_model, real) => {
    const result = await real.run.compact(retention === "none" ? { _tag: "None" } : { _tag: "Forever" })
    expect(result._tag === "Failure" ? result.failure : "compacted", "compaction succeeds").toBe("compacted")
    real.trace.push(`compact(${retention}) → ✓ ${result._tag === "Success" ? result.success : "?"} keys`)
  },
  toString: () => `compact(${retention})`
}))

/** One instance restarts: it has no cached key state, so it reads keys (and graves) afresh. */
const restartCommand = viaArb.map((via): StoreCommand => ({
  check: () => true,
  run: async (_model, real) => {
    await real.run.restart(via)
    real.trace.push(`restart@${via}`)
  },
  toString: () => `restart@${via}`
}))

// ---------------------------------------------------------------- atomic writes

type ConditionSpec = { readonly _tag: "Whatever" | "Exists" | "NotExists" } | {
  readonly _tag: "Revision"
  readonly pick: RevisionPick
}
type ActionSpec = { readonly _tag: "Put"; readonly value: Uint8Array; readonly expiry: number | undefined } | {
  readonly _tag: "Delete" | "Nop"
}
interface EntrySpec {
  readonly key: string
  readonly condition: ConditionSpec
  readonly action: ActionSpec
}

const conditionArb: fc.Arbitrary<ConditionSpec> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ _tag: "Whatever" } as const) },
  { weight: 2, arbitrary: fc.constantFrom({ _tag: "Exists" } as const, { _tag: "NotExists" } as const) },
  {
    weight: 2,
    arbitrary: revisionArb.filter((pick) => pick._tag !== "Empty").map((pick) => ({ _tag: "Revision", pick }) as const)
  }
)
const actionArb: fc.Arbitrary<ActionSpec> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ value: valueArb, expiry: expiryArb }).map((put) => ({ _tag: "Put", ...put }) as const)
  },
  { weight: 2, arbitrary: fc.constant({ _tag: "Delete" } as const) },
  { weight: 1, arbitrary: fc.constant({ _tag: "Nop" } as const) }
)
const entryArb: fc.Arbitrary<EntrySpec> = fc.record({ key: keyArb, condition: conditionArb, action: actionArb })

const showEntry = (entry: EntrySpec) => {
  const c = entry.condition._tag === "Revision" ? `Rev(${showRevision(entry.condition.pick)})` : entry.condition._tag
  const a = entry.action._tag === "Put"
    ? `Put(${showBytes(entry.action.value)}, exp=${showExpiry(entry.action.expiry)})`
    : entry.action._tag
  return `${entry.key}:${c}→${a}`
}

type Resolved = ModelEntry & ConditionalAction

const resolveEntry = (model: ReferenceModel, entry: EntrySpec): Resolved => ({
  key: entry.key,
  condition: entry.condition._tag === "Revision"
    ? { _tag: "Revision", revision: resolveRevision(model, entry.key, entry.condition.pick) }
    : { _tag: entry.condition._tag },
  action: entry.action._tag === "Put"
    ? { _tag: "Put", value: entry.action.value, expires: expiresAt(model, entry.action.expiry) }
    : { _tag: entry.action._tag }
})

const atomicCommand = (
  label: string,
  entries: ReadonlyArray<EntrySpec>,
  via: number,
  edit?: (resolved: Array<Resolved>) => void
) =>
  command(label, via, async (c) => {
    const resolved = entries.map((entry) => resolveEntry(c.model, entry))
    edit?.(resolved)
    for (const entry of resolved) {
      if (entry.condition._tag === "Revision") c.note(`${entry.key} rev=${shortRevision(entry.condition.revision)}`)
    }
    const prediction = c.model.atomicWrite(resolved)
    const result = await c.exec(c.store.atomicWrite(resolved))
    const revision = agree(prediction, result, "atomicWrite")
    if (revision !== undefined) {
      expect(c.model.revisions.includes(revision), "atomicWrite: the shared revision is new").toBe(false)
      if (prediction._tag === "Ok") prediction.commit(revision)
      c.model.learn(revision)
    }
    return outcome(result)
  })

const atomicWriteCommand = fc.record({
  entries: fc.uniqueArray(entryArb, { minLength: 1, maxLength: 5, selector: (e) => e.key }),
  via: viaArb
})
  .map(({ entries, via }) => atomicCommand(`atomicWrite[${entries.map(showEntry).join(", ")}]`, entries, via))

/** Malformed atomic writes: no entries, 65 entries, a duplicate key, only Nops, an empty revision condition. */
const invalidAtomicWriteCommand = fc.record({
  kind: fc.constantFrom("empty", "tooMany", "duplicate", "allNop", "emptyRevision"),
  entries: fc.uniqueArray(entryArb, { minLength: 1, maxLength: 3, selector: (e) => e.key }),
  via: viaArb
}).map(({ kind, entries, via }) => {
  const many = Array.from({ length: 65 }, (_, i): EntrySpec => ({
    key: `/${segments[i % 6]}/${segments[Math.floor(i / 6) % 6]}/${segments[Math.floor(i / 36)]}`,
    condition: { _tag: "Whatever" },
    action: { _tag: "Put", value: new Uint8Array([i]), expiry: undefined }
  }))
  const chosen = kind === "empty"
    ? []
    : kind === "tooMany"
    ? many
    : kind === "duplicate"
    ? [...entries, entries[0]!]
    : entries
  const shown = kind === "tooMany" ? "65 puts" : chosen.map(showEntry).join(", ")
  return atomicCommand(`atomicWrite:${kind}[${shown}]`, chosen, via, (resolved) => {
    if (kind === "allNop") {
      for (const [i, entry] of resolved.entries()) resolved[i] = { ...entry, action: { _tag: "Nop" } }
    }
    if (kind === "emptyRevision") {
      resolved[resolved.length - 1] = { ...resolved.at(-1)!, condition: { _tag: "Revision", revision: "" } }
    }
  })
})

/** Every command of the API, weighted towards writes and reads of single keys. */
export const allCommands: ReadonlyArray<fc.Arbitrary<StoreCommand>> = [
  writeCommand,
  writeCommand,
  writeCommand,
  writeCommand,
  compareAndSwapCommand,
  compareAndSwapCommand,
  conditionalUpdateCommand,
  conditionalUpdateCommand,
  conditionalDeleteCommand,
  getCommand,
  getCommand,
  getRangeCommand,
  itemsCommand,
  scanCommand,
  deleteCommand,
  deleteRangeCommand,
  keepAliveCommand,
  keepAliveCommand,
  atomicWriteCommand,
  atomicWriteCommand,
  invalidAtomicWriteCommand,
  advanceCommand,
  advanceCommand,
  compactCommand,
  compactCommand,
  restartCommand
]
