/**
 * The layouts the `partitions` workload runs the store with: the namespace in one partition key, and its busiest
 * range (`/nodes/`) in a partition of its own or spread over hash buckets, each a real run of the partitioned store
 * on a table of its own (a namespace keeps the layout it was first opened with, see `LayoutRecord`).
 */
import { Effect } from "effect"
import type { Layout as Partitions } from "../../src/domain/Partitioning.ts"
import { defaultStoreOptions } from "../../src/programs/store/Store.ts"
import type { BenchEnv } from "../Env.ts"
import { makeClients } from "../support/Clients.ts"
import type { BenchClients } from "../support/Clients.ts"
import * as Dynastate from "../support/Dynastate.ts"

/** The prefix the patterns write under and the layouts partition: Teleport's busiest range. */
export const prefix = "/nodes/"

/** The namespace of every run (each on its own table). */
export const namespace = "bench"

/** A way of laying the namespace's keys over partition keys. */
export interface Layout {
  readonly name: string
  /** The partitioned prefixes the store is opened with (none: one partition key, as by default). */
  readonly partitions: Partitions
  /** Hash buckets of {@link prefix} (0 when it has no partition of its own). */
  readonly buckets: number
}

const bucketed = (buckets: number): Layout => ({
  name: `${prefix} over ${buckets} hash buckets`,
  partitions: [{ prefix, name: "nodes", buckets }],
  buckets
})

/** The baseline: everything under the namespace's one partition key. */
export const onePartition: Layout = { name: "one partition key", partitions: [], buckets: 0 }

/** Every layout a full run measures, the baseline first. */
export const layouts: ReadonlyArray<Layout> = [
  onePartition,
  { name: `${prefix} in its own partition`, partitions: [{ prefix, name: "nodes" }], buckets: 1 },
  bucketed(16),
  bucketed(64)
]

/** The layouts of a run: all of them, or with `--quick` the baseline and 16 buckets (CI's smoke test stays short). */
export const layoutsOf = (quick: boolean): ReadonlyArray<Layout> =>
  quick ? layouts.filter((layout) => layout.buckets === 0 || layout.buckets === 16) : layouts

/** Fresh counted clients for a run, destroyed with its scope. */
export const clientsFor = (env: BenchEnv) =>
  Effect.acquireRelease(Effect.sync(() => makeClients(env.endpoint)), (c) => Effect.sync(c.destroy))

/** dynastate opened with `layout` on a fresh table (its worker too, when asked). */
export const openLayout = (
  env: BenchEnv,
  clients: BenchClients,
  table: string,
  layout: Layout,
  worker?: Dynastate.OpenOptions["worker"]
) =>
  Effect.gen(function*() {
    yield* Dynastate.provision(clients, table)
    const partitions = layout.partitions.length === 0 ? undefined : layout.partitions
    return yield* Dynastate.open({
      clients,
      location: { table, namespace, partitions },
      key: env.key,
      calls: { generate: 0, wrap: 0, unwrap: 0 },
      storeOptions: { ...defaultStoreOptions, partitions },
      worker
    })
  })
