/**
 * Assertions comparing the real store's results with the reference model's
 * predictions, with failure messages that say which step and what differs.
 */
import type { Result } from "effect"
import { createHash } from "node:crypto"
import { expect } from "vitest"
import type { Item } from "../../../src/domain/Item.ts"
import { showBytes } from "./harness.ts"
import type { ExpectedError, ModelRead, Prediction, ReferenceModel } from "./ReferenceModel.ts"

const summary = (value: Uint8Array) =>
  `${showBytes(value)}#${createHash("sha256").update(value).digest("hex").slice(0, 8)}`

/** An item in a comparable, readable form (values by length, first bytes and a hash). */
const comparable = (item: Pick<Item, "key" | "value" | "expires" | "revision">) => ({
  key: item.key,
  value: summary(item.value),
  expires: item.expires,
  revision: item.revision
})

/** Asserts that real items are the model's, in the same order: keys, value bytes, expiries and revisions. */
export const expectItems = (actual: ReadonlyArray<Item>, expected: ReadonlyArray<ModelRead>, what: string): void => {
  expect(actual.map(comparable), what).toEqual(expected.map(comparable))
}

/** Asserts that a real failure is the expected one: same tag and same named fields. */
export const expectError = (actual: unknown, expected: ExpectedError, what: string): void => {
  const fields = Object.fromEntries(
    Object.keys(expected).map((name) => [name, (actual as Record<string, unknown>)[name]])
  )
  expect(fields, `${what}: error`).toEqual(expected)
}

/** Asserts that the real result agrees with the prediction; on success returns the real value. */
export const agree = <A, R>(
  prediction: Prediction<R>,
  result: Result.Result<A, unknown>,
  what: string
): A | undefined => {
  if (prediction._tag === "Fail") {
    const got = result._tag === "Success" ? `succeeded with ${render(result.success)}` : "failed"
    expect(got, `${what}: the model expects ${prediction.error._tag}`).toBe("failed")
    if (result._tag === "Failure") expectError(result.failure, prediction.error, what)
    return undefined
  }
  const got = result._tag === "Failure" ? `failed with ${String(result.failure)}` : "succeeded"
  expect(got, `${what}: the model expects success`).toBe("succeeded")
  return result._tag === "Success" ? result.success : undefined
}

/** Checks a write's lease (its key, and a revision never seen before), then commits the write to the model. */
export const commitLease = (
  model: ReferenceModel,
  prediction: Prediction,
  lease: { readonly key: string; readonly revision: string },
  key: string,
  what: string
): void => {
  expect(lease.key, `${what}: lease key`).toBe(key)
  expect(typeof lease.revision === "string" && lease.revision !== "", `${what}: lease revision is a non-empty string`)
    .toBe(true)
  expect(model.revisions.includes(lease.revision), `${what}: revision ${lease.revision} is new`).toBe(false)
  if (prediction._tag === "Ok") prediction.commit(lease.revision)
  model.learn(lease.revision)
}

/** A short rendering of any result, values shortened. */
export const render = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => (v instanceof Uint8Array ? showBytes(v) : v)) ?? "undefined"

/** A one-line rendering of a real outcome for the trace. */
export const outcome = (result: Result.Result<unknown, unknown>): string => {
  if (result._tag === "Success") return `✓ ${render(result.success)}`
  const error = result.failure as Record<string, unknown>
  const detail = ["key", "reason", "expected", "condition", "field"]
    .filter((name) => error[name] !== undefined)
    .map((name) => `${name}=${String(error[name])}`)
  return `✗ ${String(error["_tag"])}(${detail.join(", ")})`
}
