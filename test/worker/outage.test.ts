/**
 * A projection whose storage is unavailable (throttled, unreachable) for longer than its apply attempts: an outage
 * is not a poisoned key. The worker holds the shard at its checkpoint and reads the batch again until storage is
 * back, so no key is quarantined and every event is applied, in per-key order, once it returns. (Quarantine is for
 * failures that retrying will not cure: quarantine.test.ts.)
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { StorageFailure, Throttled } from "../../src/domain/Errors.ts"
import type { Event } from "../../src/domain/Event.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"
import { openStore } from "../support/TestStore.ts"
import { bytes, eventually, freshEnv, recorder, seqsByKey, startWorker } from "./support.ts"

type Outage = "unreachable" | "throttled"

/** A projection on a view whose storage fails in the given way while `down`, counting the refused attempts. */
const behindOutage = (how: Outage) => {
  const inner = recorder("viewed", ["/o/"])
  const state = { down: true, refused: 0 }
  const projection = Projection.make({
    name: "viewed",
    prefixes: ["/o/"],
    apply: (event: Event) =>
      Effect.suspend(() => {
        if (!state.down) return inner.projection.apply(event)
        state.refused++
        return Effect.fail(
          how === "throttled"
            ? new Throttled({ operation: "PutItem", reason: "ProvisionedThroughputExceededException: slow down" })
            : new StorageFailure({ operation: "PutItem", reason: "TimeoutError: connect ETIMEDOUT 10.0.0.1:443" })
        )
      })
  })
  return { projection, log: inner.log, state }
}

const outage = (how: Outage) =>
  Effect.gen(function*() {
    const env = yield* freshEnv(`worker-outage-${how}`)
    const store = yield* openStore(env.location, { client: env.client })
    const subject = behindOutage(how)
    const worker = yield* startWorker(env, { group: "outage", projections: [subject.projection], maxApplyAttempts: 2 })
    const keys = ["/o/a", "/o/b", "/o/c"]
    for (let round = 1; round <= 2; round++) {
      for (const key of keys) yield* store.put({ key, value: bytes(`${key}${round}`) })
    }
    // Far more refusals than the apply attempts allow for one event: the outage outlasts them.
    yield* eventually(
      "the outage outlasts the apply attempts",
      Effect.sync(() => {
        expect(subject.state.refused).toBeGreaterThanOrEqual(6)
      }),
      30_000
    )
    expect((yield* worker.status).quarantined).toEqual([])
    subject.state.down = false
    for (const key of keys) yield* store.put({ key, value: bytes(`${key}3`) })
    yield* eventually(
      "every event reaches the view once storage is back",
      Effect.sync(() => {
        const applied = seqsByKey(subject.log)
        for (const key of keys) expect(applied.get(key), key).toEqual([1, 2, 3])
      }),
      30_000
    )
    expect((yield* worker.status).quarantined).toEqual([])
  })

describe("a projection's storage outage", () => {
  it.live("an unreachable view table holds the shard instead of quarantining keys", () => outage("unreachable"), 90_000)
  it.live("a throttled view table holds the shard instead of quarantining keys", () => outage("throttled"), 90_000)
})
