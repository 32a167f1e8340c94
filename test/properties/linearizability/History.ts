/**
 * Operation histories for the linearizability checker.
 *
 * Timestamps are logical (e.g. taken from one shared counter across all
 * processes); only their relative order matters. A call at time `t` and a
 * return at the same `t` are treated as overlapping, which errs on the side of
 * accepting histories rather than reporting false violations.
 */

/** An operation whose response was observed: it took effect between `call` and `return`. */
export interface CompletedOperation<I, O> {
  readonly id: number
  readonly process: string | number
  readonly call: number
  readonly return: number
  readonly input: I
  readonly output: O
  readonly pending?: false
}

/**
 * An operation that was called but whose response was never observed (timeout,
 * lost response, crashed client). It may or may not have taken effect, at any
 * point after its call, so its return is +Infinity and any output is accepted.
 */
export interface PendingOperation<I> {
  readonly id: number
  readonly process: string | number
  readonly call: number
  readonly return: number
  readonly input: I
  readonly output?: undefined
  readonly pending: true
}

/** One entry of a history. */
export type Operation<I, O> = CompletedOperation<I, O> | PendingOperation<I>

/** A history: operations in any order; the checker orders them by time itself. */
export type History<I, O> = ReadonlyArray<Operation<I, O>>

/** True when the operation's response was never observed. */
export const isPending = <I, O>(op: Operation<I, O>): op is PendingOperation<I> => op.pending === true

/** Builds a completed operation (keeps test histories terse). */
export const completed = <I, O>(
  id: number,
  process: string | number,
  call: number,
  ret: number,
  input: I,
  output: O
): CompletedOperation<I, O> => ({ id, process, call, return: ret, input, output })

/** Builds a pending operation: called at `call`, never returned. */
export const pending = <I>(id: number, process: string | number, call: number, input: I): PendingOperation<I> => ({
  id,
  process,
  call,
  return: Number.POSITIVE_INFINITY,
  input,
  pending: true
})

/**
 * Returns a list of problems with the history's shape (empty when well formed).
 * The checker refuses malformed histories because a silently mis-ordered
 * interval would make its verdict meaningless.
 */
export const validateHistory = <I, O>(history: History<I, O>): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const ids = new Set<number>()
  for (const op of history) {
    if (ids.has(op.id)) problems.push(`duplicate operation id ${op.id}`)
    ids.add(op.id)
    if (!Number.isFinite(op.call)) problems.push(`op ${op.id}: call time ${op.call} is not finite`)
    if (isPending(op)) {
      if (op.return !== Number.POSITIVE_INFINITY) problems.push(`op ${op.id}: pending op must return at +Infinity`)
    } else if (!(op.call < op.return) || !Number.isFinite(op.return)) {
      problems.push(`op ${op.id}: needs call < return < Infinity, got [${op.call}, ${op.return}]`)
    }
  }
  return problems
}

/**
 * A convenience recorder for property tests: it hands out timestamps from a
 * single shared counter so calls and returns across concurrent fibers/promises
 * are ordered consistently with real time.
 */
export interface HistoryRecorder<I, O> {
  /** Records the call now; the returned function records the response. Never calling it leaves the op pending. */
  readonly invoke: (process: string | number, input: I) => (output: O) => void
  /** The history so far; operations still in flight are reported as pending. */
  readonly history: () => History<I, O>
}

/** Creates a {@link HistoryRecorder} with its own clock. */
export const makeRecorder = <I, O>(): HistoryRecorder<I, O> => {
  let clock = 0
  let nextId = 0
  const ops = new Map<number, Operation<I, O>>()
  return {
    invoke: (process, input) => {
      const id = nextId++
      const op = pending(id, process, clock++, input)
      ops.set(id, op)
      let done = false
      return (output) => {
        // A second response for one call would be a harness bug; keep the first.
        if (done) return
        done = true
        ops.set(id, completed(id, process, op.call, clock++, input, output))
      }
    },
    history: () => Array.from(ops.values())
  }
}
