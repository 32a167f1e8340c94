/**
 * Human-readable rendering of histories and checker verdicts, so that a shrunk
 * counterexample from a property test can be read without a debugger.
 */
import type { CheckResult } from "./Checker.ts"
import type { History } from "./History.ts"
import { isPending } from "./History.ts"
import type { Model } from "./Model.ts"

/** Which ops to flag in {@link formatHistory}. */
export interface FormatOptions {
  /** Ops of the failing partition, flagged with `*`. */
  readonly mark?: Iterable<number>
  /** Ops whose responses the violation depends on, flagged with `!` (wins over `*`). */
  readonly essential?: Iterable<number>
  /** Prefix for every line, e.g. indentation. */
  readonly indent?: string
}

/**
 * One line per op, ordered by call time:
 * `! p2  [  4,   9] #3  Get(k) → Ok("a" @r1)`.
 * Pending ops show `∞` as their return and `?` as their output.
 */
export const formatHistory = <S, I, O>(
  model: Model<S, I, O>,
  history: History<I, O>,
  options: FormatOptions = {}
): string => {
  const marked = new Set(options.mark ?? [])
  const essential = new Set(options.essential ?? [])
  const indent = options.indent ?? ""
  const ops = [...history].sort((a, b) => a.call - b.call || a.id - b.id)
  const time = (t: number) => (t === Number.POSITIVE_INFINITY ? "∞" : String(t))
  const widthP = Math.max(1, ...ops.map((op) => String(op.process).length))
  const widthT = Math.max(1, ...ops.flatMap((op) => [time(op.call).length, time(op.return).length]))
  const widthId = Math.max(1, ...ops.map((op) => String(op.id).length))
  return ops
    .map((op) => {
      const flag = essential.has(op.id) ? "!" : marked.has(op.id) ? "*" : " "
      const interval = `[${time(op.call).padStart(widthT)}, ${time(op.return).padStart(widthT)}]`
      const text = model.describe(op.input, isPending(op) ? undefined : op.output)
      return `${indent}${flag} ${String(op.process).padEnd(widthP)}  ${interval}  #${
        String(op.id).padEnd(widthId)
      }  ${text}`
    })
    .join("\n")
}

/**
 * A full report of a verdict: the reason, the whole history with the failing
 * partition marked, then the minimal failing prefix with essential ops marked.
 */
export const formatResult = <S, I, O>(
  model: Model<S, I, O>,
  history: History<I, O>,
  result: CheckResult<I, O>
): string => {
  if (result.ok === true) {
    const sizes = result.linearization.map((l) => l.length).join(", ")
    return `linearizable (${result.linearization.length} partition(s) with ${sizes} linearized op(s))`
  }
  if (result.ok === "unknown") return `unknown: ${result.reason}\n${formatHistory(model, history, { indent: "  " })}`
  const ids = result.partition.map((op) => op.id)
  return [
    `NOT linearizable: ${result.reason}`,
    `history (* = failing partition, ! = needed for the violation):`,
    formatHistory(model, history, { mark: ids, essential: result.essential, indent: "  " }),
    `minimal failing prefix (ops in flight at the cut shown pending):`,
    formatHistory(model, result.minimalPrefix, { essential: result.essential, indent: "  " })
  ].join("\n")
}
