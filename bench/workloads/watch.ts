/**
 * Watch latency: from a write's acknowledgement to its event's delivery through the public `store.watch` (which
 * reads the table's stream itself; the projection worker plays no part in it), for writes of the watching store
 * instance and of another instance (as another process's), beside the peer polling its stream as Teleport does.
 */
import { Deferred, Effect, Stream } from "effect"
import type { StoreService } from "../../src/programs/store/Store.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import * as PeerWatch from "../peer/PeerWatch.ts"
import type { Figure, Row } from "../Report.ts"
import { figureOf } from "../Report.ts"
import * as Dynastate from "../support/Dynastate.ts"
import { sampleOf } from "../support/Measure.ts"

const writesOf = (env: BenchEnv) => (env.options.quick ? 3 : 40)

/** Delivery minus acknowledgement per revision (0 when the event came first), failing if any never came. */
const latencies = (name: string, acked: Map<string, number>, delivered: Map<string, number>) =>
  Effect.gen(function*() {
    const missing = [...acked.keys()].filter((revision) => !delivered.has(revision))
    if (missing.length > 0) {
      return yield* Effect.die(new Error(`${name}: ${missing.length} of ${acked.size} writes never reached the watch`))
    }
    return [...acked].map(([revision, at]) => Math.max(0, delivered.get(revision)! - at))
  })

/** Waits until every acknowledged revision was delivered, or `timeoutMillis` passed. */
const settle = (acked: Map<string, number>, delivered: Map<string, number>, timeoutMillis: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (Date.now() < deadline && [...acked.keys()].some((revision) => !delivered.has(revision))) {
      yield* Effect.sleep(20)
    }
  })

/** Writes through `writer` one at a time, `gapMillis` apart, while `watcher` watches; latencies in ms. */
const dynastateLatency = (env: BenchEnv, watcher: StoreService, writer: StoreService, prefix: string) =>
  Effect.scoped(Effect.gen(function*() {
    const delivered = new Map<string, number>()
    const acked = new Map<string, number>()
    const initialised = yield* Deferred.make<void>()
    yield* watcher.watch({ prefixes: [prefix] }).pipe(
      Stream.runForEach((event) =>
        Effect.sync(() => {
          if (event._tag === "Init") Deferred.doneUnsafe(initialised, Effect.void)
          else if (event._tag === "Put") delivered.set(event.item.revision, performance.now())
        })
      ),
      Effect.forkScoped
    )
    yield* Deferred.await(initialised)
    for (let i = 0; i < writesOf(env); i++) {
      const lease = yield* writer.put({ key: `${prefix}${i % 4}`, value: env.value })
      acked.set(lease.revision, performance.now())
      yield* Effect.sleep(50 + Math.random() * 50)
    }
    yield* settle(acked, delivered, 30_000)
    return yield* latencies("dynastate watch", acked, delivered)
  }))

const peerLatency = (env: BenchEnv, prefix: string) =>
  Effect.scoped(Effect.gen(function*() {
    const delivered = new Map<string, number>()
    const acked = new Map<string, number>()
    yield* PeerWatch.watch(env.peerClients, env.peer.table, (change) => {
      if (change.key.startsWith(prefix)) delivered.set(change.revision, performance.now())
    })
    for (let i = 0; i < writesOf(env); i++) {
      const revision = yield* env.peer.put(`${prefix}${i % 4}`, env.value)
      acked.set(revision, performance.now())
      yield* Effect.sleep(50 + Math.random() * 50)
    }
    yield* settle(acked, delivered, 30_000)
    return yield* latencies("peer watch", acked, delivered)
  }))

const figure = (values: ReadonlyArray<number>): Figure => {
  const { p50, p99 } = figureOf(sampleOf(values, 1))
  return { p50, p99 }
}

/** Watch latency of own writes and of another instance's. */
export const watchLatency: Workload = {
  name: "watch",
  run: (env) =>
    Effect.gen(function*() {
      const other = yield* Dynastate.open({
        clients: env.dynastateClients,
        location: { table: env.dynastateTable, namespace: "bench" },
        key: env.key,
        calls: env.keyringCalls
      })
      const peer = figure(yield* peerLatency(env, "/watch/peer/"))
      const own = figure(yield* dynastateLatency(env, env.dynastate, env.dynastate, "/watch/own/"))
      const others = figure(yield* dynastateLatency(env, env.dynastate, other.store, "/watch/other/"))
      const note = `peer polls every ${PeerWatch.teleportPollMillis} ms as Teleport`
      return [
        { workload: "watch latency, own writes (ack → event)", peer, dynastate: own, better: "lower", note },
        { workload: "watch latency, another instance's writes", peer, dynastate: others, better: "lower" }
      ] satisfies Array<Row>
    })
}
