/**
 * The write fence's rule: compaction's settle time must outlast what a writer deciding on a stale state can take
 * to land its append, including a request that reaches DynamoDB late, up to its signature's validity.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  awsMargins,
  defaultSettleMillis,
  defaultWriteFence,
  isSafe,
  minimumSettleMillis,
  signatureValidityMillis
} from "../../src/domain/WriteFence.ts"

describe("WriteFence", () => {
  it("the defaults are safe on AWS, counting a request applied five minutes after it was sent", () => {
    expect(signatureValidityMillis).toBe(5 * 60_000)
    expect(minimumSettleMillis(defaultWriteFence)).toBe(30_000 + 2 * 30_000 + 5 * 60_000 + 60_000)
    expect(isSafe(defaultSettleMillis, defaultWriteFence)).toBe(true)
  })

  it("the former five-minute settle time is not: a late request could land in a freed seq", () => {
    expect(isSafe(5 * 60_000, defaultWriteFence)).toBe(false)
    // Without late delivery it was enough, which is why the rule used to pass it.
    expect(isSafe(5 * 60_000, defaultWriteFence, { ...awsMargins, lateDeliveryMillis: 0 })).toBe(true)
  })

  it("the settle time needed grows with every bound of the writers", () => {
    const base = minimumSettleMillis(defaultWriteFence)
    expect(minimumSettleMillis({ ...defaultWriteFence, maxStateAgeMillis: 60_000 })).toBe(base + 30_000)
    expect(minimumSettleMillis({ ...defaultWriteFence, writeTimeoutMillis: 60_000 })).toBe(base + 60_000)
    expect(minimumSettleMillis(defaultWriteFence, { ...awsMargins, skewMillis: 0 })).toBe(base - 60_000)
    expect(isSafe(base, defaultWriteFence)).toBe(false)
    expect(isSafe(base + 1, defaultWriteFence)).toBe(true)
  })
})
