/**
 * The search at the heart of the checker: Wing & Gong's backtracking over an
 * entry list, with Lowe's memoization of (linearized set, model state) pairs,
 * as in Porcupine/Knossos.
 *
 * Ops become a doubly linked list of call/return entries sorted by time. The
 * search tries to linearize a call that appears before the first remaining
 * return (an op minimal in real-time order); reaching that return means its op
 * should already have been linearized, so the search backtracks. Pending ops
 * return at +Infinity, i.e. never constrain anything, and the search stops as
 * soon as every completed op is linearized, so they need not take effect.
 */
import type { Operation } from "./History.ts"
import { isPending } from "./History.ts"
import type { Model } from "./Model.ts"

/** Outcome of searching one partition. */
export type SearchOutcome<I, O> =
  | { readonly kind: "ok"; readonly order: ReadonlyArray<Operation<I, O>> }
  | { readonly kind: "fail"; readonly longest: ReadonlyArray<Operation<I, O>> }
  | { readonly kind: "timeout" }

interface Entry {
  readonly op: number
  readonly isCall: boolean
  readonly time: number
  match: Entry | null
  prev: Entry | null
  next: Entry | null
}

const entry = (op: number, isCall: boolean, time: number): Entry => ({
  op,
  isCall,
  time,
  match: null,
  prev: null,
  next: null
})

const link = (entries: ReadonlyArray<Entry>): Entry => {
  const head = entry(-1, false, Number.NEGATIVE_INFINITY)
  let last = head
  for (const e of entries) {
    last.next = e
    e.prev = last
    last = e
  }
  return head
}

const buildList = <I, O>(ops: ReadonlyArray<Operation<I, O>>): Entry => {
  const entries: Array<Entry> = []
  ops.forEach((op, i) => {
    const call = entry(i, true, op.call)
    call.match = entry(i, false, op.return)
    entries.push(call, call.match)
  })
  // Calls sort before returns at equal times so touching intervals count as
  // overlapping: we would rather miss a violation than invent one. (Trying
  // pending ops last instead was measured: it makes linearizable histories
  // that need an early lost write far slower, for little gain on failures.)
  entries.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1))
  return link(entries)
}

const unlink = (e: Entry): void => {
  e.prev!.next = e.next
  if (e.next !== null) e.next.prev = e.prev
}

const relink = (e: Entry): void => {
  e.prev!.next = e
  if (e.next !== null) e.next.prev = e
}

interface Frame<S> {
  readonly entry: Entry
  /** The state before this entry's op was linearized, restored on backtracking. */
  readonly state: S
}

/** Searches for a linearization of `ops` (one partition), giving up at `deadline` (performance.now() time). */
export const searchLinearization = <S, I, O>(
  model: Model<S, I, O>,
  ops: ReadonlyArray<Operation<I, O>>,
  deadline: number
): SearchOutcome<I, O> => {
  const head = buildList(ops)
  const bits = new Uint32Array(Math.ceil(ops.length / 32) || 1)
  // The memo table: every (linearized set, state) configuration entered so far.
  // One still on the stack cannot recur below itself (the set only grows along
  // a path), so any repeat is one whose subtree already failed.
  const memo = new Map<string, Array<S>>()
  const stack: Array<Frame<S>> = []
  let remaining = ops.filter((op) => !isPending(op)).length
  let state = model.init()
  let cursor = head.next
  let longest: ReadonlyArray<Operation<I, O>> = []
  let iterations = 0

  const flip = (op: number, on: boolean) => {
    if (on) bits[op >>> 5]! |= 1 << (op & 31)
    else bits[op >>> 5]! &= ~(1 << (op & 31))
  }

  /** Linearizes `e` next if the model allows it and the configuration is new. */
  const tryLinearize = (e: Entry): boolean => {
    const op = ops[e.op]!
    const r = model.step(state, op.input, isPending(op) ? undefined : op.output)
    if (!r.ok) return false
    // A pending op that changes nothing can be dropped from any linearization
    // without affecting another step, so never linearizing it loses no witness
    // and spares the search a configuration per such op (failed conditional
    // writes whose response was lost are common).
    if (isPending(op) && model.equal(r.next, state)) return false
    flip(e.op, true)
    const key = `${bits.join(",")}|${model.hash(r.next)}`
    const seen = memo.get(key)
    if (seen?.some((s) => model.equal(s, r.next))) {
      flip(e.op, false)
      return false
    }
    if (seen === undefined) memo.set(key, [r.next])
    else seen.push(r.next)
    stack.push({ entry: e, state })
    state = r.next
    unlink(e)
    unlink(e.match!)
    if (!isPending(op)) remaining--
    if (stack.length > longest.length) longest = stack.map((f) => ops[f.entry.op]!)
    cursor = head.next
    return true
  }

  // Once every completed op is linearized the rest are pending ops, which may
  // simply never have taken effect, so the search is done.
  while (remaining > 0) {
    if ((++iterations & 0xfff) === 0 && performance.now() > deadline) return { kind: "timeout" }
    if (cursor === null) throw new Error("linearizability checker: entry list exhausted (malformed history?)")
    if (cursor.isCall) {
      if (!tryLinearize(cursor)) cursor = cursor.next
      continue
    }
    // No candidate left in this configuration: undo the latest choice.
    const top = stack.pop()
    if (top === undefined) return { kind: "fail", longest }
    state = top.state
    flip(top.entry.op, false)
    // Relinking in reverse order of unlinking restores the list exactly.
    relink(top.entry.match!)
    relink(top.entry)
    if (!isPending(ops[top.entry.op]!)) remaining++
    cursor = top.entry.next
  }
  return { kind: "ok", order: stack.map((f) => ops[f.entry.op]!) }
}
