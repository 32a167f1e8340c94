import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import { readStream } from "../../src/infra/streams/StreamReader.ts"
import { StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import { consume, eventually, fast, hasAll, labels, makeCoordinator, only, settle } from "./Harness.ts"
import { makeScriptedStreams } from "./ScriptedStreams.ts"

describe("readStream over scripted streams", () => {
  it.live("splits: every record exactly once, in shard order, parents fully before children, children from their first record", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams({ recordsPerPage: 2 })
      script.addShard("A")
      script.append("A", ...labels("a", 5))
      script.split("A", "B", "C")
      script.append("B", ...labels("b", 3))
      script.append("C", ...labels("c", 3))
      script.split("B", "D")
      script.append("D", "d1", "d2")
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator)
      expect(yield* eventually(hasAll(log, ["a5", "b3", "c3", "d2"]))).toBe(true)
      script.append("C", "c4", "c5")
      script.append("D", "d3")
      expect(yield* eventually(hasAll(log, ["c5", "d3"]))).toBe(true)

      expect(only(log, "a")).toEqual(labels("a", 5))
      expect(only(log, "b")).toEqual(labels("b", 3))
      expect(only(log, "c")).toEqual(labels("c", 5))
      expect(only(log, "d")).toEqual(labels("d", 3))
      expect(log.labels).toHaveLength(16)
      const first = (p: string) => log.labels.findIndex((l) => l.startsWith(p))
      expect(log.labels.indexOf("a5")).toBeLessThan(Math.min(first("b"), first("c")))
      expect(log.labels.indexOf("b3")).toBeLessThan(first("d"))
      // Never LATEST: every shard was opened from its first record.
      const positions = script.calls.filter((c) => c.op === "getShardIterator").map((c) =>
        `${c.shardId}:${c.position?._tag}`
      )
      expect(positions).toEqual(
        expect.arrayContaining(["A:TrimHorizon", "B:TrimHorizon", "C:TrimHorizon", "D:TrimHorizon"])
      )
      expect(positions.filter((p) => p.endsWith("Latest"))).toEqual([])
      expect(log.events.filter((e) => e.startsWith("Ended"))).toEqual(expect.arrayContaining(["Ended:A", "Ended:B"]))
    }))

  it.live("records on the final page, which comes without a next iterator, are delivered", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams({ recordsPerPage: 10 })
      script.addShard("A")
      script.append("A", "a1", "a2", "a3")
      script.close("A") // one page: three records and no next iterator
      script.addShard("B", "A")
      script.append("B", "b1")
      const { coordinator, checkpoints } = makeCoordinator()
      const { log } = yield* consume(script, coordinator)
      expect(yield* eventually(hasAll(log, ["a1", "a2", "a3", "b1"]))).toBe(true)
      expect(log.labels).toEqual(["a1", "a2", "a3", "b1"])
      expect(script.count("getRecords", (c) => c.shardId === "A")).toBe(1)
      expect(checkpoints).toContainEqual({ shardId: "A", sequenceNumber: expect.any(String), ended: true })
    }))

  it.live("resume from a checkpoint after a restart delivers exactly the rest (AFTER_SEQUENCE_NUMBER)", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams({ recordsPerPage: 2 })
      script.addShard("A")
      const aSeqs = script.append("A", ...labels("a", 6))
      script.split("A", "B")
      script.append("B", ...labels("b", 4))
      const state = makeCoordinator()
      // First run: the consumer stalls once it applied 3 or more records, then the process "dies".
      const first = yield* consume(script, state.coordinator, fast, (log) => log.labels.length >= 3)
      expect(yield* eventually(() => first.log.labels.length >= 3)).toBe(true)
      yield* Effect.sleep(50)
      yield* Fiber.interrupt(first.fiber)
      expect(first.log.labels).toEqual(["a1", "a2", "a3", "a4"])

      const second = yield* consume(script, state.coordinator)
      expect(yield* eventually(hasAll(second.log, ["a5", "a6", "b4"]))).toBe(true)
      yield* Effect.sleep(50)
      expect(second.log.labels).toEqual(["a5", "a6", "b1", "b2", "b3", "b4"])
      const resumed = script.calls.filter((c) => c.op === "getShardIterator" && c.shardId === "A").at(-1)
      expect(resumed?.position).toEqual({ _tag: "After", sequenceNumber: aSeqs[3] })
    }))

  it.live("an iterator that expires mid-shard loses and duplicates nothing", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams({ recordsPerPage: 2 })
      script.addShard("A")
      script.append("A", ...labels("a", 10))
      script.expireIteratorsAfter(2)
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator)
      expect(yield* eventually(hasAll(log, ["a10"]))).toBe(true)
      script.expireIterators() // and once more while the shard is idle
      script.append("A", "a11")
      expect(yield* eventually(hasAll(log, ["a11"]))).toBe(true)
      yield* Effect.sleep(30)
      expect(log.labels).toEqual(labels("a", 11))
      expect(script.expiredFailures).toBeGreaterThanOrEqual(2)
      const afters = script.calls.filter((c) => c.op === "getShardIterator" && c.position?._tag === "After")
      expect(afters.length).toBeGreaterThanOrEqual(2)
    }))

  it.live("a checkpoint older than the trim horizon yields a Trimmed event, then the oldest records left", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams()
      script.addShard("A")
      const [, a2, , a4] = script.append("A", ...labels("a", 6))
      script.trimThrough(a4!)
      const { coordinator } = makeCoordinator({ A: a2! })
      const { log } = yield* consume(script, coordinator)
      expect(yield* eventually(hasAll(log, ["a6"]))).toBe(true)
      expect(log.events).toContain("Trimmed:A")
      expect(log.labels).toEqual(["a5", "a6"])
    }))

  it.live("data trimmed under an idle reader's iterator yields a Trimmed event and reading goes on", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams()
      script.addShard("A")
      script.append("A", "a1", "a2")
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator)
      expect(yield* eventually(hasAll(log, ["a2"]))).toBe(true)
      const [, a4] = script.append("A", "a3", "a4", "a5") // trimmed before the reader sees them
      script.trimThrough(a4!)
      expect(yield* eventually(hasAll(log, ["a5"]))).toBe(true)
      expect(log.labels).toEqual(["a1", "a2", "a5"])
      expect(log.events.filter((e) => e.startsWith("Trimmed"))).toEqual(["Trimmed:A"])
    }))

  it.live("throttling of every call is retried with backoff and nothing is lost", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams({ recordsPerPage: 2 })
      script.addShard("A")
      script.append("A", ...labels("a", 6))
      script.split("A", "B")
      script.append("B", "b1", "b2")
      script.fail("latestStreamArn", 1)
      script.fail("describeStream", 2)
      script.fail("getShardIterator", 2)
      script.fail("getRecords", 3)
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator, { ...fast, resyncMillis: 50 })
      expect(yield* eventually(hasAll(log, ["a6", "b2"]))).toBe(true)
      expect(log.labels).toEqual([...labels("a", 6), "b1", "b2"])
      for (const op of ["latestStreamArn", "describeStream", "getShardIterator", "getRecords"] as const) {
        expect(script.pendingFailures(op)).toBe(0)
      }
      // Each throttled shard call is followed by a pause (backoff: at least half of min(50 * 2^n, 50) ms).
      const shardCalls = script.calls.filter((c) => c.op === "getRecords" || c.op === "getShardIterator")
      const throttled = shardCalls.flatMap((
        c,
        i
      ) => (c.outcome === "Throttled" && shardCalls[i + 1] ? [[c, shardCalls[i + 1]!]] : []))
      expect(throttled.length).toBe(5)
      for (const [failed, next] of throttled) expect(next!.at - failed!.at).toBeGreaterThanOrEqual(20)
    }))

  it.live("DescribeStream paging (LastEvaluatedShardId) reads every page", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams({ pageSize: 2 })
      for (let i = 1; i <= 7; i++) {
        script.addShard(`S${i}`)
        script.append(`S${i}`, `s${i}`)
      }
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator)
      expect(yield* eventually(hasAll(log, labels("s", 7)))).toBe(true)
      expect([...log.labels].sort()).toEqual(labels("s", 7))
      const starts = script.calls.filter((c) => c.op === "describeStream").slice(0, 4).map((c) =>
        c.exclusiveStartShardId
      )
      expect(starts).toEqual([undefined, "S2", "S4", "S6"])
    }))

  it.live("inconsistent listings: a parent listed as open while its children exist, children listed first", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams({ listing: "childrenFirst", recordsPerPage: 1 })
      script.addShard("A")
      script.append("A", ...labels("a", 4))
      script.split("A", "B")
      script.append("B", "b1", "b2")
      script.split("B", "C")
      script.append("C", "c1")
      script.listAsOpen("A")
      script.listAsOpen("B")
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator)
      expect(yield* eventually(hasAll(log, ["a4", "b2", "c1"]))).toBe(true)
      expect(log.labels).toEqual(["a1", "a2", "a3", "a4", "b1", "b2", "c1"])
    }))

  it.live("inconsistent listings: a child whose parent disappeared from the listing is read", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams()
      script.addShard("A")
      script.append("A", "a1")
      script.split("A", "B")
      script.append("B", "b1", "b2")
      script.hide("A")
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator)
      expect(yield* eventually(hasAll(log, ["b1", "b2"]))).toBe(true)
      expect(log.labels).toEqual(["b1", "b2"])
      expect(script.count("getShardIterator", (c) => c.shardId === "A")).toBe(0)
    }))

  // Regression: readyShards ignores that the parent is still being read when a listing
  // leaves it out, so the child starts alongside its parent and its records overtake the parent's.
  it.live("a child does not overtake a parent this process is still reading when the listing leaves the parent out", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams()
      script.addShard("A")
      script.append("A", "a1")
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator, {
        ...fast,
        polling: { idleMillis: 400, maxBackoffMillis: 50 },
        resyncMillis: 30
      })
      expect(yield* eventually(hasAll(log, ["a1"]))).toBe(true)
      script.append("A", "a2")
      script.split("A", "C")
      script.append("C", "c1")
      script.hide("A")
      expect(yield* eventually(hasAll(log, ["a2", "c1"]))).toBe(true)
      expect(log.labels).toEqual(["a1", "a2", "c1"])
    }))

  it.live("a new stream ARN (streams disabled and re-enabled) is picked up and its records delivered", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams()
      script.addShard("A")
      script.append("A", "a1", "a2")
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator)
      expect(yield* eventually(hasAll(log, ["a2"]))).toBe(true)
      const oldArn = script.arn
      script.disableStream()
      yield* Effect.sleep(50)
      const newArn = script.enableStream("B")
      script.append("B", "b1", "b2")
      expect(yield* eventually(hasAll(log, ["b1", "b2"]))).toBe(true)
      expect(log.labels).toEqual(["a1", "a2", "b1", "b2"])
      expect(newArn).not.toBe(oldArn)
      expect(script.calls.some((c) => c.op === "getShardIterator" && c.arn === newArn && c.shardId === "B")).toBe(true)
    }))

  // Regression: once the table has a new stream, discovery lists only the new stream, so shards of
  // the old one that had not started yet (here a split child) are never read, and the new
  // stream starts at once instead of after the old one drained ("the old one drains first").
  it.live("the old stream drains first: its unread child shards are delivered before the new stream's records", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams()
      script.addShard("A")
      script.append("A", "a1")
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator)
      expect(yield* eventually(hasAll(log, ["a1"]))).toBe(true)
      script.append("A", "a2")
      script.split("A", "A1")
      script.append("A1", "c1", "c2")
      script.disableStream()
      script.enableStream("B")
      script.append("B", "b1")
      yield* eventually(hasAll(log, ["a2", "c1", "c2", "b1"]), 2_000)
      expect(log.labels).toEqual(["a1", "a2", "c1", "c2", "b1"])
    }))

  it.live("DescribeStream stays at 10 calls a second or fewer with a paced service, paging and many shard ends", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams({ pace: true, pageSize: 4 })
      for (let i = 1; i <= 24; i++) {
        script.addShard(`S${i}`)
        script.append(`S${i}`, `s${i}`)
        script.close(`S${i}`) // every shard ends at once: 24 wake-ups of discovery
      }
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator, { ...fast, resyncMillis: 20 })
      expect(yield* eventually(hasAll(log, labels("s", 24)))).toBe(true)
      yield* Effect.sleep(1_000)
      const times = script.calls.filter((c) => c.op === "describeStream").map((c) => c.at)
      expect(times.length).toBeGreaterThanOrEqual(10)
      for (let i = 0; i < times.length; i++) {
        expect(times.filter((t) => t >= times[i]! && t < times[i]! + 1_000).length).toBeLessThanOrEqual(11)
      }
    }))

  it.live("the reader itself lists at most ~10 times a second however many shards end (unpaced service)", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams()
      for (let i = 1; i <= 40; i++) script.addShard(`S${i}`)
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator, { ...fast, resyncMillis: 10 })
      // One shard ends every 15 ms for 600 ms.
      for (let i = 1; i <= 40; i++) {
        script.append(`S${i}`, `s${i}`)
        script.close(`S${i}`)
        yield* Effect.sleep(15)
      }
      expect(yield* eventually(hasAll(log, labels("s", 40)))).toBe(true)
      expect(log.events.filter((e) => e.startsWith("Ended"))).toHaveLength(40)
      const times = script.calls.filter((c) => c.op === "describeStream").map((c) => c.at)
      for (let i = 0; i < times.length; i++) {
        expect(times.filter((t) => t >= times[i]! && t < times[i]! + 1_000).length).toBeLessThanOrEqual(11)
      }
    }))

  it.live("reaching a shard's newest record is reported once per quiet spell (an empty batch: lag 0)", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams()
      script.addShard("A")
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator)
      script.append("A", "a1", "a2")
      expect(yield* eventually(() => log.caughtUp.length >= 1 && hasAll(log, ["a1", "a2"])())).toBe(true)
      yield* Effect.sleep(300) // many idle polls: still one report
      expect(log.caughtUp).toEqual(["A"])
      script.append("A", "a3")
      expect(yield* eventually(() => log.caughtUp.length >= 2 && hasAll(log, ["a3"])())).toBe(true)
      yield* Effect.sleep(200)
      expect(log.caughtUp).toEqual(["A", "A"])
    }))

  it.live("an idle shard is polled at the idle interval", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams()
      script.addShard("A")
      const { coordinator } = makeCoordinator()
      const { log } = yield* consume(script, coordinator, {
        ...fast,
        polling: { idleMillis: 100, maxBackoffMillis: 50 }
      })
      expect(yield* eventually(() => log.events.includes("Started:A"))).toBe(true)
      const before = script.count("getRecords")
      yield* Effect.sleep(1_000)
      const polls = script.count("getRecords") - before
      expect(polls).toBeGreaterThanOrEqual(5) // ~10 expected
      expect(polls).toBeLessThanOrEqual(14)
      // A record arriving on the idle shard is still picked up.
      script.append("A", "a1")
      expect(yield* eventually(hasAll(log, ["a1"]), 1_000)).toBe(true)
    }))

  it.effect("with TestClock: an idle shard makes no GetRecords call until the idle interval passes", () =>
    Effect.gen(function*() {
      const script = makeScriptedStreams()
      script.addShard("A")
      const { coordinator } = makeCoordinator()
      const started = yield* Deferred.make<void>()
      yield* readStream("scripted-table", coordinator, {
        ...fast,
        polling: { idleMillis: 1_000, maxBackoffMillis: 50 }
      }).pipe(
        Stream.runForEach((batch) => batch.ack.pipe(Effect.andThen(Deferred.succeed(started, undefined)))),
        Effect.provideService(StreamsApi, script.api),
        Effect.forkChild
      )
      yield* Deferred.await(started)
      yield* settle
      const afterFirst = script.count("getRecords")
      expect(afterFirst).toBe(1) // the first poll found nothing
      yield* TestClock.adjust(999)
      expect(script.count("getRecords")).toBe(afterFirst)
      yield* TestClock.adjust(1)
      yield* settle
      expect(script.count("getRecords")).toBe(afterFirst + 1)
      yield* TestClock.adjust(5_000)
      yield* settle
      expect(script.count("getRecords")).toBe(afterFirst + 6)
    }))
})
