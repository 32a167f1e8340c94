/**
 * A projection that keeps failing on one key: after `maxApplyAttempts` the
 * key is quarantined for that projection (listed in the status with the
 * error), its later events are skipped for it, the other keys and the other
 * projections go on, and the shard is not blocked.
 */
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect } from "effect"
import type { Event } from "../../src/domain/Event.ts"
import { historyPartition } from "../../src/infra/HistoryArea.ts"
import * as Projection from "../../src/programs/worker/Projection.ts"
import { openStore } from "../support/TestStore.ts"
import type { WorkerHandle } from "./support.ts"
import { bytes, eventually, freshEnv, liveEvents, recorder, seqsByKey, startWorker } from "./support.ts"

class ProjectionBoom extends Data.TaggedError("ProjectionBoom")<{ readonly key: string }> {}

type Failing = "typed" | "tagged" | "defect" | "from-seq-2"

/** A projection that records good keys and fails (in the given way) on `bad`, counting its attempts. */
const picky = (bad: string, how: Failing) => {
  const good = recorder("picky", ["/q/"])
  let attempts = 0
  const projection = Projection.make({
    name: "picky",
    prefixes: ["/q/"],
    apply: (event: Event) => {
      if (event.key !== bad || (how === "from-seq-2" && event.seq < 2)) return good.projection.apply(event)
      return Effect.suspend(() => {
        attempts++
        if (how === "defect") throw new Error(`cannot project ${event.key}`)
        return how !== "tagged"
          ? Effect.fail(new Error(`cannot project ${event.key}`))
          : Effect.fail(new ProjectionBoom({ key: event.key }))
      })
    }
  })
  return { projection, log: good.log, attempts: () => attempts }
}

const scenario = (how: Failing, deadlineMillis = 15_000) =>
  Effect.gen(function*() {
    const env = yield* freshEnv(`worker-quarantine-${how}`)
    const store = yield* openStore(env.location, { client: env.client })
    const bad = "/q/poison"
    const goods = ["/q/a", "/q/b", "/q/c"]
    const subject = picky(bad, how)
    // Reads of the history area by the worker: only a replay of a seq gap (History.events) makes them.
    let historyReads = 0
    const countHistoryReads = (command: string, input: unknown) => {
      const pk = (input as { ExpressionAttributeValues?: Record<string, { S?: string }> }).ExpressionAttributeValues
        ?.[":pk"]?.S
      if (command === "QueryCommand" && pk === historyPartition(env.location)) historyReads++
      return 0
    }
    const worker: WorkerHandle = yield* startWorker(env, {
      group: "quarantine",
      projections: [subject.projection],
      maxApplyAttempts: 3,
      responseDelay: countHistoryReads
    })

    // The bad key is written first, in the same stretch of the shard as the good ones.
    yield* store.put({ key: bad, value: bytes("p1") })
    for (const key of goods) yield* store.put({ key, value: bytes(`${key}1`) })
    yield* store.put({ key: bad, value: bytes("p2") })
    for (const key of goods) yield* store.put({ key, value: bytes(`${key}2`) })

    const flowing = (n: number) =>
      eventually(
        `the good keys reach seq ${n}`,
        Effect.sync(() => {
          const applied = seqsByKey(subject.log)
          for (const key of goods) expect(applied.get(key), key).toEqual(Array.from({ length: n }, (_, i) => i + 1))
        }),
        deadlineMillis
      )
    yield* flowing(2)
    // The bad key is quarantined after its retries, which the good keys do not wait for: on a loaded machine they
    // can reach seq 2 first.
    const status = yield* eventually(
      "the bad key is quarantined",
      Effect.flatMap(worker.status, (status) =>
        Effect.sync(() => {
          expect(status.quarantined).not.toHaveLength(0)
          return status
        })),
      deadlineMillis
    )
    return { env, store, worker, subject, bad, goods, status, flowing, historyReads: () => historyReads }
  })

describe("quarantine", () => {
  it.live(
    "a projection failing on one key quarantines that key; the other keys and projections keep flowing",
    () =>
      Effect.gen(function*() {
        const { env, store, worker, subject, bad, goods, status, flowing } = yield* scenario("typed")
        expect(status.quarantined).toEqual([{ projection: "picky", key: bad, seq: 1, error: `cannot project ${bad}` }])
        // Exactly maxApplyAttempts tries on seq 1, none on seq 2 (the key stays quarantined).
        expect(subject.attempts()).toBe(3)
        expect(subject.log.some(({ event }) => event.key === bad)).toBe(false)

        // The shard is not blocked: later writes still reach the projection.
        for (const key of goods) yield* store.put({ key, value: bytes(`${key}3`) })
        yield* store.put({ key: bad, value: bytes("p3") })
        yield* flowing(3)
        expect(subject.attempts()).toBe(3)
        expect((yield* worker.status).quarantined).toHaveLength(1)
        // Other projections still handle the quarantined key: compaction left only its newest event live.
        yield* eventually(
          "history projection compacted the quarantined key",
          Effect.gen(function*() {
            const live = (yield* liveEvents(env)).filter((event) => event.key === bad).map((event) => event.seq)
            expect(live).toEqual([3])
          }),
          15_000
        )
      }),
    60_000
  )

  it.live(
    "the quarantine entry names the error of a failure without a message (its tag)",
    () =>
      Effect.gen(function*() {
        const { bad, status } = yield* scenario("tagged", 8_000)
        expect(status.quarantined.map((entry) => [entry.key, entry.seq])).toEqual([[bad, 1]])
        // A Data.TaggedError has an empty message; "" tells an operator nothing.
        expect(status.quarantined[0]?.error).toContain("ProjectionBoom")
      }),
    60_000
  )

  it.live(
    "a projection that throws (a defect) on one key quarantines it too, instead of blocking the shard",
    () =>
      Effect.gen(function*() {
        const { bad, status, subject } = yield* scenario("defect", 8_000)
        expect(status.quarantined.map((entry) => [entry.projection, entry.key, entry.seq])).toEqual([["picky", bad, 1]])
        expect(status.quarantined[0]?.error).toContain(`cannot project ${bad}`)
        expect(subject.attempts()).toBeLessThanOrEqual(3)
      }),
    60_000
  )

  /**
   * ProjectionWorker's applyInOrder treats every event of a key whose last *applied* seq is behind as a seq
   * gap, before applyOne checks the quarantine: so each later event of a key quarantined at seq s > 1 logs
   * "jumped from seq ..." and re-reads the key's whole history from the table, only to skip it all.
   */
  it.live(
    "later events of a quarantined key are skipped without replaying its history from the table",
    () =>
      Effect.gen(function*() {
        const { store, subject, bad, goods, status, flowing, historyReads } = yield* scenario("from-seq-2")
        expect(status.quarantined.map((entry) => [entry.key, entry.seq])).toEqual([[bad, 2]])
        expect(subject.log.filter(({ event }) => event.key === bad).map(({ event }) => event.seq)).toEqual([1])
        const readsBefore = historyReads()
        for (let i = 3; i <= 5; i++) yield* store.put({ key: bad, value: bytes(`p${i}`) })
        for (const key of goods) yield* store.put({ key, value: bytes(`${key}3`) })
        yield* flowing(3)
        expect(subject.attempts()).toBe(3)
        expect({ historyReadsForSkippedEvents: historyReads() - readsBefore }).toEqual({
          historyReadsForSkippedEvents: 0
        })
      }),
    60_000
  )
})
