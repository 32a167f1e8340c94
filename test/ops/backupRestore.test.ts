/**
 * Backup and restore against DynamoDB Local: a store with history, graves, expiries, keep-alives and re-created
 * keys is backed up, then restored into fresh tables — byte for byte under the original store id, and re-encrypted
 * under another store id and namespace — and every key's `get` and `history` read the same there. A damaged or
 * truncated backup is refused before anything is written; a namespace that holds data is refused unless resumed.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { scopeByDepth } from "../../src/infra/crypto/DataKeys.ts"
import * as BackupItems from "../../src/infra/ops/BackupItems.ts"
import * as ValueChunks from "../../src/infra/ValueChunks.ts"
import * as Backup from "../../src/programs/ops/Backup.ts"
import * as Restore from "../../src/programs/ops/Restore.ts"
import * as Target from "../../src/programs/ops/Target.ts"
import type { Store } from "../../src/programs/store/Store.ts"
import type { TestTable } from "../support/TestStore.ts"
import {
  freshTableName,
  makeClient,
  openCompaction,
  openStore,
  provisionTable,
  sharedKeyring
} from "../support/TestStore.ts"
import { opsLayer } from "./support.ts"

const client = makeClient()
const directory = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-backup-"))
afterAll(() => {
  client.destroy()
  fs.rmSync(directory, { recursive: true, force: true })
})

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (value: Uint8Array | undefined) => (value === undefined ? undefined : new TextDecoder().decode(value))
const keys = ["/app/a", "/app/b", "/app/c", "/app/d", "/app/e", "/app/f", "/app/never"]

/** What a reader sees of every key: the current item (or the error) and the whole kept history. */
const snapshot = (store: Store["Service"]) =>
  Effect.forEach(keys, (key) =>
    Effect.gen(function*() {
      const current = yield* store.get(key).pipe(
        Effect.map((item) => ({ value: text(item.value), expires: item.expires, revision: item.revision })),
        Effect.catch((error) => Effect.succeed({ error: error._tag }))
      )
      const history = yield* Stream.runCollect(store.history(key)).pipe(
        Effect.map((events) =>
          [...events].map((event) => ({
            seq: event.seq,
            op: event.op,
            revision: event.revision,
            value: text(event.value),
            expires: event.expires,
            timestamp: event.timestamp
          }))
        )
      )
      return { key, current, history }
    }))

const layer = Layer.merge(opsLayer(client), sharedKeyring)

describe("backup and restore", () => {
  it.live(
    "round trip: copy under the original store id, re-encrypt under another; get and history equal",
    () =>
      Effect.gen(function*() {
        const location = yield* provisionTable(client, freshTableName("backup-source"))
        const store = yield* openStore(location, { client })
        for (const version of ["1", "2", "3"]) yield* store.put({ key: "/app/a", value: bytes(`a${version}`) })
        yield* store.put({ key: "/app/b", value: bytes("b") })
        yield* store.delete("/app/b")
        yield* store.put({ key: "/app/c", value: bytes("c"), expires: Date.now() + 3_600_000 })
        yield* store.put({ key: "/app/d", value: bytes("d"), expires: Date.now() + 500 })
        const kept = yield* store.put({ key: "/app/e", value: bytes("e"), expires: Date.now() + 60_000 })
        yield* store.keepAlive(kept, Date.now() + 7_200_000)
        yield* store.put({ key: "/app/f", value: bytes("f1") })
        yield* store.delete("/app/f")
        yield* Effect.sleep("700 millis")
        expect((yield* Effect.flip(store.get("/app/d")))._tag).toBe("NotFound")
        // Compaction moves superseded events to history and buries the tombstones into graves.
        const compaction = yield* openCompaction(location, client)
        yield* compaction.all(() => Effect.void, { settleMillis: 0 })
        yield* store.put({ key: "/app/f", value: bytes("f2") })
        yield* store.put({ key: "/app/a", value: bytes("a4") })
        const before = yield* snapshot(store)
        const seen = Object.fromEntries(before.map((entry) => [entry.key, entry]))
        expect(seen["/app/a"]?.current).toMatchObject({ value: "a4" })
        expect(seen["/app/a"]?.history.map((event) => event.value)).toEqual(["a1", "a2", "a3", "a4"])
        expect(seen["/app/b"]?.current).toEqual({ error: "NotFound" })
        expect(seen["/app/b"]?.history.map((event) => event.op)).toEqual(["put", "delete"])
        expect(seen["/app/c"]?.current).toMatchObject({ value: "c", expires: expect.any(Number) })
        expect(seen["/app/d"]?.current).toEqual({ error: "NotFound" })
        expect(seen["/app/e"]?.history.map((event) => event.op)).toEqual(["put", "keep-alive"])
        expect(seen["/app/f"]?.history.map((event) => event.op)).toEqual(["put", "delete", "put"])
        expect(seen["/app/never"]).toMatchObject({ current: { error: "NotFound" }, history: [] })

        const file = path.join(directory, "store.backup")
        const target = Target.make(location.table, location.namespace)
        const backedUp = yield* Backup.backup(target, file)
        const { counts } = backedUp.header
        expect(counts.event).toBeGreaterThan(0)
        expect(counts.history).toBeGreaterThan(0)
        expect(counts.grave).toBeGreaterThan(0)
        expect(counts["data-key"]).toBeGreaterThan(0)
        const lines = fs.readFileSync(file, "utf8").trimEnd().split("\n")
        expect(lines.length).toBe(1 + counts.event + counts.history + counts.grave + counts["data-key"])
        expect(JSON.parse(lines[0]!)).toMatchObject({ format: "dynastate-backup", version: 1, storeId: location.table })
        // Values stay encrypted: no written value appears in the file.
        for (const value of ["a1", "a4", "f2"]) expect(fs.readFileSync(file, "utf8")).not.toContain(btoa(value))
        expect(Backup.render(backedUp)).toContain("values are still encrypted")

        // Copy: another table, the original store id.
        const copyTable = yield* provisionTable(client, freshTableName("backup-copy"))
        const copied = yield* Restore.restore({
          path: file,
          target: Target.make(copyTable.table, location.namespace, { storeId: location.table })
        })
        expect(copied.mode).toBe("copy")
        expect(copied.written).toEqual(counts)
        const copy = yield* openStore({ ...copyTable, namespace: location.namespace, storeId: location.table }, {
          client
        })
        expect(yield* snapshot(copy)).toEqual(before)

        // Re-encrypt: another table under its own name as store id, and another namespace.
        const movedTable = yield* provisionTable(client, freshTableName("backup-moved"))
        const moved: TestTable = { table: movedTable.table, namespace: "moved" }
        const reencrypted = yield* Restore.restore({ path: file, target: Target.make(moved.table, moved.namespace) })
        expect(reencrypted.mode).toBe("re-encrypt")
        expect(reencrypted.written.event).toBe(counts.event)
        expect(reencrypted.written.history).toBe(counts.history)
        expect(reencrypted.written.grave).toBe(counts.grave)
        const movedStore = yield* openStore(moved, { client })
        expect(yield* snapshot(movedStore)).toEqual(before)
        // Bound to the new id: the same items read under the old id fail to decrypt.
        const misbound = yield* openStore({ ...moved, storeId: location.table }, { client })
        expect((yield* Effect.flip(misbound.get("/app/a")))._tag).toBe("DecryptionFailed")
        // And the store there goes on: a new write reads back.
        yield* movedStore.put({ key: "/app/a", value: bytes("a5") })
        expect(text((yield* movedStore.get("/app/a")).value)).toBe("a5")
        expect(Restore.render(reencrypted)).toContain("re-encrypted")

        // Into a namespace that holds data: refused, unless resumed (writing the same items again).
        const refused = yield* Effect.flip(Restore.restore({
          path: file,
          target: Target.make(copyTable.table, location.namespace, { storeId: location.table })
        }))
        expect(refused).toMatchObject({ _tag: "RestoreRefused", kind: "not-empty" })
        yield* Restore.restore({
          path: file,
          target: Target.make(copyTable.table, location.namespace, { storeId: location.table }),
          resume: true
        })
        expect(yield* snapshot(copy)).toEqual(before)
      }).pipe(Effect.scoped, Effect.provide(layer)),
    180_000
  )

  it.live(
    "shredded values stay shredded, and re-encrypted values keep their shred scope",
    () =>
      Effect.gen(function*() {
        const policy = { scopeOf: scopeByDepth(1) }
        const location = yield* provisionTable(client, freshTableName("backup-shred"))
        const store = yield* openStore(location, { client, dataKeyPolicy: policy })
        yield* store.put({ key: "/secret/x", value: bytes("erase me") })
        yield* store.put({ key: "/kept/y", value: bytes("keep me") })
        expect(yield* store.shred("/secret")).toBe(1)
        const file = path.join(directory, "shred.backup")
        yield* Backup.backup(Target.make(location.table, location.namespace), file)

        const copyTable = yield* provisionTable(client, freshTableName("backup-shred-copy"))
        yield* Restore.restore({
          path: file,
          target: Target.make(copyTable.table, location.namespace, { storeId: location.table })
        })
        const copy = yield* openStore({
          table: copyTable.table,
          namespace: location.namespace,
          storeId: location.table
        }, {
          client,
          dataKeyPolicy: policy
        })
        expect((yield* Effect.flip(copy.get("/secret/x")))._tag).toBe("Shredded")
        expect(text((yield* copy.get("/kept/y")).value)).toBe("keep me")

        const movedTable = yield* provisionTable(client, freshTableName("backup-shred-moved"))
        const report = yield* Restore.restore({ path: file, target: Target.make(movedTable.table, "elsewhere") })
        expect(report.written["data-key"]).toBe(1) // the shredded key, carried over
        const moved = yield* openStore({ table: movedTable.table, namespace: "elsewhere" }, {
          client,
          dataKeyPolicy: policy
        })
        expect((yield* Effect.flip(moved.get("/secret/x")))._tag).toBe("Shredded")
        expect(text((yield* moved.get("/kept/y")).value)).toBe("keep me")
        // The re-encrypted value is in its scope: shredding that scope there erases it.
        expect(yield* moved.shred("/kept")).toBe(1)
        expect((yield* Effect.flip(moved.get("/kept/y")))._tag).toBe("Shredded")
      }).pipe(Effect.scoped, Effect.provide(layer)),
    90_000
  )

  it.live(
    "sealed keys survive both restores: the key sealing key is carried over when values are re-encrypted",
    () =>
      Effect.gen(function*() {
        const sealed = [{ prefix: "/tokens/", seal: "rest" as const }]
        const location = yield* provisionTable(client, freshTableName("backup-sealed"))
        const store = yield* openStore(location, { client, storeOptions: { sealed } })
        yield* store.put({ key: "/tokens/join-1", value: bytes("node") })
        yield* store.put({ key: "/tokens/join-1", value: bytes("node v2") })
        yield* store.put({ key: "/app/plain", value: bytes("plain") })
        const file = path.join(directory, "sealed.backup")
        yield* Backup.backup(Target.make(location.table, location.namespace), file)
        expect(fs.readFileSync(file, "utf8")).not.toContain("join-1")

        const movedTable = yield* provisionTable(client, freshTableName("backup-sealed-moved"))
        const report = yield* Restore.restore({ path: file, target: Target.make(movedTable.table, "sealed-moved") })
        expect(report.mode).toBe("re-encrypt")
        expect(report.skippedNamedKeys).toBe(0) // the key sealing key is no view's index key: it goes along
        const moved = yield* openStore({ table: movedTable.table, namespace: "sealed-moved" }, {
          client,
          storeOptions: { sealed }
        })
        // The same real key seals to the same stored key there: found by get, history and range alike.
        expect(text((yield* moved.get("/tokens/join-1")).value)).toBe("node v2")
        expect((yield* Stream.runCollect(moved.history("/tokens/join-1"))).map((event) => event.key)).toEqual([
          "/tokens/join-1",
          "/tokens/join-1"
        ])
        expect((yield* moved.getRange("/tokens/", "/tokens0")).map((item) => item.key)).toEqual(["/tokens/join-1"])
        yield* moved.put({ key: "/tokens/join-1", value: bytes("node v3") })
        expect((yield* moved.getRange("/tokens/", "/tokens0")).map((item) => text(item.value))).toEqual(["node v3"])
      }).pipe(Effect.scoped, Effect.provide(layer)),
    90_000
  )

  it.live("a changed, truncated or foreign file is refused and nothing is written", () =>
    Effect.gen(function*() {
      const location = yield* provisionTable(client, freshTableName("backup-damaged"))
      const store = yield* openStore(location, { client })
      for (const key of ["/x/1", "/x/2", "/x/3"]) yield* store.put({ key, value: bytes(key) })
      const file = path.join(directory, "damaged.backup")
      yield* Backup.backup(Target.make(location.table, location.namespace), file)
      const lines = fs.readFileSync(file, "utf8").trimEnd().split("\n")
      const emptyTable = yield* provisionTable(client, freshTableName("backup-empty"))
      const target = Target.make(emptyTable.table, location.namespace, { storeId: location.table })
      const attempt = (name: string, content: string) =>
        Effect.gen(function*() {
          const damaged = path.join(directory, name)
          fs.writeFileSync(damaged, content)
          const error = yield* Effect.flip(Restore.restore({ path: damaged, target }))
          expect(yield* BackupItems.isEmpty({ table: emptyTable.table, namespace: location.namespace })).toBe(true)
          return error
        })

      const edited = lines.map((line, index) => (index === 2 ? line.replace(/"N":"\d+"/, `"N":"999"`) : line))
      expect(edited[2]).not.toBe(lines[2])
      const changed = yield* attempt("edited.backup", edited.join("\n") + "\n")
      expect(changed.message).toContain("checksum does not match")

      const truncated = yield* attempt("truncated.backup", lines.slice(0, -1).join("\n") + "\n")
      expect(truncated.message).toContain("truncated")

      const garbage = yield* attempt("garbage.backup", lines[0] + "\n{not json\n")
      expect(garbage).toMatchObject({ _tag: "BackupInvalid", line: 2 })

      const foreign = yield* attempt("foreign.backup", JSON.stringify({ format: "something-else" }) + "\n")
      expect(foreign.message).toContain("no dynastate-backup header")

      const missing = yield* Effect.flip(Restore.restore({ path: path.join(directory, "nowhere.backup"), target }))
      expect(missing._tag).toBe("BackupFileError")

      const noTable = yield* Effect.flip(
        Restore.restore({ path: file, target: Target.make(freshTableName("nope"), "ns") })
      )
      expect(noTable).toMatchObject({ _tag: "RestoreRefused", kind: "table-missing" })
      expect(noTable.message).toContain("dynastate provision")
    }).pipe(Effect.scoped, Effect.provide(layer)), 90_000)

  it.live(
    "large values: their chunks are backed up and restored by copy; a re-encrypting restore is refused",
    () =>
      Effect.gen(function*() {
        const location = yield* provisionTable(client, freshTableName("backup-large"))
        const store = yield* openStore(location, { client })
        const large = new Uint8Array(randomBytes(900_000))
        yield* store.put({ key: "/app/large", value: large })
        yield* store.put({ key: "/app/large", value: bytes("small now") })
        yield* store.put({ key: "/app/other", value: large })
        const file = path.join(directory, "large.backup")
        const backedUp = yield* Backup.backup(Target.make(location.table, location.namespace), file)
        // Two values' chunks, and a marker each.
        expect(backedUp.header.counts.chunk).toBe(2 * Math.ceil(900_000 / ValueChunks.chunkBytes) + 2)
        expect(Backup.render(backedUp)).toContain(`${backedUp.header.counts.chunk} chunks of large values`)

        const copyTable = yield* provisionTable(client, freshTableName("backup-large-copy"))
        const copied = yield* Restore.restore({
          path: file,
          target: Target.make(copyTable.table, location.namespace, { storeId: location.table })
        })
        expect(copied.written).toEqual(backedUp.header.counts)
        const copy = yield* openStore({ ...copyTable, namespace: location.namespace, storeId: location.table }, {
          client
        })
        expect((yield* copy.get("/app/other")).value).toEqual(large)
        const history = yield* Stream.runCollect(copy.history("/app/large"))
        expect(history[0]!.value).toEqual(large)
        expect(text(history[1]!.value)).toBe("small now")

        const movedTable = yield* provisionTable(client, freshTableName("backup-large-moved"))
        const refused = yield* Effect.flip(
          Restore.restore({ path: file, target: Target.make(movedTable.table, "moved") })
        )
        expect(refused).toMatchObject({ _tag: "RestoreRefused", kind: "large-values" })
        expect(refused.message).toContain("chunk items of large values")
        expect(yield* BackupItems.isEmpty({ table: movedTable.table, namespace: "moved" })).toBe(true)
      }).pipe(Effect.scoped, Effect.provide(layer)),
    90_000
  )
})
