/**
 * The acknowledgement feed itself: listeners hear every acknowledgement in
 * order while subscribed, a revision names the newest event of each key its
 * writes appended, and only the newest revisions are remembered.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import type { Event } from "../../src/domain/Event.ts"
import * as WriteAcks from "../../src/programs/store/WriteAcks.ts"

const event = (key: string, seq: number, revision: string, op: Event["op"] = "put"): Event => ({
  key,
  seq,
  revision,
  op,
  timestamp: 0
})

describe("WriteAcks", () => {
  it.effect("a revision names the newest event of each key its writes appended, a keep-alive's merged in", () =>
    Effect.gen(function*() {
      const acks = WriteAcks.make()
      yield* acks.subscribe(() => {})
      acks.publish("r1", [event("/a", 1, "r1"), event("/b", 4, "r1")])
      acks.publish("r1", [{ ...event("/a", 2, "k1", "keep-alive"), valueRevision: "r1" }])
      expect(acks.eventsOf("r1")).toEqual([
        { key: "/a", seq: 2, ordinal: 2 },
        { key: "/b", seq: 4, ordinal: 1 }
      ])
      // An older event published late does not hide the newer one.
      acks.publish("r1", [event("/b", 3, "r1")])
      expect(acks.eventsOf("r1")?.find((acked) => acked.key === "/b")?.seq).toBe(4)
      expect(acks.eventsOf("unknown")).toBeUndefined()
      expect(acks.ordinal()).toBe(3)
    }))

  it.effect("nothing appended is nothing to acknowledge; a write with no revision is heard but not remembered", () =>
    Effect.gen(function*() {
      const acks = WriteAcks.make()
      const heard: Array<WriteAcks.Acknowledgement> = []
      yield* acks.subscribe((ack) => heard.push(ack))
      acks.publish("r0", [])
      acks.publish(undefined, [event("/a", 1, "e1", "expire")])
      expect(acks.ordinal()).toBe(1)
      expect(heard.map((ack) => [ack.revision, ack.ordinal, ack.events.length])).toEqual([[undefined, 1, 1]])
      expect(acks.eventsOf("e1")).toBeUndefined()
    }))

  it.effect("listeners hear acknowledgements in order until their scope closes", () =>
    Effect.gen(function*() {
      const acks = WriteAcks.make()
      const scope = yield* Scope.make()
      const heard: Array<number> = []
      yield* acks.subscribe((ack) => heard.push(ack.ordinal)).pipe(Scope.provide(scope))
      acks.publish("r1", [event("/a", 1, "r1")])
      acks.publish("r2", [event("/a", 2, "r2")])
      yield* Scope.close(scope, Exit.void)
      acks.publish("r3", [event("/a", 3, "r3")])
      expect(heard).toEqual([1, 2])
      // With nobody listening nothing is remembered: a view made later only looks up writes made after it.
      expect(acks.eventsOf("r2")?.map((acked) => acked.seq)).toEqual([2])
      expect(acks.eventsOf("r3")).toBeUndefined()
    }))

  // Was a cost on every write: the store's own watch feed always listens, so every revision of a process without
  // views was remembered (up to 100,000 of them) for lookups nobody would make.
  it.effect("a listener that looks nothing up hears every write, but nothing is remembered for it", () =>
    Effect.gen(function*() {
      const acks = WriteAcks.make()
      const heard: Array<number> = []
      yield* acks.subscribe((ack) => heard.push(ack.ordinal), { remember: false })
      acks.publish("r1", [event("/a", 1, "r1")])
      expect(heard).toEqual([1])
      expect(acks.eventsOf("r1")).toBeUndefined()
      const scope = yield* Scope.make()
      yield* acks.subscribe(() => {}).pipe(Scope.provide(scope))
      acks.publish("r2", [event("/a", 2, "r2")])
      expect(acks.eventsOf("r2")?.map((acked) => acked.seq)).toEqual([2])
      yield* Scope.close(scope, Exit.void)
      acks.publish("r3", [event("/a", 3, "r3")])
      expect(heard).toEqual([1, 2, 3])
      expect(acks.eventsOf("r3")).toBeUndefined()
    }))

  it.effect("only the newest revisions are remembered, the oldest acknowledged forgotten first", () =>
    Effect.gen(function*() {
      const acks = WriteAcks.make({ rememberedRevisions: 2 })
      yield* acks.subscribe(() => {})
      acks.publish("r1", [event("/a", 1, "r1")])
      acks.publish("r2", [event("/b", 1, "r2")])
      // Acknowledging r1 again makes it the newest, so r2 is the one to go.
      acks.publish("r1", [{ ...event("/a", 2, "k", "keep-alive"), valueRevision: "r1" }])
      acks.publish("r3", [event("/c", 1, "r3")])
      expect(acks.eventsOf("r2")).toBeUndefined()
      expect(acks.eventsOf("r1")?.map((acked) => acked.seq)).toEqual([2])
      expect(acks.eventsOf("r3")?.map((acked) => acked.key)).toEqual(["/c"])
    }))
})
