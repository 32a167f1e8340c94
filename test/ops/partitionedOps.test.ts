/**
 * The operational commands on a partitioned key space (see `Partitioning`): an audit of a compacted partitioned
 * store is clean and finds tampering in a bucket, a backup reads every partition, and a restore puts each item
 * into its key's partition of the target's layout (the same one, or another under a new namespace), recording that
 * layout first; a restore into a namespace recorded with another layout is refused.
 */
import { DeleteItemCommand } from "@aws-sdk/client-dynamodb"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Layout } from "../../src/domain/Partitioning.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import { DataKeys } from "../../src/infra/crypto/DataKeys.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { EventTable } from "../../src/infra/EventTable.ts"
import { keyArea } from "../../src/infra/PartitionKeys.ts"
import * as Audit from "../../src/programs/ops/Audit.ts"
import * as Backup from "../../src/programs/ops/Backup.ts"
import * as Restore from "../../src/programs/ops/Restore.ts"
import * as Target from "../../src/programs/ops/Target.ts"
import type { Store } from "../../src/programs/store/Store.ts"
import type { TestTable } from "../support/TestStore.ts"
import {
  eventTableLayer,
  freshTableName,
  makeClient,
  openCompaction,
  openStore,
  openStoreChecked,
  provisionTable,
  sharedKeyring
} from "../support/TestStore.ts"
import { opsLayer } from "./support.ts"

const client = makeClient()
const directory = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-partitioned-ops-"))
afterAll(() => {
  client.destroy()
  fs.rmSync(directory, { recursive: true, force: true })
})

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (value: Uint8Array | undefined) => (value === undefined ? undefined : new TextDecoder().decode(value))
const layout: Layout = [{ prefix: "/own/", name: "own" }, { prefix: "/hot/", name: "hot", buckets: 4 }]
const keys = ["/a", "/own/a", "/own/b", ...Array.from({ length: 6 }, (_, i) => `/hot/${i}`)]

/** Every key's current value (or error) and history, as a reader sees them. */
const snapshot = (store: Store["Service"]) =>
  Effect.forEach(keys, (key) =>
    Effect.gen(function*() {
      const current = yield* store.get(key).pipe(
        Effect.map((item) => text(item.value)),
        Effect.catch((error) => Effect.succeed(error._tag))
      )
      const history = yield* Stream.runCollect(store.history(key))
      return { key, current, history: [...history].map((event) => [event.seq, event.op, text(event.value)]) }
    }))

const auditOf = (location: TestTable) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(eventTableLayer(location, { client }))
    return yield* Audit.audit(Context.get(context, EventTable), Context.get(context, DataKeys)).pipe(
      Effect.provide(context)
    )
  }).pipe(Effect.scoped)

/** A compacted partitioned store with history, graves and a re-created key. */
const populated = Effect.gen(function*() {
  const location: TestTable = { ...(yield* provisionTable(client, freshTableName("parts-ops"))), partitions: layout }
  const store = yield* openStore(location, { client })
  for (const version of [1, 2, 3]) {
    yield* Effect.forEach(keys, (key) => store.put({ key, value: bytes(`${key}@${version}`) }), { concurrency: 4 })
  }
  yield* store.delete("/hot/1")
  yield* store.delete("/own/b")
  const compaction = yield* openCompaction(location, client)
  yield* compaction.all(() => Effect.void, { settleMillis: 0 })
  yield* store.put({ key: "/own/b", value: bytes("again") })
  return { location, store }
})

describe("operations on a partitioned key space", () => {
  it.live("an audit of a compacted partitioned store is clean, and finds a history copy deleted from between kept ones in a bucket", () =>
    Effect.gen(function*() {
      const { location } = yield* populated
      const clean = yield* auditOf(location)
      expect(clean.findings).toEqual([])
      expect(clean.keys).toBe(keys.length)
      yield* Effect.promise(() =>
        client.send(
          new DeleteItemCommand({
            TableName: location.table,
            Key: {
              [Attr.partition]: { S: keyArea(location, "/hot/3", "history") },
              [Attr.sort]: { B: SortKey.encode("/hot/3", 2) }
            }
          })
        )
      )
      const tampered = yield* auditOf(location)
      expect(tampered.findings.map((finding) => `${finding.key}@${finding.seq}`)).toContain("/hot/3@2")
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(opsLayer(client), sharedKeyring))))

  it.live(
    "backup reads every partition; restore routes each item by the target's layout and records it",
    () =>
      Effect.gen(function*() {
        const { location, store } = yield* populated
        const before = yield* snapshot(store)
        const file = path.join(directory, "partitioned.backup")
        const backedUp = yield* Backup.backup(
          Target.make(location.table, location.namespace, { partitions: layout }),
          file
        )
        expect(backedUp.header.counts.event).toBe(keys.length - 1)
        expect(backedUp.header.counts.grave).toBe(2)

        // Copy under the original store id, the same layout.
        const copyTable = yield* provisionTable(client, freshTableName("parts-copy"))
        const copyTarget = { ...copyTable, namespace: location.namespace, storeId: location.table, partitions: layout }
        yield* Restore.restore({
          path: file,
          target: Target.make(copyTable.table, location.namespace, { storeId: location.table, partitions: layout })
        })
        expect(yield* snapshot(yield* openStore(copyTarget, { client }))).toEqual(before)
        expect((yield* auditOf(copyTarget)).findings).toEqual([])

        // Re-encrypted into another namespace with another layout: every item moves to its key's partition there.
        const other: Layout = [{ prefix: "/hot/", name: "h", buckets: 2 }]
        const moved: TestTable = { table: copyTable.table, namespace: "moved", partitions: other }
        yield* Restore.restore({ path: file, target: Target.make(moved.table, "moved", { partitions: other }) })
        expect(yield* snapshot(yield* openStore(moved, { client }))).toEqual(before)
        // The restore recorded the target's layout: a store without it refuses to open there.
        const refusedOpen = yield* Effect.flip(openStoreChecked({ ...moved, partitions: undefined }, { client }))
        expect(refusedOpen._tag === "ConfigInvalid" && refusedOpen.reason).toContain("/hot/ → h (2 buckets)")

        // Into a namespace recorded with another layout: refused before anything is written.
        const refused = yield* Effect.flip(
          Restore.restore({
            path: file,
            target: Target.make(moved.table, "moved", { partitions: layout }),
            resume: true
          })
        )
        expect(refused).toMatchObject({ _tag: "RestoreRefused", kind: "layout" })
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(opsLayer(client), sharedKeyring))),
    120_000
  )
})
