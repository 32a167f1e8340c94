/**
 * Backup and restore while a partition migration is under way (see `PartitionMigration`): a backup taken half way
 * holds every key, moved or not, and restores into a fresh table under the new layout as the migrating store reads
 * it (values, revisions, histories, graves), auditing clean there; a restore into the namespace that is migrating is
 * refused whatever layout it names, before anything is written.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Layout } from "../../src/domain/Partitioning.ts"
import { DataKeys } from "../../src/infra/crypto/DataKeys.ts"
import { EventTable } from "../../src/infra/EventTable.ts"
import * as Audit from "../../src/programs/ops/Audit.ts"
import * as Backup from "../../src/programs/ops/Backup.ts"
import * as Restore from "../../src/programs/ops/Restore.ts"
import * as Target from "../../src/programs/ops/Target.ts"
import type { Store } from "../../src/programs/store/Store.ts"
import {
  eventTableLayer,
  freshTableName,
  openStore,
  provisionTable,
  sharedKeyring,
  tablePerFile
} from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"
import { after, before, cold, keys, moveFirstKeys, populate, text } from "./halfMigrated.ts"
import { opsLayer } from "./support.ts"

const { client, freshLocation } = tablePerFile("migbackup")
const directory = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-migbackup-"))
afterAll(() => fs.rmSync(directory, { recursive: true, force: true }))

/** What a reader sees of every key: its current value (or error) and its history with revisions. */
const snapshot = (store: Store["Service"]) =>
  Effect.forEach([cold, ...keys], (key) =>
    Effect.gen(function*() {
      const current = yield* store.get(key).pipe(
        Effect.map((item) => ({ value: text(item.value), revision: item.revision })),
        Effect.catch((error) => Effect.succeed({ error: error._tag }))
      )
      const history = yield* Stream.runCollect(store.history(key))
      return { key, current, history: history.map((event) => [event.seq, event.op, event.revision]) }
    }))

/** A store of the new layout on the half-migrated namespace, and what it reads. */
const halfMigrated = Effect.gen(function*() {
  const location = freshLocation()
  yield* populate(client, location)
  yield* moveFirstKeys(client, location)
  const serving = yield* openStore({ ...location, partitions: after }, { client, storeOptions: { partitions: after } })
  return { location, serving, seen: yield* snapshot(serving) }
})

const backupOf = (location: TestTable, file: string) =>
  Backup.backup(Target.make(location.table, location.namespace, { partitions: after }), file)

const restoreInto = (location: TestTable, file: string, partitions: Layout, resume: boolean) =>
  Restore.restore({
    path: file,
    target: Target.make(location.table, location.namespace, { storeId: location.storeId, partitions }),
    resume
  })

describe("backup and restore during a partition migration", () => {
  it.live(
    "a backup taken half way holds every key and restores under the new layout as the store reads it",
    () =>
      Effect.gen(function*() {
        const { location, seen } = yield* halfMigrated
        const file = path.join(directory, "half.backup")
        const backedUp = yield* backupOf(location, file)
        // Every key's newest live event (the buried ones' in their graves), each once.
        expect(backedUp.header.counts.event).toBe(keys.length - 2 + 1)
        expect(backedUp.header.counts.grave).toBe(2)

        const copy: TestTable = {
          ...(yield* provisionTable(client, freshTableName("migbackup-copy"))),
          namespace: location.namespace,
          storeId: location.table
        }
        yield* restoreInto(copy, file, after, false)
        const restored = yield* openStore({ ...copy, partitions: after }, { client })
        expect(yield* snapshot(restored)).toEqual(seen)
        const audit = yield* Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(eventTableLayer({ ...copy, partitions: after }, { client }))
          return yield* Audit.audit(Context.get(context, EventTable), Context.get(context, DataKeys)).pipe(
            Effect.provide(context)
          )
        }))
        expect(audit.findings).toEqual([])
        expect(audit.keys).toBe(keys.length + 1)
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(opsLayer(client), sharedKeyring))),
    60_000
  )

  it.live(
    "a restore into the migrating namespace is refused whatever layout it names, and writes nothing",
    () =>
      Effect.gen(function*() {
        const { location, serving, seen } = yield* halfMigrated
        const file = path.join(directory, "refused.backup")
        yield* backupOf(location, file)
        const refusals = yield* Effect.forEach(
          [[after, true], [after, false], [before, true], [[], true]] as const,
          ([partitions, resume]) => Effect.flip(restoreInto(location, file, partitions, resume))
        )
        expect(refusals.map((refusal) => refusal._tag)).toEqual([
          "RestoreRefused",
          "RestoreRefused",
          "RestoreRefused",
          "RestoreRefused"
        ])
        const [resumed, fresh, old, none] = refusals.map((refusal) =>
          refusal._tag === "RestoreRefused" ? { kind: refusal.kind, reason: refusal.reason } : undefined
        )
        expect(resumed).toMatchObject({ kind: "layout" })
        expect(resumed!.reason).toContain("a layout migration is under way")
        expect(fresh).toMatchObject({ kind: "not-empty" })
        expect(old).toMatchObject({ kind: "layout" })
        expect(old!.reason).toContain("only stores with the new layout")
        expect(none).toMatchObject({ kind: "layout" })
        expect(yield* snapshot(serving)).toEqual(seen)
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(opsLayer(client), sharedKeyring))),
    60_000
  )
})
