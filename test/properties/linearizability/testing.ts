/**
 * Shared helpers for the checker's own tests: terse history literals and
 * assertions that print a readable report when they fail.
 */
import { expect } from "vitest"
import type { CheckResult, NotLinearizable } from "./Checker.ts"
import { checkLinearizable } from "./Checker.ts"
import { formatResult } from "./format.ts"
import type { History } from "./History.ts"
import { completed, isPending, pending } from "./History.ts"
import type { Model } from "./Model.ts"

/** One op as a tuple; ids are assigned in row order. */
export type Row<I, O> = readonly [process: string, call: number, ret: number | "pending", input: I, output?: O]

/** Rows get ids in order, so `#n` in a failure report is the n-th row. */
export const history = <I, O>(...rows: ReadonlyArray<Row<I, O>>): History<I, O> =>
  rows.map(([p, c, r, input, output], id) =>
    r === "pending" ? pending(id, p, c, input) : completed(id, p, c, r, input, output as O)
  )

/** Replays each partition's linearization to make sure the witness itself is sound. */
export const assertWitness = <S, I, O>(model: Model<S, I, O>, result: CheckResult<I, O>) => {
  if (result.ok !== true) return
  for (const order of result.linearization) {
    let state = model.init()
    order.forEach((op, i) => {
      const r = model.step(state, op.input, isPending(op) ? undefined : op.output)
      expect(r.ok).toBe(true)
      state = r.next
      // Real-time order: nothing later in the witness may have returned before this op was called.
      for (const later of order.slice(i + 1)) expect(later.return >= op.call).toBe(true)
    })
  }
}

/** Asserts a linearization exists and that the returned witness replays. */
export const expectLinearizable = <S, I, O>(model: Model<S, I, O>, h: History<I, O>) => {
  const result = checkLinearizable(model, h)
  if (result.ok !== true) expect.fail(formatResult(model, h, result))
  assertWitness(model, result)
}

/** Asserts no linearization exists; returns the verdict for closer inspection. */
export const expectViolation = <S, I, O>(model: Model<S, I, O>, h: History<I, O>): NotLinearizable<I, O> => {
  const result = checkLinearizable(model, h)
  if (result.ok !== false) expect.fail(`expected a violation, got ${formatResult(model, h, result)}`)
  return result
}
