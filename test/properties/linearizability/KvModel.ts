/**
 * Sequential specification of dynastate's key/value contract, written
 * independently of the store so the checker does not inherit its bugs.
 *
 * Revisions are minted by the store, so the model learns them from outputs: a
 * successful write records the revision it returned, and a Get must report the
 * revision of the last linearized write. A write whose response was lost has
 * an unknown revision until a later Get reveals it; conditions against an
 * unknown revision are judged by the observed output. That leniency can only
 * make the checker accept more, never reject a linearizable history.
 */
import type { History, Operation } from "./History.ts"
import type { Model, StepResult } from "./Model.ts"

/** Condition of one atomic-write entry, evaluated against the state before the write. */
export type KvCondition =
  | { readonly _tag: "Whatever" }
  | { readonly _tag: "Exists" }
  | { readonly _tag: "NotExists" }
  | { readonly _tag: "Revision"; readonly revision: string }

/** Action of one atomic-write entry, applied only if every condition holds. */
export type KvAction = { readonly _tag: "Put"; readonly value: string } | { readonly _tag: "Delete" } | {
  readonly _tag: "Nop"
}

/** One key's part of an atomic write. */
export interface KvAtomicEntry {
  readonly key: string
  readonly condition: KvCondition
  readonly action: KvAction
}

/** Operations of the store under test. */
export type KvInput =
  | { readonly _tag: "Create"; readonly key: string; readonly value: string }
  | { readonly _tag: "Put"; readonly key: string; readonly value: string }
  | { readonly _tag: "Update"; readonly key: string; readonly value: string }
  | { readonly _tag: "CompareAndSwap"; readonly key: string; readonly expected: string; readonly value: string }
  | { readonly _tag: "ConditionalUpdate"; readonly key: string; readonly revision: string; readonly value: string }
  | { readonly _tag: "ConditionalDelete"; readonly key: string; readonly revision: string }
  | { readonly _tag: "Get"; readonly key: string }
  | { readonly _tag: "Delete"; readonly key: string }
  | { readonly _tag: "AtomicWrite"; readonly entries: ReadonlyArray<KvAtomicEntry> }

/** Failure tags the store reports. */
export type KvErrorTag = "AlreadyExists" | "NotFound" | "CompareFailed" | "IncorrectRevision" | "ConditionFailed"

/** Observed responses: writes return the new revision, Get returns value and revision. */
export type KvOutput =
  | { readonly _tag: "Ok"; readonly revision?: string; readonly value?: string }
  | { readonly _tag: "Err"; readonly tag: KvErrorTag }

/** One stored key; `revision` is undefined while it is only known from a pending write. */
export interface KvEntry {
  readonly value: string
  readonly revision: string | undefined
}

/** Model state: the live keys of one partition. Never mutated; steps copy. */
export type KvState = ReadonlyMap<string, KvEntry>

/** Which error (or success) the store reports in the corner cases where contracts commonly differ. */
export interface KvModelOptions {
  /** Delete of a missing key. Default "NotFound". */
  readonly deleteMissing?: "NotFound" | "Ok"
  /** CompareAndSwap on a missing key. Default "NotFound". */
  readonly compareAndSwapMissing?: "NotFound" | "CompareFailed"
  /** ConditionalUpdate / ConditionalDelete on a missing key. Default "NotFound". */
  readonly conditionalMissing?: "NotFound" | "IncorrectRevision"
}

/** Terse constructors for inputs and outputs, for hand-written histories. */
export const Kv = {
  create: (key: string, value: string): KvInput => ({ _tag: "Create", key, value }),
  put: (key: string, value: string): KvInput => ({ _tag: "Put", key, value }),
  update: (key: string, value: string): KvInput => ({ _tag: "Update", key, value }),
  cas: (key: string, expected: string, value: string): KvInput => ({ _tag: "CompareAndSwap", key, expected, value }),
  conditionalUpdate: (key: string, revision: string, value: string): KvInput => ({
    _tag: "ConditionalUpdate",
    key,
    revision,
    value
  }),
  conditionalDelete: (key: string, revision: string): KvInput => ({ _tag: "ConditionalDelete", key, revision }),
  get: (key: string): KvInput => ({ _tag: "Get", key }),
  delete: (key: string): KvInput => ({ _tag: "Delete", key }),
  atomic: (...entries: ReadonlyArray<KvAtomicEntry>): KvInput => ({ _tag: "AtomicWrite", entries }),
  ok: (revision?: string): KvOutput => (revision === undefined ? { _tag: "Ok" } : { _tag: "Ok", revision }),
  found: (value: string, revision: string): KvOutput => ({ _tag: "Ok", value, revision }),
  err: (tag: KvErrorTag): KvOutput => ({ _tag: "Err", tag })
} as const

/** The keys an operation reads or writes; drives partitioning. */
export const keysOf = (input: KvInput): ReadonlyArray<string> =>
  input._tag === "AtomicWrite" ? input.entries.map((e) => e.key) : [input.key]

type Match = "yes" | "no" | "maybe"

const matchRevision = (entry: KvEntry | undefined, revision: string): Match =>
  entry === undefined ? "no" : entry.revision === undefined ? "maybe" : entry.revision === revision ? "yes" : "no"

const matchCondition = (entry: KvEntry | undefined, c: KvCondition): Match => {
  switch (c._tag) {
    case "Whatever":
      return "yes"
    case "Exists":
      return entry !== undefined ? "yes" : "no"
    case "NotExists":
      return entry === undefined ? "yes" : "no"
    case "Revision":
      return matchRevision(entry, c.revision)
  }
}

const withKey = (state: KvState, key: string, entry: KvEntry | undefined): KvState => {
  const next = new Map(state)
  if (entry === undefined) next.delete(key)
  else next.set(key, entry)
  return next
}

/**
 * Judges an op that either fails with `failTag` (if defined) leaving the state
 * alone, or succeeds via `succeed` (if defined) with the revision it returned.
 * A pending op takes the success branch when there is one: the failure branch
 * changes nothing, which the checker already covers by never linearizing it.
 */
const decide = (
  state: KvState,
  output: KvOutput | undefined,
  failTag: KvErrorTag | undefined,
  succeed: ((revision: string | undefined) => KvState) | undefined
): StepResult<KvState> => {
  if (output === undefined) return { ok: true, next: succeed ? succeed(undefined) : state }
  if (output._tag === "Err") return { ok: failTag === output.tag, next: state }
  if (succeed === undefined) return { ok: false, next: state }
  // Revisions are unique per write, so a "new" one already live in the state is a lie.
  const reused = output.revision !== undefined && Array.from(state.values()).some((e) => e.revision === output.revision)
  return { ok: !reused, next: succeed(output.revision) }
}

const onMatch = (m: Match, tag: KvErrorTag, succeed: (revision: string | undefined) => KvState) => ({
  failTag: m === "yes" ? undefined : tag,
  succeed: m === "no" ? undefined : succeed
})

const stepGet = (state: KvState, key: string, output: KvOutput | undefined): StepResult<KvState> => {
  const cur = state.get(key)
  if (output === undefined) return { ok: true, next: state }
  if (cur === undefined) return { ok: output._tag === "Err" && output.tag === "NotFound", next: state }
  if (output._tag !== "Ok" || output.value !== cur.value) return { ok: false, next: state }
  if (output.revision === undefined || cur.revision === output.revision) return { ok: true, next: state }
  // First sighting of a pending write's revision pins it for later reads.
  if (cur.revision === undefined) {
    return { ok: true, next: withKey(state, key, { value: cur.value, revision: output.revision }) }
  }
  return { ok: false, next: state }
}

/** Builds the key/value model; see {@link KvModelOptions} for the contract's corner cases. */
export const makeKvModel = (options: KvModelOptions = {}): Model<KvState, KvInput, KvOutput> => {
  const deleteMissing = options.deleteMissing ?? "NotFound"
  const casMissing = options.compareAndSwapMissing ?? "NotFound"
  const conditionalMissing = options.conditionalMissing ?? "NotFound"

  const step = (state: KvState, input: KvInput, output: KvOutput | undefined): StepResult<KvState> => {
    const put = (key: string, value: string) => (revision: string | undefined) =>
      withKey(state, key, { value, revision })
    const remove = (key: string) => () => withKey(state, key, undefined)
    switch (input._tag) {
      case "Get":
        return stepGet(state, input.key, output)
      case "Put":
        return decide(state, output, undefined, put(input.key, input.value))
      case "Create":
        return state.has(input.key)
          ? decide(state, output, "AlreadyExists", undefined)
          : decide(state, output, undefined, put(input.key, input.value))
      case "Update":
        return state.has(input.key)
          ? decide(state, output, undefined, put(input.key, input.value))
          : decide(state, output, "NotFound", undefined)
      case "Delete":
        if (state.has(input.key)) return decide(state, output, undefined, remove(input.key))
        return deleteMissing === "Ok"
          ? decide(state, output, undefined, () => state)
          : decide(state, output, "NotFound", undefined)
      case "CompareAndSwap": {
        const cur = state.get(input.key)
        if (cur === undefined) return decide(state, output, casMissing, undefined)
        return cur.value === input.expected
          ? decide(state, output, undefined, put(input.key, input.value))
          : decide(state, output, "CompareFailed", undefined)
      }
      case "ConditionalUpdate":
      case "ConditionalDelete": {
        const cur = state.get(input.key)
        if (cur === undefined) return decide(state, output, conditionalMissing, undefined)
        const apply = input._tag === "ConditionalUpdate" ? put(input.key, input.value) : remove(input.key)
        const d = onMatch(matchRevision(cur, input.revision), "IncorrectRevision", apply)
        return decide(state, output, d.failTag, d.succeed)
      }
      case "AtomicWrite": {
        const matches = input.entries.map((e) => matchCondition(state.get(e.key), e.condition))
        const overall: Match = matches.includes("no") ? "no" : matches.includes("maybe") ? "maybe" : "yes"
        const apply = (revision: string | undefined): KvState => {
          const next = new Map(state)
          for (const e of input.entries) {
            const cur = next.get(e.key)
            // Success proves a revision condition held, which pins an unknown revision.
            if (e.condition._tag === "Revision" && cur !== undefined && cur.revision === undefined) {
              next.set(e.key, { value: cur.value, revision: e.condition.revision })
            }
          }
          for (const e of input.entries) {
            if (e.action._tag === "Put") next.set(e.key, { value: e.action.value, revision })
            else if (e.action._tag === "Delete") next.delete(e.key)
          }
          return next
        }
        const d = onMatch(overall, "ConditionFailed", apply)
        return decide(state, output, d.failTag, d.succeed)
      }
    }
  }

  const hash = (state: KvState): string =>
    JSON.stringify(
      Array.from(state.entries(), ([k, e]) => [k, e.value, e.revision ?? null]).sort((a, b) => (a[0]! < b[0]! ? -1 : 1))
    )

  return {
    init: () => new Map(),
    step,
    hash,
    equal: (a, b) => hash(a) === hash(b),
    partition: partitionByKey,
    readOnly: (input) => input._tag === "Get",
    describe: describeKv,
    describeState: (state) =>
      `{${Array.from(state.entries(), ([k, e]) => `${k}=${JSON.stringify(e.value)}@${e.revision ?? "?"}`).join(", ")}}`
  }
}

/**
 * Groups operations by key, merging the groups of keys touched by one atomic
 * write (union-find) so multi-key invariants are checked across those keys.
 */
export const partitionByKey = (history: History<KvInput, KvOutput>): ReadonlyArray<History<KvInput, KvOutput>> => {
  const parent = new Map<string, string>()
  const find = (k: string): string => {
    let root = k
    if (!parent.has(root)) parent.set(root, root)
    while (parent.get(root) !== root) root = parent.get(root)!
    // Path compression keeps long chains of atomic writes cheap.
    for (let cur = k; cur !== root;) {
      const up = parent.get(cur)!
      parent.set(cur, root)
      cur = up
    }
    return root
  }
  for (const op of history) {
    const [first, ...rest] = keysOf(op.input)
    if (first === undefined) continue
    const root = find(first)
    for (const k of rest) parent.set(find(k), root)
  }
  const groups = new Map<string, Array<Operation<KvInput, KvOutput>>>()
  const keyless: Array<History<KvInput, KvOutput>> = []
  for (const op of history) {
    const first = keysOf(op.input)[0]
    // An atomic write with no entries touches nothing; it is trivially checkable alone.
    if (first === undefined) keyless.push([op])
    else {
      const root = find(first)
      const group = groups.get(root)
      if (group === undefined) groups.set(root, [op])
      else group.push(op)
    }
  }
  return [...groups.values(), ...keyless]
}

const showCondition = (c: KvCondition): string => (c._tag === "Revision" ? `Revision(${c.revision})` : c._tag)
const showAction = (a: KvAction): string => (a._tag === "Put" ? `Put(${JSON.stringify(a.value)})` : a._tag)

/** Renders an input and its output (`?` when pending) on one line. */
export const describeKv = (input: KvInput, output: KvOutput | undefined): string => {
  const v = JSON.stringify
  const call = ((): string => {
    switch (input._tag) {
      case "Get":
      case "Delete":
        return `${input._tag}(${input.key})`
      case "Create":
      case "Put":
      case "Update":
        return `${input._tag}(${input.key}, ${v(input.value)})`
      case "CompareAndSwap":
        return `CompareAndSwap(${input.key}, ${v(input.expected)} → ${v(input.value)})`
      case "ConditionalUpdate":
        return `ConditionalUpdate(${input.key}, @${input.revision}, ${v(input.value)})`
      case "ConditionalDelete":
        return `ConditionalDelete(${input.key}, @${input.revision})`
      case "AtomicWrite":
        return `AtomicWrite[${
          input.entries.map((e) => `${e.key}: ${showCondition(e.condition)} ⇒ ${showAction(e.action)}`).join("; ")
        }]`
    }
  })()
  const result = output === undefined
    ? "?"
    : output._tag === "Err"
    ? `Err(${output.tag})`
    : `Ok(${
      [
        output.value === undefined ? undefined : v(output.value),
        output.revision === undefined ? undefined : `@${output.revision}`
      ].filter((s) => s !== undefined).join(" ")
    })`
  return `${call} → ${result}`
}

// Last in the file: the helpers above are consts, unusable before their definition.
/** The model with default corner-case choices. */
export const kvModel: Model<KvState, KvInput, KvOutput> = makeKvModel()
