/**
 * Compaction by the worker's history projection: superseded events move to
 * the history area, each key's newest value stays live, a deleted key's
 * tombstone leaves last (for its grave), `history` and `getAt` still read the
 * whole past, a deleted key is absent at every moment while its events are
 * being moved, and a re-created key continues its seq numbering.
 */
import { PutItemCommand } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Stream } from "effect"
import * as Key from "../../src/domain/Key.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { EventTable } from "../../src/infra/EventTable.ts"
import * as GraveRecord from "../../src/infra/GraveRecord.ts"
import { HistoryArea } from "../../src/infra/HistoryArea.ts"
import { freedMarkerMillis, historyPartition } from "../../src/infra/HistoryRecord.ts"
import * as History from "../../src/programs/store/History.ts"
import { rawGraves, rawPartition } from "../support/RawTable.ts"
import { eventTableLayer, openCompaction, openStore } from "../support/TestStore.ts"
import { archivedEvents, bytes, eventually, freshEnv, liveEvents, startWorker, text } from "./support.ts"
import type { Env } from "./support.ts"

const graves = (env: Env) => Effect.promise(() => rawGraves(env.client, env.location))

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1)
const pause = Effect.sleep(5) // distinct event timestamps, so points in time are unambiguous

describe("history", () => {
  it.live(
    "compaction leaves only the newest event per key live, archives the rest, and history/getAt read the past",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-history")
        const store = yield* openStore(env.location, { client: env.client })
        yield* startWorker(env, { group: "history" })
        const a = "/h/a"
        const b = "/h/b"
        const c = "/h/c"
        const revisions: Array<{ key: string; revision: string; value: string }> = []
        const times: Array<{ key: string; millis: number; value: string | undefined }> = []
        const write = (key: string, value: string) =>
          Effect.gen(function*() {
            const lease = yield* store.put({ key, value: bytes(value) })
            revisions.push({ key, revision: lease.revision, value })
            yield* pause
            times.push({ key, millis: Date.now(), value })
            yield* pause
          })
        const before = Date.now()
        yield* pause
        for (let i = 1; i <= 4; i++) yield* write(a, `a${i}`)
        yield* write(b, "b1")
        yield* write(b, "b2")
        yield* store.delete(b)
        yield* pause
        times.push({ key: b, millis: Date.now(), value: undefined })
        yield* pause
        yield* write(c, "c1")
        const shared = yield* store.atomicWrite([
          { key: a, condition: { _tag: "Exists" }, action: { _tag: "Put", value: bytes("a5") } },
          { key: c, condition: { _tag: "Exists" }, action: { _tag: "Put", value: bytes("c2") } }
        ])
        revisions.push({ key: a, revision: shared, value: "a5" }, { key: c, revision: shared, value: "c2" })
        const newest = new Map([[a, 5], [b, 3], [c, 2]])

        // The live range eventually holds exactly the newest event of each key; the history area all older ones.
        yield* eventually(
          "compaction done",
          Effect.gen(function*() {
            const live = yield* liveEvents(env)
            expect(live.map((event) => [event.key, event.seq])).toEqual([[a, 5], [c, 2]])
            const archived = yield* archivedEvents(env)
            expect(archived.map((event) => [event.key, event.seq])).toEqual([
              [a, 1],
              [a, 2],
              [a, 3],
              [a, 4],
              [b, 1],
              [b, 2],
              [b, 3],
              [c, 1]
            ])
          })
        )
        expect((yield* archivedEvents(env)).find((event) => event.key === b && event.seq === 3)?.op).toBe("delete")
        expect((yield* graves(env)).map((event) => [event.key, event.seq, event.op])).toEqual([[b, 3, "delete"]])

        // history: every event, in seq order, decrypted.
        for (const [key, n] of newest) {
          const events = [...(yield* Stream.runCollect(store.history(key)))]
          expect(events.map((event) => event.seq), key).toEqual(range(n))
          const values = events.map((event) => (event.value ? text(event.value) : event.op))
          if (key === a) expect(values).toEqual(["a1", "a2", "a3", "a4", "a5"])
          if (key === b) expect(values).toEqual(["b1", "b2", "delete"])
          if (key === c) expect(values).toEqual(["c1", "c2"])
        }
        // getAt a revision: the item right after it was written.
        for (const { key, revision, value } of revisions) {
          const item = yield* store.getAt(key, { _tag: "Revision", revision })
          expect([item.key, text(item.value), item.revision]).toEqual([key, value, revision])
        }
        // getAt a time: the item then, absent before the first write and after the delete.
        for (const { key, millis, value } of times) {
          const item = yield* Effect.result(store.getAt(key, { _tag: "Time", millis }))
          if (value === undefined) {
            expect(item._tag === "Failure" && item.failure._tag, `${key}@${millis}`).toBe("NotFound")
          } else expect(item._tag === "Success" && text(item.success.value), `${key}@${millis}`).toBe(value)
        }
        const tooEarly = yield* Effect.flip(store.getAt(a, { _tag: "Time", millis: before }))
        expect(tooEarly._tag).toBe("NotFound")
        // The present is unchanged by compaction.
        expect((yield* store.getRange("/h/", Key.rangeEnd("/h/"))).map((item) => [item.key, text(item.value)])).toEqual(
          [[a, "a5"], [c, "c2"]]
        )

        // A store that never saw b re-creates it: the grave continues its numbering, and history follows on.
        const other = yield* openStore(env.location, { client: env.client })
        expect((yield* Effect.flip(other.get(b)))._tag).toBe("NotFound")
        yield* other.create({ key: b, value: bytes("b-again") })
        const events = [...(yield* Stream.runCollect(other.history(b)))]
        expect(events.map((event) => [event.seq, event.value ? text(event.value) : event.op])).toEqual([
          [1, "b1"],
          [2, "b2"],
          [3, "delete"],
          [4, "b-again"]
        ])
        expect(text((yield* store.get(b)).value)).toBe("b-again")
      }),
    60_000
  )

  it.live(
    "with retention none compaction leaves a marker for a freed seq 1: no value, a TTL, and unseen by history reads",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-history-freed")
        const writer = yield* openStore(env.location, { client: env.client })
        const compaction = yield* openCompaction(env.location, env.client)
        const key = "/freed/k"
        yield* writer.put({ key, value: bytes("v1") })
        yield* pause
        yield* writer.put({ key, value: bytes("v2") })
        yield* writer.put({ key, value: bytes("v3") })
        yield* pause
        const before = Date.now()
        yield* compaction.all(() => Effect.void, { settleMillis: 1, retention: { _tag: "None" } })
        expect((yield* liveEvents(env)).map((event) => event.seq)).toEqual([3])
        const raw = yield* Effect.promise(() =>
          rawPartition(env.client, env.location.table, historyPartition(env.location))
        )
        // Only seq 1 is marked (a first append names no other seq), and the marker holds nothing of the event.
        expect(raw).toHaveLength(1)
        const marker = raw[0]!
        expect(Object.keys(marker).sort()).toEqual([Attr.partition, Attr.sort, "freed", Attr.ttl].sort())
        const expiresAt = Number(marker[Attr.ttl]!.N) * 1000
        expect(expiresAt).toBeGreaterThanOrEqual(before + freedMarkerMillis)
        expect(expiresAt).toBeLessThan(Date.now() + freedMarkerMillis + 1000)
        expect(yield* archivedEvents(env)).toEqual([])
        const past = [...(yield* Stream.runCollect(writer.history(key)))]
        expect(past.map((event) => `${event.op}@${event.seq}`)).toEqual(["put@3"])
        expect((yield* Effect.flip(writer.getAt(key, { _tag: "Time", millis: before - 1000 })))._tag).toBe("NotFound")
        // Compacting again leaves the marker as it is.
        yield* compaction.all(() => Effect.void, { settleMillis: 1, retention: { _tag: "None" } })
        const again = yield* Effect.promise(() =>
          rawPartition(env.client, env.location.table, historyPartition(env.location))
        )
        expect(again).toEqual(raw)

        // Writers in fenced mode need no marker (their landing check covers a late first append): none is written.
        const other = "/freed/fenced"
        yield* writer.put({ key: other, value: bytes("v1") })
        yield* writer.put({ key: other, value: bytes("v2") })
        yield* pause
        yield* compaction.all(() => Effect.void, { settleMillis: 1, retention: { _tag: "None" }, writerMode: "fenced" })
        expect((yield* liveEvents(env)).map((event) => `${event.key}@${event.seq}`)).toEqual([`${other}@2`, `${key}@3`])
        const after = yield* Effect.promise(() =>
          rawPartition(env.client, env.location.table, historyPartition(env.location))
        )
        expect(after).toEqual(raw)
      }),
    30_000
  )

  it.live(
    "with retention none a buried key still continues its numbering, and a stale cache cannot double a seq",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-history-none")
        const writer = yield* openStore(env.location, { client: env.client })
        yield* startWorker(env, { group: "history-none", retention: { _tag: "None" } })
        const key = "/n/k"
        for (let round = 0; round < 3; round++) {
          yield* writer.create({ key, value: bytes(`v${round}`) })
          yield* writer.put({ key, value: bytes(`w${round}`) })
          yield* writer.delete(key)
          const buriedAt = 3 * (round + 1)
          yield* eventually(
            `round ${round} buried`,
            Effect.gen(function*() {
              expect((yield* liveEvents(env)).filter((event) => event.key === key)).toEqual([])
              expect((yield* graves(env)).map((event) => [event.key, event.seq])).toEqual([[key, buriedAt]])
            }),
            20_000
          )
          // A fresh store (no cache) reads the grave; the writer's cache already knows the tombstone.
          const fresh = yield* openStore(env.location, { client: env.client })
          expect((yield* Effect.flip(fresh.get(key)))._tag).toBe("NotFound")
        }
        expect(yield* archivedEvents(env)).toEqual([])
        // With no history kept, a buried key's past is its grave: the delete, at the seq it reached.
        const past = [...(yield* Stream.runCollect(writer.history(key)))]
        expect(past.map((event) => `${event.op}@${event.seq}`)).toEqual(["delete@9"])
        const recreated = yield* openStore(env.location, { client: env.client })
        yield* recreated.create({ key, value: bytes("last") })
        // The stale writer's next write must not take seq 10 again: it conflicts, re-reads, and takes 11.
        yield* writer.put({ key, value: bytes("later") })
        const live = (yield* liveEvents(env)).filter((event) => event.key === key)
        expect(live.at(-1)?.seq).toBe(11)
        expect(text((yield* recreated.get(key)).value)).toBe("later")
      }),
    60_000
  )

  it.live(
    "the worker moves events only once they settled: superseded ones after their successor, tombstones after themselves",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-history-settle")
        const store = yield* openStore(env.location, { client: env.client })
        const settleMillis = 1500
        yield* startWorker(env, { group: "history-settle", settleMillis })
        for (let i = 1; i <= 3; i++) yield* store.put({ key: "/s/kept", value: bytes(`v${i}`) })
        yield* store.put({ key: "/s/gone", value: bytes("x") })
        yield* store.delete("/s/gone")
        const wroteAt = Date.now()
        // The worker has seen every event well before they settle, and must leave them where they are.
        yield* Effect.sleep(settleMillis / 2)
        expect(Date.now() - wroteAt).toBeLessThan(settleMillis)
        expect((yield* liveEvents(env)).map((event) => `${event.key}@${event.seq}`)).toEqual([
          "/s/gone@1",
          "/s/gone@2",
          "/s/kept@1",
          "/s/kept@2",
          "/s/kept@3"
        ])
        // Its timer comes back for them once settled, with no further event on those keys.
        yield* eventually(
          "settled events moved",
          Effect.gen(function*() {
            expect((yield* liveEvents(env)).map((event) => `${event.key}@${event.seq}`)).toEqual(["/s/kept@3"])
            expect((yield* graves(env)).map((event) => `${event.key}@${event.seq}`)).toEqual(["/s/gone@2"])
          }),
          20_000
        )
      }),
    40_000
  )

  it.live(
    "Compaction.all (the history rebuild) moves superseded events and buries tombstones, reporting progress per key",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-history-rebuild")
        const store = yield* openStore(env.location, { client: env.client })
        for (const key of ["/r/a", "/r/b", "/r/c"]) {
          for (let i = 0; i < 3; i++) yield* store.put({ key, value: bytes(`${key}#${i}`) })
        }
        yield* store.delete("/r/b")
        const compaction = yield* openCompaction(env.location, env.client)
        const progress: Array<[number, number]> = []
        const pass = yield* compaction.all(
          (done, total) => Effect.sync(() => progress.push([done, total])),
          { settleMillis: 0 }
        )
        expect(pass).toEqual({ keys: 3, pending: [] })
        expect(progress).toEqual([[1, 3], [2, 3], [3, 3]])
        expect((yield* liveEvents(env)).map((event) => `${event.key}@${event.seq}`)).toEqual(["/r/a@3", "/r/c@3"])
        expect((yield* graves(env)).map((event) => `${event.key}@${event.seq}:${event.op}`)).toEqual(["/r/b@4:delete"])
        expect((yield* archivedEvents(env)).map((event) => `${event.key}@${event.seq}`)).toEqual([
          "/r/a@1",
          "/r/a@2",
          "/r/b@1",
          "/r/b@2",
          "/r/b@3",
          "/r/b@4",
          "/r/c@1",
          "/r/c@2"
        ])
        // Running it again finds nothing more to do and changes nothing.
        expect((yield* compaction.all(() => Effect.void, { settleMillis: 0 })).keys).toBe(2)
        expect((yield* archivedEvents(env)).length).toBe(8)
      }),
    30_000
  )

  it.live(
    "history leaves out archived copies whose retention ran out, before DynamoDB's TTL gets round to them",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-history-ttl")
        const store = yield* openStore(env.location, { client: env.client })
        for (let i = 1; i <= 3; i++) yield* store.put({ key: "/t/k", value: bytes(`v${i}`) })
        const compaction = yield* openCompaction(env.location, env.client)
        yield* compaction.all(() => Effect.void, {
          retention: { _tag: "For", millis: 1 },
          settleMillis: 0
        })
        const seqs = Effect.map(
          Stream.runCollect(store.history("/t/k")),
          (events) => [...events].map((event) => event.seq)
        )
        expect((yield* archivedEvents(env)).length).toBe(2)
        // The copies carry a TTL about a second out; once past it they are history no more, stored or not.
        yield* eventually("retention ran out", Effect.map(seqs, (got) => expect(got).toEqual([3])), 5_000)
      }),
    20_000
  )

  it.live("a deleted key is absent at every moment while compaction moves its events", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("worker-history-delete")
      const store = yield* openStore(env.location, { client: env.client })
      const deleted = Array.from({ length: 6 }, (_, i) => `/d/gone${i}`)
      const kept = "/d/kept"
      // Long histories written before any worker runs, so all compaction happens while the checker reads.
      for (const key of deleted) {
        for (let i = 0; i < 12; i++) yield* store.put({ key, value: bytes(`${key}#${i}`) })
        yield* store.delete(key)
      }
      for (let i = 0; i < 12; i++) yield* store.put({ key: kept, value: bytes(`kept#${i}`) })

      let checks = 0
      const violations: Array<string> = []
      const checker = yield* Effect.gen(function*() {
        while (true) {
          for (const key of deleted) {
            const got = yield* Effect.result(store.get(key))
            if (got._tag === "Success" || got.failure._tag !== "NotFound") violations.push(`get ${key}: ${got._tag}`)
          }
          const items = yield* store.getRange("/d/", Key.rangeEnd("/d/"))
          const keys = items.map((item) => item.key)
          if (keys.length !== 1 || keys[0] !== kept) violations.push(`getRange: ${JSON.stringify(keys)}`)
          const descending = yield* Stream.runCollect(
            store.items({ start: "/d/", end: Key.rangeEnd("/d/"), descending: true })
          )
          if ([...descending].map((item) => item.key).join() !== kept) {
            violations.push(`items descending: ${descending.length}`)
          }
          checks++
        }
      }).pipe(Effect.forkChild)

      const beforeWorker = checks
      yield* startWorker(env, { group: "history-delete" })
      yield* eventually(
        "compaction done",
        Effect.gen(function*() {
          const live = yield* liveEvents(env)
          expect(live.map((event) => `${event.key}@${event.seq}:${event.op}`)).toEqual([`${kept}@12:put`])
          expect((yield* graves(env)).map((event) => `${event.key}@${event.seq}:${event.op}`)).toEqual(
            deleted.map((key) => `${key}@13:delete`)
          )
        }),
        30_000
      )
      const atEnd = checks
      yield* eventually(
        "a few more checks after compaction",
        Effect.sync(() => expect(checks).toBeGreaterThan(atEnd + 3)),
        10_000,
        20
      )
      yield* Fiber.interrupt(checker)

      expect(violations).toEqual([])
      // Two checks ending while compaction ran means at least one ran wholly inside it. A count over the whole test
      // said less: on a loaded two-core machine every check is slower, and compaction with it.
      expect(atEnd - beforeWorker).toBeGreaterThanOrEqual(2)
      expect((yield* archivedEvents(env)).length).toBe(6 * 13 + 11)
      for (const key of deleted) {
        const events = [...(yield* Stream.runCollect(store.history(key)))]
        expect(events.map((event) => event.op)).toEqual([...Array.from({ length: 12 }, () => "put"), "delete"])
        expect((yield* Effect.flip(store.get(key)))._tag).toBe("NotFound")
      }
    }), 60_000)

  it.live(
    "a burial stopped after the grave was filed, before the tombstone left: the key stays deleted, its tombstone's " +
      "landing is not a freed seq, history has each event once, and the next compaction finishes it",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-history-half-buried")
        const store = yield* openStore(env.location, { client: env.client })
        const key = "/half/k"
        yield* store.put({ key, value: bytes("v1") })
        yield* store.delete(key)
        const context = yield* Layer.build(
          HistoryArea.layer.pipe(Layer.provideMerge(eventTableLayer(env.location, { client: env.client })))
        )
        const table = Context.get(context, EventTable)
        const area = Context.get(context, HistoryArea)
        // The burial's first two steps by hand (the copy, the grave), as a compactor that stopped there left them.
        const [, tombstone] = yield* Stream.runCollect(area.upTo(key, 2))
        yield* area.archive(tombstone!, undefined)
        yield* Effect.promise(() =>
          env.client.send(
            new PutItemCommand({
              TableName: env.location.table,
              Item: GraveRecord.fromTombstone(env.location, key, tombstone!.item)
            })
          )
        )
        expect((yield* graves(env)).map((event) => `${event.key}@${event.seq}`)).toEqual([`${key}@2`])
        expect((yield* Effect.flip(store.get(key)))._tag).toBe("NotFound")
        const events = [...yield* Stream.runCollect(store.history(key))]
        expect(events.map((event) => `${event.seq}:${event.op}`)).toEqual(["1:put", "2:delete"])
        // A late acknowledgement of the delete finds its own tombstone in the grave: not a write into a freed seq.
        expect(yield* table.landing(events[1]!)).toBe("Newest")

        const compaction = yield* openCompaction(env.location, env.client)
        yield* compaction.all(() => Effect.void, { settleMillis: 0 })
        expect(yield* liveEvents(env)).toEqual([])
        expect((yield* graves(env)).map((event) => `${event.key}@${event.seq}`)).toEqual([`${key}@2`])
        expect((yield* archivedEvents(env)).map((event) => `${event.key}@${event.seq}`)).toEqual([
          `${key}@1`,
          `${key}@2`
        ])
        yield* store.put({ key, value: bytes("again") })
        expect((yield* Stream.runCollect(store.history(key))).map((event) => event.seq)).toEqual([1, 2, 3])
      }),
    30_000
  )

  /**
   * History.events reads the history area first and the live range second. Compaction copies an event to
   * the history area and then removes it from the live range; when that happens between the two reads the
   * event is in neither answer. Here the move is made to happen exactly there (deterministically) by a
   * HistoryArea whose `archived` stream moves the key's oldest live superseded event when it ends.
   */
  it.live(
    "history and getAt see every event even when compaction moves one between their two reads",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("worker-history-race")
        const store = yield* openStore(env.location, { client: env.client })
        const key = "/race/k"
        const leases = []
        for (let i = 1; i <= 4; i++) leases.push(yield* store.put({ key, value: bytes(`v${i}`) }))
        const context = yield* Layer.build(
          HistoryArea.layer.pipe(Layer.provideMerge(eventTableLayer(env.location, { client: env.client })))
        )
        const table = Context.get(context, EventTable)
        const area = Context.get(context, HistoryArea)
        // What the history projection does for seq 4, one event at a time: archive, then remove from the live range.
        const compactOne = Effect.gen(function*() {
          const [oldest] = yield* Stream.runCollect(Stream.take(area.upTo(key, 3), 1))
          if (oldest === undefined) return
          yield* area.archive(oldest, undefined)
          yield* area.removeLive(oldest)
        })
        yield* compactOne // seq 1 is archived before the read starts
        let moveDuringRead = true
        const racing = HistoryArea.of({
          ...area,
          archived: (k) =>
            Stream.concat(
              area.archived(k),
              Stream.fromEffect(Effect.suspend(() => (moveDuringRead ? compactOne : Effect.void))).pipe(Stream.drain)
            )
        })

        const seqs = [...(yield* Stream.runCollect(History.events(table, racing, key)))].map((event) => event.seq)
        // getAt the revision of the event moved during the read: it was written, so it must be found.
        const moved = yield* Effect.result(
          History.itemAt(table, racing, key, { _tag: "Revision", revision: leases[2]!.revision })
        )
        moveDuringRead = false
        const afterwards = [...(yield* Stream.runCollect(History.events(table, racing, key)))].map((event) => event.seq)

        expect(afterwards).toEqual([1, 2, 3, 4]) // with no concurrent move, all is there
        expect({ seqsReadDuringCompaction: seqs, getAtRevision3: moved._tag }).toEqual({
          seqsReadDuringCompaction: [1, 2, 3, 4],
          getAtRevision3: "Success"
        })
      }),
    30_000
  )
})
