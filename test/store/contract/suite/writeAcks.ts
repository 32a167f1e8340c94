/**
 * Contract of write acknowledgements: every write a store instance
 * acknowledges publishes, on the instance's `WriteAcks` and before its caller
 * is answered, exactly the events it appended; what the write returned names
 * them (the newest event of each key it wrote), a keep-alive's kept revision
 * and an atomic write's shared one included.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect } from "effect"
import { Action, Condition } from "../../../../src/domain/AtomicWrite.ts"
import type { AckedEvent, Acknowledgement } from "../../../../src/programs/store/WriteAcks.ts"
import { bytes, uniquePrefix } from "./Backend.ts"
import type { ContractBackend } from "./Backend.ts"

/** write acknowledgements: what each write appended, published when it is acknowledged */
export const writeAcksContract = (backend: ContractBackend) =>
  describe(`write acknowledgements (${backend.name})`, () => {
    const s = backend.storage("contract-write-acks")

    /** The key a caller wrote an acknowledged event under (events of sealed keys name their stored form too). */
    const shown = (event: Pick<AckedEvent, "key" | "realKey">) => event.realKey ?? event.key

    /** The (key, seq) pairs an acknowledgement names, in order. */
    const named = (events: ReadonlyArray<Pick<AckedEvent, "key" | "realKey" | "seq">>) =>
      events.map((event) => [shown(event), event.seq] as const)

    it.effect("every write operation publishes the events it appended, under the revision it returned", () =>
      Effect.gen(function*() {
        const { acks, store } = yield* s.openWithAcks()
        const heard: Array<Acknowledgement> = []
        yield* acks.subscribe((ack) => heard.push(ack))
        const p = uniquePrefix("ops")
        const a = `${p}a`
        /** Runs a write, checks it published one acknowledgement with these events, and returns its result. */
        const expectAck = <A, E, R>(
          write: Effect.Effect<A, E, R>,
          revision: (result: A) => string | undefined,
          events: ReadonlyArray<readonly [string, number, string]>
        ) =>
          Effect.gen(function*() {
            const before = heard.length
            const result = yield* write
            expect(heard.length - before).toBe(1)
            const ack = heard.at(-1)!
            expect(ack.revision).toBe(revision(result))
            expect(ack.events.map((event) => [shown(event), event.seq, event.op])).toEqual(events)
            return result
          })

        const created = yield* expectAck(store.create({ key: a, value: bytes("1") }), (l) => l.revision, [
          [a, 1, "put"]
        ])
        expect(named(acks.eventsOf(created.revision)!)).toEqual([[a, 1]])
        const put = yield* expectAck(store.put({ key: a, value: bytes("2") }), (l) => l.revision, [[a, 2, "put"]])
        const updated = yield* expectAck(store.update({ key: a, value: bytes("3") }), (l) => l.revision, [
          [a, 3, "put"]
        ])
        const swapped = yield* expectAck(
          store.compareAndSwap({ key: a, value: bytes("3") }, { key: a, value: bytes("4") }),
          (l) => l.revision,
          [[a, 4, "put"]]
        )
        const conditional = yield* expectAck(
          store.conditionalUpdate({ key: a, value: bytes("5"), revision: swapped.revision }),
          (l) => l.revision,
          [[a, 5, "put"]]
        )
        const now = yield* Clock.currentTimeMillis
        const kept = yield* expectAck(store.keepAlive(conditional, now + 60_000), (l) => l.revision, [
          [a, 6, "keep-alive"]
        ])
        // The kept lease names the put's revision; what it names now is the keep-alive, the key's newest event.
        expect(kept.revision).toBe(conditional.revision)
        expect(named(acks.eventsOf(kept.revision)!)).toEqual([[a, 6]])
        for (const lease of [created, put, updated, swapped]) {
          expect(named(acks.eventsOf(lease.revision)!)).toHaveLength(1)
        }
        yield* expectAck(store.conditionalDelete(a, kept.revision), () => heard.at(-1)!.events[0]!.revision, [
          [a, 7, "delete"]
        ])
        yield* store.put({ key: a, value: bytes("8") })
        yield* expectAck(store.delete(a), () => heard.at(-1)!.events[0]!.revision, [[a, 9, "delete"]])

        const keys = Array.from({ length: 64 }, (_, i) => `${p}m${String(i).padStart(2, "0")}`)
        const revision = yield* expectAck(
          store.atomicWrite(
            keys.map((key) => ({ key, condition: Condition.whatever, action: Action.put(bytes(key)) }))
          ),
          (r) => r,
          keys.map((key) => [key, 1, "put"] as const)
        )
        expect(named(acks.eventsOf(revision)!).sort()).toEqual(keys.map((key) => [key, 1]))
        // A delete of an absent key appends nothing, so the write names only what it changed.
        yield* expectAck(
          store.atomicWrite([
            { key: keys[0]!, condition: Condition.exists, action: Action.delete },
            { key: `${p}absent`, condition: Condition.whatever, action: Action.delete }
          ]),
          (r) => r,
          [[keys[0]!, 2, "delete"]]
        )

        const before = heard.length
        expect(yield* store.deleteRange(keys[1]!, keys[63]!)).toBe(63)
        const deletes = heard.slice(before)
        expect(deletes.flatMap((ack) => ack.events.map((event) => [shown(event), event.seq, event.op])).sort()).toEqual(
          keys.slice(1).map((key) => [key, 2, "delete"])
        )
        expect(new Set(heard.map((ack) => ack.ordinal)).size).toBe(heard.length)
        expect(heard.map((ack) => ack.ordinal)).toEqual([...heard.map((ack) => ack.ordinal)].sort((x, y) => x - y))
      }))

    it.effect("a write that appends nothing publishes nothing; an expiry it records is published", () =>
      Effect.gen(function*() {
        const { acks, store } = yield* s.openWithAcks()
        const heard: Array<Acknowledgement> = []
        yield* acks.subscribe((ack) => heard.push(ack))
        const p = uniquePrefix("none")
        const lease = yield* store.put({ key: `${p}k`, value: bytes("v") })
        heard.length = 0
        yield* Effect.flip(store.create({ key: `${p}k`, value: bytes("again") }))
        yield* Effect.flip(store.conditionalUpdate({ key: `${p}k`, value: bytes("w"), revision: "nope" }))
        yield* Effect.flip(store.delete(`${p}absent`))
        yield* Effect.flip(
          store.atomicWrite([{ key: `${p}k`, condition: Condition.notExists, action: Action.put(bytes("x")) }])
        )
        expect(heard).toEqual([])
        expect(acks.eventsOf("nope")).toBeUndefined()

        const now = yield* Clock.currentTimeMillis
        yield* store.keepAlive(lease, now + 1000)
        heard.length = 0
        yield* backend.advance(1000)
        // The expiry is recorded once, by the store's timer or by the update that meets it, and published once.
        expect((yield* Effect.flip(store.update({ key: `${p}k`, value: bytes("late") })))._tag).toBe("NotFound")
        expect(heard.flatMap((ack) => ack.events.map((event) => [shown(event), event.seq, event.op]))).toEqual([
          [`${p}k`, 3, "expire"]
        ])
      }))
  })
