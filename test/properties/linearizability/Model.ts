/**
 * The sequential specification the checker tests histories against.
 */
import type { History } from "./History.ts"

/** Result of applying one operation to a model state. */
export interface StepResult<State> {
  /** Whether the operation, applied in `state`, could have produced the observed output. */
  readonly ok: boolean
  /** The state after the operation (ignored when `ok` is false). */
  readonly next: State
}

/**
 * A deterministic sequential specification.
 *
 * States must be treated as immutable: the checker keeps old states around for
 * backtracking and memoization, so `step` must return a fresh value instead of
 * mutating its argument.
 */
export interface Model<State, I, O> {
  /** The state before any operation. */
  readonly init: () => State
  /**
   * Applies `input` in `state`. `output` is `undefined` for a pending operation
   * whose response was never seen: the model must then accept (`ok: true`) and
   * return whatever state the operation would have produced, since the checker
   * only linearizes a pending op when assuming it took effect.
   */
  readonly step: (state: State, input: I, output: O | undefined) => StepResult<State>
  /**
   * A hash of the state for the (linearized-set, state) memo table. Returning a
   * canonical serialization makes `equal` trivial; a lossy hash is fine too.
   */
  readonly hash: (state: State) => string
  /** State equality, used to resolve `hash` collisions. */
  readonly equal: (a: State, b: State) => boolean
  /**
   * Splits a history into independent sub-histories (e.g. per key). Correct only
   * when no operation's result depends on state outside its own partition; the
   * locality of linearizability then lets each part be checked alone, which
   * turns one exponential search into several small ones.
   */
  readonly partition?: (history: History<I, O>) => ReadonlyArray<History<I, O>>
  /**
   * Whether an input never changes the state. Optional, purely an
   * optimization: pending read-only ops are dropped before searching.
   */
  readonly readOnly?: (input: I) => boolean
  /** One-line rendering of an operation, `output` undefined when pending. */
  readonly describe: (input: I, output: O | undefined) => string
  /** Optional rendering of a state, used in failure reports. */
  readonly describeState?: (state: State) => string
}
