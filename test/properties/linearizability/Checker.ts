/**
 * Linearizability checker entry point: validates and partitions the history,
 * runs the search (see Search.ts) on each partition and, on a violation,
 * narrows it down to something a human can read.
 */
import type { History, Operation } from "./History.ts"
import { isPending, validateHistory } from "./History.ts"
import type { Model } from "./Model.ts"
import { searchLinearization } from "./Search.ts"

/** Options for {@link checkLinearizable}. */
export interface CheckOptions {
  /** Wall-clock budget for the whole check; exceeding it yields `ok: "unknown"`. */
  readonly timeoutMs?: number
  /**
   * How much to analyse a violation (default "full"): "prefix" finds the
   * minimal failing prefix and its culprits (about log n extra searches);
   * "full" also finds the essential ops (about one search per op of that
   * prefix, each costlier than the last); "none" skips both. Extra searches
   * repeat the exhaustive failing search, so inside a property that is shrunk
   * many times "prefix" keeps runs fast while still naming the culprit.
   */
  readonly explain?: "none" | "prefix" | "full"
  /**
   * Extra wall-clock budget for the analysis (default 500ms); when exhausted it
   * stops early, conservatively. Shrunk counterexamples are small enough to be
   * analysed fully well within it; large unshrunk ones merely get a coarser report.
   */
  readonly explainTimeoutMs?: number
}

/** Verdict: a linearization exists. */
export interface Linearizable<I, O> {
  readonly ok: true
  /**
   * One linearization per independent partition, in linearization order.
   * Pending ops appear only where the search assumed they took effect.
   */
  readonly linearization: ReadonlyArray<ReadonlyArray<Operation<I, O>>>
}

/** Verdict: no linearization exists. */
export interface NotLinearizable<I, O> {
  readonly ok: false
  readonly reason: string
  /** All ops of the partition that could not be linearized. */
  readonly partition: History<I, O>
  /**
   * The shortest prefix of the partition (cut at a return) that is already not
   * linearizable. Ops still in flight at the cut appear as pending.
   */
  readonly minimalPrefix: History<I, O>
  /** The op(s) whose return completes the minimal prefix: the first observation that cannot be explained. */
  readonly culprits: ReadonlyArray<Operation<I, O>>
  /**
   * Ids of ops in the minimal prefix whose observed responses are needed for the
   * violation: with every other op of the prefix turned pending (response
   * unknown) it is still a violation, and also turning any one of these pending
   * makes it explainable. Ops the analysis had no time (or no mandate, see
   * `explain`) to rule out are included.
   */
  readonly essential: ReadonlyArray<number>
  /** The longest partial linearization the search found for the whole partition. */
  readonly longestPartial: ReadonlyArray<Operation<I, O>>
}

/** Verdict: the time budget ran out before the search concluded. */
export interface Unknown {
  readonly ok: "unknown"
  readonly reason: string
}

/** Result of {@link checkLinearizable}. */
export type CheckResult<I, O> = Linearizable<I, O> | NotLinearizable<I, O> | Unknown

const asPending = <I, O>(op: Operation<I, O>): Operation<I, O> =>
  isPending(op)
    ? op
    : {
      id: op.id,
      process: op.process,
      call: op.call,
      return: Number.POSITIVE_INFINITY,
      input: op.input,
      pending: true
    }

/** The partition as observed at time `t`: later calls dropped, ops still in flight pending. */
const prefixAt = <I, O>(ops: History<I, O>, t: number): History<I, O> =>
  ops.filter((op) => op.call <= t).map((op) => (op.return <= t ? op : asPending(op)))

interface Explanation<I, O> {
  readonly minimalPrefix: History<I, O>
  readonly culprits: ReadonlyArray<Operation<I, O>>
  readonly essential: ReadonlyArray<number>
}

/** Drops pending reads: they can neither constrain nor change anything, yet would enlarge the search. */
const withoutPendingReads = <S, I, O>(model: Model<S, I, O>, ops: History<I, O>): History<I, O> => {
  const readOnly = model.readOnly
  return readOnly ? ops.filter((op) => !(isPending(op) && readOnly(op.input))) : ops
}

const explain = <S, I, O>(
  model: Model<S, I, O>,
  ops: History<I, O>,
  full: boolean,
  deadline: number
): Explanation<I, O> => {
  // A timed-out search proves nothing, so it never counts as a failure: the
  // analysis then keeps its last proven-failing candidate.
  const fails = (h: History<I, O>): boolean =>
    searchLinearization(model, withoutPendingReads(model, h), deadline).kind === "fail"
  // Non-linearizability is preserved when extending a prefix, so searching
  // over return times finds the earliest unexplainable response. Galloping up
  // from short prefixes first keeps the probes cheap when the violation is
  // early: a long failing prefix is the most expensive thing to search.
  const times = Array.from(new Set(ops.filter((op) => !isPending(op)).map((op) => op.return))).sort((a, b) => a - b)
  let lo = -1
  let hi = times.length - 1
  for (let probe = 0; probe < hi && performance.now() < deadline; probe = probe * 2 + 1) {
    if (fails(prefixAt(ops, times[probe]!))) {
      hi = probe
      break
    }
    lo = probe
  }
  while (hi - lo > 1 && performance.now() < deadline) {
    const mid = (lo + hi) >>> 1
    if (fails(prefixAt(ops, times[mid]!))) hi = mid
    else lo = mid
  }
  const cut = times[hi] ?? Number.POSITIVE_INFINITY
  const minimalPrefix = prefixAt(ops, cut)
  const culprits = minimalPrefix.filter((op) => !isPending(op) && op.return === cut)
  // Greedy delta debugging: weaken ops to pending one at a time, keeping each
  // weakening that still fails, so every op left completed is needed.
  let weakened = minimalPrefix
  for (let i = 0; full && i < weakened.length && performance.now() < deadline; i++) {
    const op = weakened[i]!
    if (isPending(op)) continue
    const candidate = weakened.map((o, j) => (j === i ? asPending(o) : o))
    if (fails(candidate)) weakened = candidate
  }
  const essential = weakened.filter((op) => !isPending(op)).map((op) => op.id)
  return { minimalPrefix, culprits, essential }
}

/**
 * Checks whether `history` is linearizable with respect to `model`.
 * Throws on malformed histories (see {@link validateHistory}).
 *
 * Cost: linearizable histories are usually checked in near-linear time. A
 * violation makes the search exhaust every configuration before it, which is
 * exponential in the number of ops in flight together; each pending op stays
 * in flight for the rest of the history, so keep lost responses rare (a few
 * per few hundred ops per partition) and always pass `timeoutMs`.
 */
export const checkLinearizable = <S, I, O>(
  model: Model<S, I, O>,
  history: History<I, O>,
  options: CheckOptions = {}
): CheckResult<I, O> => {
  const problems = validateHistory(history)
  if (problems.length > 0) throw new Error(`malformed history:\n  ${problems.join("\n  ")}`)
  const deadline = performance.now() + (options.timeoutMs ?? Number.POSITIVE_INFINITY)
  const relevant = withoutPendingReads(model, history)
  const partitions = model.partition ? model.partition(relevant) : [relevant]
  const linearization: Array<ReadonlyArray<Operation<I, O>>> = []
  let timedOut = 0
  for (const ops of partitions) {
    const outcome = searchLinearization(model, ops, deadline)
    if (outcome.kind === "timeout") {
      // Keep going: a definite violation elsewhere is still worth reporting.
      timedOut++
      continue
    }
    if (outcome.kind === "ok") {
      linearization.push(outcome.order)
      continue
    }
    const mode = options.explain ?? "full"
    const why = mode === "none"
      ? { minimalPrefix: ops, culprits: [], essential: ops.filter((op) => !isPending(op)).map((op) => op.id) }
      : explain(model, ops, mode === "full", performance.now() + (options.explainTimeoutMs ?? 500))
    return {
      ok: false,
      reason: describeFailure(model, ops, outcome.longest, why),
      partition: ops,
      minimalPrefix: why.minimalPrefix,
      culprits: why.culprits,
      essential: why.essential,
      longestPartial: outcome.longest
    }
  }
  if (timedOut > 0) {
    return {
      ok: "unknown",
      reason: `timed out after ${options.timeoutMs}ms on ${timedOut} of ${partitions.length} partition(s)`
    }
  }
  return { ok: true, linearization }
}

const describeFailure = <S, I, O>(
  model: Model<S, I, O>,
  ops: History<I, O>,
  longest: ReadonlyArray<Operation<I, O>>,
  why: Explanation<I, O>
): string => {
  const show = (op: Operation<I, O>) => `#${op.id} ${model.describe(op.input, isPending(op) ? undefined : op.output)}`
  const lines = [`no linearization exists for a partition of ${ops.length} op(s)`]
  if (why.culprits.length > 0) {
    lines.push(
      `first unexplainable response: ${why.culprits.map(show).join(", ")} (returned at ${why.culprits[0]!.return})`
    )
    lines.push(`ops whose responses are needed for the violation: ${why.essential.map((id) => `#${id}`).join(", ")}`)
  }
  const completedCount = ops.filter((op) => !isPending(op)).length
  lines.push(
    `longest partial linearization (${longest.length} op(s), ${completedCount} completed in total): ${
      longest.map((op) => `#${op.id}`).join(" ") || "(empty)"
    }`
  )
  if (model.describeState) {
    let state = model.init()
    for (const op of longest) state = model.step(state, op.input, isPending(op) ? undefined : op.output).next
    lines.push(`state after it: ${model.describeState(state)}`)
  }
  return lines.join("\n")
}
