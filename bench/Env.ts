/**
 * What every workload runs against: the options, one DynamoDB, the teleport-shaped peer and a dynastate store,
 * each on its own counted client with the same settings, and the helpers that alternate their phases.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { randomBytes } from "node:crypto"
import type { Location } from "../src/infra/EventRecord.ts"
import * as DynamoDBLocal from "../src/infra/local/DynamoDBLocal.ts"
import type { StoreService } from "../src/programs/store/Store.ts"
import * as TeleportStore from "./peer/TeleportStore.ts"
import type { Figure, Row } from "./Report.ts"
import { best, figureOf } from "./Report.ts"
import type { BenchClients } from "./support/Clients.ts"
import { makeClients, since, snapshot } from "./support/Clients.ts"
import * as Dynastate from "./support/Dynastate.ts"
import type { KeyringCalls } from "./support/Dynastate.ts"
import type { PhaseSize } from "./support/Measure.ts"
import { measure } from "./support/Measure.ts"
import type { BenchOptions } from "./support/Options.ts"

/** The run's shared setup. */
export interface BenchEnv {
  readonly options: BenchOptions
  readonly endpoint: string
  /** Unique per run, so tables and keys of runs on a shared DynamoDB never meet. */
  readonly run: string
  /** The raw AES key dynastate's values are encrypted under (child processes get it too). */
  readonly key: string
  readonly value: Uint8Array
  readonly peerClients: BenchClients
  readonly peer: TeleportStore.TeleportStore
  readonly dynastateClients: BenchClients
  readonly dynastate: StoreService
  readonly dynastateTable: string
  /** Where the bench's dynastate instance keeps its events. */
  readonly location: Location
  readonly keyringCalls: KeyringCalls
  /**
   * A DynamoDB whose stream log no other workload wrote to, for a workload whose figure is one table's stream
   * traffic (see `streamStartKey`): a DynamoDB Local of its own, stopped with the scope, when the bench started
   * its own and shares it between workloads; the workload's own DynamoDB Local when it has one, or the run's
   * DynamoDB when given one (`--endpoint`).
   */
  readonly freshEndpoint: Effect.Effect<string, unknown, Scope.Scope>
}

/** A workload: a name for `--only`, and what it measures. */
export interface Workload {
  readonly name: string
  readonly run: (env: BenchEnv) => Effect.Effect<ReadonlyArray<Row>, unknown, Scope.Scope>
}

/**
 * The key each store writes once as soon as its table exists, so that both tables' streams begin at the start of
 * DynamoDB Local's stream log. DynamoDB Local (2.x) describes a table's stream on every write to it, finding the
 * stream's first record by scanning its stream log (shared by all tables) from the start: a write then costs a scan
 * of every record other tables wrote before this stream's first. A table written first after its creation pays
 * nothing; one first written after the other had written thousands of items paid a millisecond a write, the
 * whole of a phase's difference. No workload reads this key.
 */
export const streamStartKey = "/bench-stream-start"

/** A DynamoDB Local started for the bench, in memory, stopped with the scope: its endpoint. */
export const startLocal: Effect.Effect<string, unknown, Scope.Scope> = Effect.map(
  DynamoDBLocal.scoped({ inMemory: true }),
  (local) => local.endpoint
)

/**
 * Creates the tables and opens both stores for the run, on `endpoint`; `ownLocal` when it is a DynamoDB Local
 * started for this environment alone (see `freshEndpoint`).
 */
export const make = (options: BenchOptions, endpoint: string, ownLocal = false) =>
  Effect.gen(function*() {
    const run = Date.now().toString(36)
    const key = Dynastate.freshKey()
    const peerClients = yield* Effect.acquireRelease(Effect.sync(() => makeClients(endpoint)), (c) =>
      Effect.sync(c.destroy))
    const dynastateClients = yield* Effect.acquireRelease(
      Effect.sync(() =>
        makeClients(endpoint)
      ),
      (c) => Effect.sync(c.destroy)
    )
    const peerTable = `bench-peer-${run}`
    const dynastateTable = `bench-${run}`
    yield* TeleportStore.ensureTable(peerClients.dynamodb, peerTable)
    yield* Dynastate.provision(dynastateClients, dynastateTable)
    const keyringCalls: KeyringCalls = { generate: 0, wrap: 0, unwrap: 0 }
    const location: Location = { table: dynastateTable, namespace: "bench" }
    const { store } = yield* Dynastate.open({
      clients: dynastateClients,
      location,
      key,
      calls: keyringCalls
    })
    const value = new Uint8Array(randomBytes(options.valueBytes))
    const peer = TeleportStore.make(peerClients.dynamodb, peerTable)
    // Both tables' streams start now, together: see `streamStartKey`.
    yield* peer.put(streamStartKey, value)
    yield* store.put({ key: streamStartKey, value })
    return {
      options,
      endpoint,
      run,
      key,
      value,
      peerClients,
      peer,
      dynastateClients,
      dynastate: store,
      dynastateTable,
      location,
      keyringCalls,
      freshEndpoint: options.endpoint === undefined && !ownLocal ? startLocal : Effect.succeed(endpoint)
    } satisfies BenchEnv
  })

/** The phase size of a concurrent phase, or of a concurrency-1 phase (a quarter of the operations). */
export const sizeOf = (env: BenchEnv, concurrency: number, operations = env.options.operations): PhaseSize => ({
  operations: concurrency === 1 ? Math.max(4, Math.floor(operations / 4)) : operations,
  concurrency,
  seconds: env.options.seconds
})

/**
 * A measured phase with the DynamoDB requests it sent per operation, and its CPU per operation when `cpu` is set
 * (only where nothing else of the bench's runs in the process meanwhile, such as a worker).
 */
export const phase = <E, R>(
  clients: BenchClients,
  size: PhaseSize,
  op: (i: number) => Effect.Effect<unknown, E, R>,
  cpu = false
) =>
  Effect.gen(function*() {
    const before = snapshot(clients.counters)
    const sample = yield* measure(size, op)
    return figureOf(sample, since(clients.counters, before).requests, cpu)
  })

/**
 * Runs the peer's phase and dynastate's phase alternately (peer first), `settle` rounds thrown away and then
 * `rounds` kept, and keeps the best figure of each: both meet the same machine load and the same state of DynamoDB.
 * A `raw` phase (the bare SDK request beside them) takes its turn between the two in every round, so its figure
 * meets the same load too. The settling rounds matter: on a fresh DynamoDB Local the first rounds measure a warm-up
 * (the server's, V8's or both; the raw `PutItem` at concurrency 16 ran at half to two thirds of its later rate),
 * which hides what each client costs. Put at concurrency 16 measured 0.99 of the peer's throughput in the first two
 * rounds, 0.78 as the best of four and 0.76 of eight, where both clients had come to use a whole core.
 */
export const alternate = <E1, R1, E2, R2, E3 = never, R3 = never>(
  schedule: { readonly rounds: number; readonly settle: number },
  peer: (round: number) => Effect.Effect<Figure, E1, R1>,
  dynastate: (round: number) => Effect.Effect<Figure, E2, R2>,
  better: "higher" | "lower" = "higher",
  raw?: (round: number) => Effect.Effect<Figure, E3, R3>
) =>
  Effect.gen(function*() {
    const peers: Array<Figure> = []
    const raws: Array<Figure> = []
    const dynastates: Array<Figure> = []
    for (let round = 0; round < schedule.settle + schedule.rounds; round++) {
      const peerFigure = yield* peer(round)
      const rawFigure = raw === undefined ? undefined : yield* raw(round)
      const dynastateFigure = yield* dynastate(round)
      if (round < schedule.settle) continue
      peers.push(peerFigure)
      if (rawFigure !== undefined) raws.push(rawFigure)
      dynastates.push(dynastateFigure)
    }
    return {
      peer: best(peers, better),
      dynastate: best(dynastates, better),
      raw: raw === undefined ? undefined : best(raws, better)
    }
  })
