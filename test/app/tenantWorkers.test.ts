/**
 * Two applications on one table, each with its namespace and its own projection worker as `WorkerLive` runs it
 * (`dynastate worker`): each worker follows every shard for its namespace, because each has a lease group of its
 * own (`lease_group`). Sharing one group, the workers would split the shards, and each would skip the other
 * namespace's records in the shards it holds: expiries nobody reads would never be recorded there.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Metric, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import * as WorkerLive from "../../src/programs/app/WorkerLive.ts"
import * as Target from "../../src/programs/ops/Target.ts"
import { Store } from "../../src/programs/store/Store.ts"
import { rawPartition } from "../support/RawTable.ts"
import { endpoint, freshTableName, makeClient } from "../support/TestStore.ts"
import { eventually } from "../worker/support.ts"

const bytes = (value: string) => new TextEncoder().encode(value)

describe("several applications on one table", () => {
  it.live(
    "each namespace's worker, in its own lease group, records the expiries of its namespace",
    () =>
      Effect.gen(function*() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-tenant-workers-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const client = makeClient()
        yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
        const table = freshTableName("tenant-workers")
        const configOf = (namespace: string) =>
          StoreConfig.load({
            env: {
              DYNASTATE_ENDPOINT: endpoint(),
              DYNASTATE_TABLE_NAME: table,
              DYNASTATE_NAMESPACE: namespace,
              DYNASTATE_LEASE_GROUP: namespace,
              DYNASTATE_KEYRING_FILE: path.join(dir, `${namespace}.key`)
            }
          })
        const tenants = ["tenant-a", "tenant-b"]
        const stores: Array<Store["Service"]> = []
        for (const namespace of tenants) {
          const config = yield* configOf(namespace)
          expect(Target.fromConfig(config).leaseGroup).toBe(namespace)
          const scope = yield* Scope.make()
          yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
          // A metric registry each, as separate processes have.
          const context = yield* Layer.buildWithScope(WorkerLive.layer(config), scope).pipe(
            Effect.provideService(Metric.MetricRegistry, new Map())
          )
          stores.push(Context.get(context, Store))
        }
        const expires = Date.now() + 1500
        for (const [i, store] of stores.entries()) {
          yield* store.put({ key: "/session", value: bytes(`token ${i}`), expires })
        }
        // Nobody reads: each namespace's expiry is recorded by its worker, or not at all.
        yield* eventually(
          "both namespaces' expiries recorded",
          Effect.gen(function*() {
            for (const namespace of tenants) {
              const items = yield* Effect.promise(() => rawPartition(client, table, namespace))
              expect(items.map((item) => item.op?.S), namespace).toContain("expire")
            }
          }),
          20_000
        )
      }),
    60_000
  )
})
