/**
 * Capacity units per logical operation, the figure a DynamoDB bill is made of: write and read units reported by
 * DynamoDB (`ReturnConsumedCapacity`) for put, get, range item, atomic write of 2 keys and delete, each counted
 * until the projection worker has done what the operations cause later (compaction into history, graves, data-key
 * items, lease and checkpoint writes), with history kept and with history off; the peer beside it. Priced at
 * on-demand rates. Stream reads are not counted (billed apart, and the same for both designs' watchers).
 */
import { Effect } from "effect"
import { Action, Condition } from "../../src/domain/AtomicWrite.ts"
import type { Retention } from "../../src/domain/Retention.ts"
import type { StoreService } from "../../src/programs/store/Store.ts"
import type { ProjectionWorker } from "../../src/programs/worker/ProjectionWorker.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import * as TeleportStore from "../peer/TeleportStore.ts"
import type { Figure, Row } from "../Report.ts"
import * as Accounting from "../support/Accounting.ts"
import type { BenchClients } from "../support/Clients.ts"
import { makeClients, since, snapshot } from "../support/Clients.ts"
import * as Dynastate from "../support/Dynastate.ts"
import { measure } from "../support/Measure.ts"

/** On-demand prices in us-east-1, dollars per million request units. */
export const prices = { writeUnit: 1.25, readUnit: 0.25 } as const

/** What one kind of operation cost, per operation. */
interface Cost {
  readonly writeUnits: number
  readonly readUnits: number
}

const figure = (cost: Cost): Figure => ({
  value: cost.writeUnits * prices.writeUnit + cost.readUnits * prices.readUnit,
  unit: "$/M ops",
  detail: `${cost.writeUnits.toFixed(2)} WRU + ${cost.readUnits.toFixed(2)} RRU per op`
})

const operationsOf = ["put", "get", "range item", "atomicWrite of 2 keys", "delete"] as const
type Operation = (typeof operationsOf)[number]

/** The five phases against one store, each measured by `cost` (which waits for what follows). */
interface Phases {
  readonly put: (key: string) => Effect.Effect<unknown, unknown>
  readonly get: (key: string) => Effect.Effect<unknown, unknown>
  readonly range: (start: string, end: string) => Effect.Effect<number, unknown>
  readonly atomic: (keys: ReadonlyArray<string>) => Effect.Effect<unknown, unknown>
  readonly delete: (key: string) => Effect.Effect<unknown, unknown>
}

const dynastatePhases = (store: StoreService, value: Uint8Array): Phases => ({
  put: (key) => store.put({ key, value }),
  get: (key) => store.get(key),
  range: (start, end) => Effect.map(store.getRange(start, end), (items) => items.length),
  atomic: (keys) =>
    store.atomicWrite(keys.map((key) => ({ key, condition: Condition.whatever, action: Action.put(value) }))),
  delete: (key) => store.delete(key)
})

const peerPhases = (peer: TeleportStore.TeleportStore, value: Uint8Array): Phases => ({
  put: (key) => peer.put(key, value),
  get: (key) => peer.get(key),
  range: (start, end) => Effect.map(peer.getRange(start, end), (items) => items.length),
  atomic: (keys) => peer.atomicWrite(keys.map((key) => ({ key, condition: "whatever" as const, put: value }))),
  delete: (key) => peer.delete(key)
})

/**
 * Waits until the worker applied `events` and the write units stopped moving for `stableMillis` (what follows has
 * been done; a quick run's figures are not read, so it may wait less).
 */
export const quiesce = (
  clients: BenchClients,
  worker: ProjectionWorker["Service"] | undefined,
  events: number,
  stableMillis = 1000
) =>
  Effect.gen(function*() {
    if (worker === undefined) return
    const deadline = Date.now() + 120_000
    while ((yield* worker.status).eventsApplied < events && Date.now() < deadline) yield* Effect.sleep(50)
    let last = -1
    let stableSince = Date.now()
    while (Date.now() < deadline && Date.now() - stableSince < stableMillis) {
      const now = since(clients.counters, { requests: {}, capacity: {} }).writeUnits
      if (now !== last) {
        last = now
        stableSince = Date.now()
      }
      yield* Effect.sleep(100)
    }
  })

/** Runs the five phases over `keys` keys and returns each one's cost per operation. */
const costs = (
  env: BenchEnv,
  clients: BenchClients,
  phases: Phases,
  worker: ProjectionWorker["Service"] | undefined
) =>
  Effect.gen(function*() {
    const keys = env.options.quick ? 2 : 50
    const rounds = env.options.quick ? 1 : 5
    const keyOf = (i: number) => `/capacity/${String(i % keys).padStart(4, "0")}`
    const concurrency = Math.min(keys, env.options.concurrency)
    let events = 0
    const applied = worker === undefined ? Effect.succeed(0) : Effect.map(worker.status, (s) => s.eventsApplied)
    const cost = (label: string, operations: number, newEvents: number, run: Effect.Effect<unknown, unknown>) =>
      Effect.gen(function*() {
        const base = yield* applied
        const before = snapshot(clients.counters)
        const accounted = Accounting.snapshotAccounts(clients.accounts)
        yield* run
        events = base + newEvents
        yield* quiesce(clients, worker, events)
        const used = since(clients.counters, before)
        if (Accounting.enabled()) {
          const lines = Accounting.report(clients.accounts, accounted, operations)
          yield* Effect.sync(() => console.error(`  ${label}: per operation\n    ${lines.join("\n    ")}`))
        }
        return { writeUnits: used.writeUnits / operations, readUnits: used.readUnits / operations } satisfies Cost
      })
    // Every key written once first: the steady state is of keys that exist.
    yield* measure({ operations: keys, concurrency }, (i) => phases.put(keyOf(i)))
    yield* quiesce(clients, worker, (yield* applied) + keys)
    const result = new Map<Operation, Cost>()
    const n = keys * rounds
    result.set("put", yield* cost("put", n, n, measure({ operations: n, concurrency }, (i) => phases.put(keyOf(i)))))
    result.set("get", yield* cost("get", n, 0, measure({ operations: n, concurrency }, (i) => phases.get(keyOf(i)))))
    result.set(
      "range item",
      yield* cost(
        "range item",
        keys * rounds,
        0,
        measure({ operations: rounds, concurrency: 1 }, () => phases.range("/capacity/", "/capacity/~"))
      )
    )
    const pairs = Math.floor(keys / 2)
    result.set(
      "atomicWrite of 2 keys",
      yield* cost(
        "atomicWrite of 2 keys",
        pairs * rounds,
        pairs * rounds * 2,
        measure({ operations: pairs * rounds, concurrency: Math.min(pairs, 8) }, (i) =>
          phases.atomic([keyOf(2 * (i % pairs)), keyOf(2 * (i % pairs) + 1)]))
      )
    )
    result.set(
      "delete",
      yield* cost(
        "delete",
        keys,
        keys,
        measure({ operations: keys, concurrency }, (i) =>
          phases.delete(keyOf(i)))
      )
    )
    return result
  })

/** A dynastate store with its worker on a table of its own, so everything it and the worker consume is counted. */
const dynastateCosts = (env: BenchEnv, retention: Retention, label: string) =>
  Effect.scoped(Effect.gen(function*() {
    const clients = yield* Effect.acquireRelease(Effect.sync(() => makeClients(env.endpoint)), (c) =>
      Effect.sync(c.destroy))
    const table = `bench-capacity-${label}-${env.run}`
    yield* Dynastate.provision(clients, table)
    const { store, worker } = yield* Dynastate.open({
      clients,
      location: { table, namespace: "bench" },
      key: env.key,
      calls: { generate: 0, wrap: 0, unwrap: 0 },
      worker: { retention, group: "bench" }
    })
    if (Accounting.enabled()) {
      yield* Effect.sync(() =>
        console.error(`accounting: dynastate, history ${label}`)
      )
    }
    return yield* costs(env, clients, dynastatePhases(store, env.value), worker)
  }))

/** Capacity per operation, history kept and history off, beside the peer. */
export const capacity: Workload = {
  name: "capacity",
  run: (env) =>
    Effect.gen(function*() {
      const peerClients = yield* Effect.acquireRelease(Effect.sync(() => makeClients(env.endpoint)), (c) =>
        Effect.sync(c.destroy))
      const peerTable = `bench-capacity-peer-${env.run}`
      yield* TeleportStore.ensureTable(peerClients.dynamodb, peerTable)
      const peer = yield* costs(
        env,
        peerClients,
        peerPhases(TeleportStore.make(peerClients.dynamodb, peerTable), env.value),
        undefined
      )
      const kept = yield* dynastateCosts(env, { _tag: "Forever" }, "kept")
      // The smoke test runs one retention; the figures of both are the full run's.
      const none = env.options.quick ? undefined : yield* dynastateCosts(env, { _tag: "None" }, "none")
      const rows: Array<Row> = []
      const measured = none === undefined ? [["history kept", kept] as const] : [
        ["history kept", kept] as const,
        [
          "history off",
          none
        ] as const
      ]
      for (const [label, dynastate] of measured) {
        for (const operation of operationsOf) {
          rows.push({
            workload: `capacity per ${operation}, ${label}, worker running`,
            peer: figure(peer.get(operation)!),
            dynastate: figure(dynastate.get(operation)!),
            better: "lower",
            note: rows.length === 0
              ? `on-demand prices: $${prices.writeUnit} per million WRU, $${prices.readUnit} per million RRU`
              : undefined
          })
        }
      }
      return rows
    })
}
