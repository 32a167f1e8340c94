/**
 * `Audit` against DynamoDB Local: a store compacted by a real worker (history kept forever, or not at all; buried
 * tombstones; a key re-created after its burial) audits clean; every kind of tampering someone with write access
 * to the table can do by hand is found with its key and seq; a signed checkpoint catches what the table alone
 * cannot show (a newest event deleted while the seqs stay dense), and a checkpoint edited in any way is refused.
 */
import { DeleteItemCommand, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { KMSClient } from "@aws-sdk/client-kms"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer } from "effect"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as SortKey from "../../src/domain/SortKey.ts"
import { DataKeys, defaultDataKeyPolicy, scopeByDepth } from "../../src/infra/crypto/DataKeys.ts"
import { partitionOf } from "../../src/infra/crypto/DataKeyStore.ts"
import { Keyring } from "../../src/infra/crypto/Keyring.ts"
import * as KmsKeyring from "../../src/infra/crypto/KmsKeyring.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { EventTable } from "../../src/infra/EventTable.ts"
import { graveKey } from "../../src/infra/GraveRecord.ts"
import { historyPartition } from "../../src/infra/HistoryRecord.ts"
import type { AuditOptions, AuditReport } from "../../src/programs/ops/Audit.ts"
import * as Audit from "../../src/programs/ops/Audit.ts"
import * as Checkpoint from "../../src/programs/ops/Checkpoint.ts"
import type { Retention } from "../../src/programs/worker/projections/HistoryProjection.ts"
import * as FakeKms from "../support/FakeKms.ts"
import { rawGraves } from "../support/RawTable.ts"
import { eventTableLayer, makeClient, openCompaction, openStore } from "../support/TestStore.ts"
import type { Env } from "../worker/support.ts"
import { bytes, eventually, freshEnv, liveEvents, startWorker, text } from "../worker/support.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-audit-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/** Audits the test location with a store instance of its own, as the CLI would. */
const runAudit = (
  env: Env,
  options: AuditOptions = {},
  client: DynamoDBClient = env.client,
  keyring?: Layer.Layer<Keyring>
) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(eventTableLayer(env.location, { client, keyring }))
    return yield* Audit.audit(Context.get(context, EventTable), Context.get(context, DataKeys), options).pipe(
      Effect.provide(context)
    )
  }).pipe(Effect.scoped)

/** The findings as `kind key@seq`, sorted. */
const found = (report: AuditReport) =>
  report.findings.map((finding) => `${finding.kind} ${finding.key}@${finding.seq}`).sort()

const liveKey = (env: Env, key: string, seq: number) => ({
  [Attr.partition]: { S: env.location.namespace },
  [Attr.sort]: { B: SortKey.encode(key, seq) }
})
const historyKey = (env: Env, key: string, seq: number) => ({
  [Attr.partition]: { S: historyPartition(env.location) },
  [Attr.sort]: { B: SortKey.encode(key, seq) }
})

/** What someone with write access to the table can do by hand. */
const raw = (env: Env) => ({
  delete: (Key: Record<string, AttributeValue>) =>
    Effect.promise(() => env.client.send(new DeleteItemCommand({ TableName: env.location.table, Key }))),
  get: (Key: Record<string, AttributeValue>) =>
    Effect.promise(() =>
      env.client.send(new GetItemCommand({ TableName: env.location.table, Key, ConsistentRead: true }))
    ).pipe(Effect.map((output) => output.Item!)),
  put: (Item: Record<string, AttributeValue>) =>
    Effect.promise(() => env.client.send(new PutItemCommand({ TableName: env.location.table, Item })))
})

/**
 * Writes the compacted part of the workload and waits until a worker (settled at once) compacted it: /a three
 * puts, /b deleted (buried), /c deleted and re-created, /d one put, /e two puts.
 */
const compactedStore = (label: string, retention: Retention) =>
  Effect.gen(function*() {
    const env = yield* freshEnv(label)
    const store = yield* openStore(env.location, { client: env.client })
    const worker = yield* startWorker(env, { group: label, retention, settleMillis: 0 })
    for (const value of ["1", "2", "3"]) yield* store.put({ key: "/a", value: bytes(value) })
    yield* store.put({ key: "/b", value: bytes("gone") })
    yield* store.delete("/b")
    yield* store.put({ key: "/c", value: bytes("first") })
    yield* store.delete("/c")
    yield* store.put({ key: "/c", value: bytes("again") })
    yield* store.put({ key: "/d", value: bytes("only") })
    yield* store.put({ key: "/e", value: bytes("1") })
    yield* store.put({ key: "/e", value: bytes("2") })
    yield* eventually(
      "compaction finished",
      Effect.gen(function*() {
        const live = yield* liveEvents(env)
        expect(live.map(({ key, seq }) => `${key}@${seq}`)).toEqual(["/a@3", "/c@3", "/d@1", "/e@2"])
        const graves = yield* Effect.promise(() => rawGraves(env.client, env.location))
        expect(graves.map(({ key, seq }) => `${key}@${seq}`)).toEqual(["/b@2", "/c@2"])
      })
    )
    yield* worker.stop
    return { env, store }
  })

describe("audit", () => {
  it.live("a store compacted with history kept forever audits clean, and a checkpoint of it verifies", () =>
    Effect.gen(function*() {
      const { env } = yield* compactedStore("audit-forever", { _tag: "Forever" })
      const checkpoint = path.join(dir, "forever.checkpoint")
      const report = yield* runAudit(env, { checkpointOut: checkpoint })
      expect(report.findings).toEqual([])
      expect(report).toMatchObject({ ok: true, tampering: 0, keys: 5, events: 4, graves: 2 })
      // /a 1-2, /b 1-2 (the tombstone's copy too), /c 1-2, /e 1.
      expect(report.historyCopies).toBe(7)
      expect(report.checkpointOut).toEqual({ path: checkpoint, keys: 5 })
      const written = JSON.parse(fs.readFileSync(checkpoint, "utf8")) as { keys: Array<[string, number, string]> }
      expect(written.keys.map(([key, seq]) => `${key}@${seq}`)).toEqual(["/a@3", "/b@2", "/c@3", "/d@1", "/e@2"])

      const again = yield* runAudit(env, { checkpoint })
      expect(again).toMatchObject({ ok: true, findings: [], checkpoint: { path: checkpoint, keys: 5 } })
    }))

  it.live("a store compacted keeping no history audits clean (freed-seq markers are not events)", () =>
    Effect.gen(function*() {
      const { env } = yield* compactedStore("audit-none", { _tag: "None" })
      const report = yield* runAudit(env)
      expect(report.findings).toEqual([])
      expect(report).toMatchObject({ ok: true, keys: 5, events: 4, historyCopies: 0, graves: 2 })
    }))

  it.live("finds nothing while a worker compacts under writes", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("audit-busy")
      const store = yield* openStore(env.location, { client: env.client })
      yield* startWorker(env, { group: "busy", retention: { _tag: "Forever" }, settleMillis: 0 })
      const writes = Effect.gen(function*() {
        for (let round = 0; round < 12; round++) {
          for (let k = 0; k < 8; k++) {
            const key = `/busy/${k}`
            if ((round + k) % 5 === 4) yield* store.delete(key).pipe(Effect.ignore)
            else yield* store.put({ key, value: bytes(`${round}`) })
          }
        }
      })
      const writer = yield* Effect.forkChild(writes)
      const reports: Array<AuditReport> = []
      while (writer.pollUnsafe() === undefined) reports.push(yield* runAudit(env))
      yield* Fiber.join(writer)
      reports.push(yield* runAudit(env))
      expect(reports.length).toBeGreaterThan(1)
      for (const report of reports) expect(report.findings).toEqual([])
    }))

  it.live("a key compacted between the walk's reads of its partitions is read again, not reported", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("audit-moving")
      const store = yield* openStore(env.location, { client: env.client })
      const compaction = yield* openCompaction(env.location, env.client)
      yield* store.put({ key: "/m", value: bytes("1") })
      // After the walk read the live range (newest: 1) and before it reads history, two writes land and
      // compaction moves 1 and 2 to history: history then holds a newer event than the live range the walk saw.
      let moved = false
      const client = makeClient()
      client.middlewareStack.add(
        (next) => async (args) => {
          const input = args.input as { ExpressionAttributeValues?: Record<string, { S?: string }> }
          if (!moved && input.ExpressionAttributeValues?.[":pk"]?.S === historyPartition(env.location)) {
            moved = true
            await Effect.runPromise(Effect.gen(function*() {
              yield* store.put({ key: "/m", value: bytes("2") })
              yield* store.put({ key: "/m", value: bytes("3") })
              yield* Effect.sleep(5)
              yield* compaction.all(() => Effect.void, { settleMillis: 1, retention: { _tag: "Forever" } })
            }))
          }
          return next(args)
        },
        { step: "initialize", name: "compactMidAudit" }
      )
      const report = yield* runAudit(env, {}, client).pipe(Effect.ensuring(Effect.sync(() => client.destroy())))
      expect(moved).toBe(true)
      expect((yield* liveEvents(env)).map(({ seq }) => seq)).toEqual([3])
      expect(report.findings).toEqual([])
    }))

  it.live("finds each kind of tampering by key and seq, and rollbacks the seqs hide against a checkpoint", () =>
    Effect.gen(function*() {
      const { env, store } = yield* compactedStore("audit-tamper", { _tag: "Forever" })
      // Left live (the worker is stopped): three puts each, and a put then a delete.
      for (const key of ["/u/dense", "/u/middle"]) {
        for (const value of ["1", "2", "3"]) yield* store.put({ key, value: bytes(value) })
      }
      yield* store.put({ key: "/u/undelete", value: bytes("secret") })
      yield* store.delete("/u/undelete")
      const checkpoint = path.join(dir, "tamper.checkpoint")
      expect((yield* runAudit(env, { checkpointOut: checkpoint })).ok).toBe(true)

      const table = raw(env)
      // /a: its newest event deleted; history still has 1 and 2.
      yield* table.delete(liveKey(env, "/a", 3))
      // /b: its grave deleted; history keeps its tombstone's copy.
      yield* table.delete(graveKey(env.location, "/b"))
      // /d: its value edited.
      const edited = yield* table.get(liveKey(env, "/d", 1))
      const value = new Uint8Array(edited[Attr.value]!.B!)
      value[value.length - 1]! ^= 1
      yield* table.put({ ...edited, [Attr.value]: { B: value } })
      // /e: its only history copy deleted. Not found: the oldest kept event going is what retention does.
      yield* table.delete(historyKey(env, "/e", 1))
      // /c: its seq 1 put back into the live range, under its newer event 3. Not found: it changes no read.
      const old = yield* table.get(historyKey(env, "/c", 1))
      yield* table.put({ ...old, [Attr.partition]: { S: env.location.namespace } })
      // Live keys: the newest event deleted (seqs stay dense), a middle one deleted, a tombstone deleted.
      yield* table.delete(liveKey(env, "/u/dense", 3))
      yield* table.delete(liveKey(env, "/u/middle", 2))
      yield* table.delete(liveKey(env, "/u/undelete", 2))
      const reader = yield* openStore(env.location, { client: env.client })
      expect(text((yield* reader.get("/u/undelete")).value)).toBe("secret")

      const alone = yield* runAudit(env)
      expect(found(alone)).toEqual([
        "hole /u/middle@2",
        "newest-removed /a@2",
        "newest-removed /b@2",
        "undecryptable /d@1"
      ])
      expect(alone).toMatchObject({ ok: false, tampering: 4 })
      expect(alone.findings.find((finding) => finding.key === "/d")!.detail).toContain("does not decrypt")

      const against = yield* runAudit(env, { checkpoint })
      expect(found(against)).toEqual([
        "disappeared /a@3",
        "disappeared /b@2",
        "hole /u/middle@2",
        "newest-removed /a@2",
        "newest-removed /b@2",
        "rolled-back /u/dense@3",
        "rolled-back /u/undelete@2",
        "undecryptable /d@1"
      ])
      expect(against.counts).toEqual({
        "disappeared": 2,
        "hole": 1,
        "newest-removed": 2,
        "rolled-back": 2,
        "undecryptable": 1
      })
    }))

  it.live("a deleted newest event: the worker's alarm within one cycle, and the audit against its checkpoint", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("audit-alarm")
      const store = yield* openStore(env.location, { client: env.client })
      // Nothing settles during the test: the older events stay live, the seqs stay dense after the deletion.
      const worker = yield* startWorker(env, { group: "alarm", settleMillis: 600_000 })
      for (const value of ["v1", "v2", "v3"]) yield* store.put({ key: "/r/a", value: bytes(value) })
      yield* eventually(
        "the worker applied the three events",
        Effect.map(worker.status, (status) => expect(status.eventsApplied).toBeGreaterThanOrEqual(3))
      )
      const checkpoint = path.join(dir, "alarm.checkpoint")
      expect((yield* runAudit(env, { checkpointOut: checkpoint })).ok).toBe(true)

      yield* raw(env).delete(liveKey(env, "/r/a", 3))
      yield* eventually(
        "the worker reports the rollback",
        Effect.map(
          worker.status,
          (status) =>
            expect(status.tampering.map(({ key, kind, seq }) => ({ kind, key, seq }))).toEqual([
              { kind: "rollback", key: "/r/a", seq: 3 }
            ])
        ),
        5_000
      )
      const report = yield* runAudit(env, { checkpoint })
      expect(found(report)).toEqual(["rolled-back /r/a@3"])
    }))

  it.live("finds a history copy deleted from between kept events, and a live event put back under its grave", () =>
    Effect.gen(function*() {
      const { env } = yield* compactedStore("audit-history", { _tag: "Forever" })
      const table = raw(env)
      yield* table.delete(historyKey(env, "/a", 2))
      const old = yield* table.get(historyKey(env, "/b", 1))
      yield* table.put({ ...old, [Attr.partition]: { S: env.location.namespace } })
      const report = yield* runAudit(env)
      expect(found(report)).toEqual(["hole /a@2", "undeleted /b@1"])
      expect(report.findings.find((finding) => finding.kind === "undeleted")!.detail).toContain(
        "older than its buried tombstone 2"
      )
    }))

  it.live("finds a grave edited into a put, and a grave filed under another key, without stopping", () =>
    Effect.gen(function*() {
      const { env } = yield* compactedStore("audit-grave", { _tag: "Forever" })
      const table = raw(env)
      const grave = yield* table.get(graveKey(env.location, "/b"))
      yield* table.put({ ...grave, [Attr.op]: { S: "put" } })
      const other = yield* table.get(graveKey(env.location, "/c"))
      yield* table.delete(graveKey(env.location, "/c"))
      yield* table.put({ ...other, ...graveKey(env.location, "/d") })
      const report = yield* runAudit(env)
      expect(found(report)).toEqual([
        "corrupt-grave /b@undefined",
        "corrupt-grave /d@undefined",
        "newest-removed /b@2"
      ])
      expect(report.findings.find((finding) => finding.key === "/b" && finding.kind === "corrupt-grave")!.detail)
        .toContain("does not hold a tombstone")
      expect(report.findings.find((finding) => finding.key === "/d")!.detail).toContain("filed under another key")
    }))

  it.live("finds a tombstone appended by hand: it reads as a deletion, but carries no authentication", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("audit-forged-delete")
      const store = yield* openStore(env.location, { client: env.client })
      yield* store.put({ key: "/f", value: bytes("kept") })
      yield* raw(env).put({
        ...liveKey(env, "/f", 2),
        [Attr.revision]: { S: randomUUID() },
        [Attr.seq]: { N: "2" },
        [Attr.op]: { S: "delete" },
        [Attr.timestamp]: { N: String(Date.now()) }
      })
      const reader = yield* openStore(env.location, { client: env.client })
      expect((yield* Effect.flip(reader.get("/f")))._tag).toBe("NotFound")
      const report = yield* runAudit(env)
      expect(report).toMatchObject({ ok: false, keys: 1, events: 2 })
      expect(found(report)).toEqual(["unauthenticated /f@2"])
    }))

  it.live("finds against a checkpoint a newest event replaced by another of the same seq (a re-made tombstone)", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("audit-replaced")
      const store = yield* openStore(env.location, { client: env.client })
      yield* store.put({ key: "/g", value: bytes("v") })
      yield* store.delete("/g")
      const checkpoint = path.join(dir, "replaced.checkpoint")
      expect((yield* runAudit(env, { checkpointOut: checkpoint })).ok).toBe(true)
      const tombstone = yield* raw(env).get(liveKey(env, "/g", 2))
      yield* raw(env).put({ ...tombstone, [Attr.revision]: { S: randomUUID() } })
      // A tombstone is authenticated like a value: its edited revision no longer decrypts.
      expect(found(yield* runAudit(env))).toEqual(["undecryptable /g@2"])
      expect(found(yield* runAudit(env, { checkpoint }))).toEqual(["replaced /g@2", "undecryptable /g@2"])
    }))

  it.live("lists shredded values apart, not as tampering", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("audit-shredded")
      const store = yield* openStore(env.location, {
        client: env.client,
        dataKeyPolicy: { ...defaultDataKeyPolicy, scopeOf: scopeByDepth(2) }
      })
      yield* store.put({ key: "/s/alice/x", value: bytes("a") })
      yield* store.put({ key: "/s/bob/x", value: bytes("b") })
      expect(yield* store.shred("/s/alice")).toBe(1)
      const report = yield* runAudit(env)
      expect(report).toMatchObject({ ok: true, tampering: 0, counts: { shredded: 1 } })
      expect(found(report)).toEqual(["shredded /s/alice/x@1"])
      expect(Audit.render(report)).toContain("NOTE shredded")
    }))

  it.live("refuses a checkpoint that was edited, re-signed without the key, or taken of another namespace", () =>
    Effect.gen(function*() {
      const env = yield* freshEnv("audit-checkpoint")
      const store = yield* openStore(env.location, { client: env.client })
      for (const value of ["1", "2", "3"]) yield* store.put({ key: "/k", value: bytes(value) })
      const good = path.join(dir, "good.checkpoint")
      yield* runAudit(env, { checkpointOut: good })
      const table = raw(env)
      const original = JSON.parse(fs.readFileSync(good, "utf8")) as Record<string, unknown> & {
        keys: Array<[string, number, string]>
      }
      const refusal = (file: Record<string, unknown> | string) =>
        Effect.gen(function*() {
          const written = path.join(dir, `edited-${Math.random()}.checkpoint`)
          fs.writeFileSync(written, typeof file === "string" ? file : JSON.stringify(file))
          return yield* Effect.flip(runAudit(env, { checkpoint: written }))
        })

      // Lowering a key's high-water mark would hide a rollback to it.
      const lowered = yield* refusal({ ...original, keys: [["/k", 2, original.keys[0]![2]]] })
      expect(lowered).toMatchObject({ _tag: "CheckpointInvalid", kind: "forged" })
      const dropped = yield* refusal({ ...original, keys: [] })
      expect(dropped).toMatchObject({ _tag: "CheckpointInvalid", kind: "forged" })
      const resigned = yield* refusal({ ...original, signature: "0".repeat(64) })
      expect(resigned).toMatchObject({ _tag: "CheckpointInvalid", kind: "forged" })
      const other = yield* refusal({ ...original, namespace: "elsewhere" })
      expect(other).toMatchObject({ _tag: "CheckpointInvalid", kind: "other-store" })
      expect(yield* refusal("{ not json")).toMatchObject({ _tag: "CheckpointInvalid", kind: "malformed" })
      expect(yield* refusal({ ...original, version: 2 })).toMatchObject({ kind: "malformed" })
      const missing = yield* Effect.flip(runAudit(env, { checkpoint: path.join(dir, "absent.checkpoint") }))
      expect(missing).toMatchObject({ _tag: "CheckpointInvalid", kind: "unreadable" })

      // Without the signing key no checkpoint can be genuine: refused, never a fresh key made to check against.
      const signingKey = {
        pk: { S: partitionOf(env.location.namespace) },
        sk: { B: new Uint8Array(Buffer.from(Checkpoint.signingKeyId, "utf8")) }
      }
      const saved = yield* table.get(signingKey)
      yield* table.delete(signingKey)
      const keyless = yield* Effect.flip(runAudit(env, { checkpoint: good }))
      expect(keyless).toMatchObject({ _tag: "CheckpointInvalid", kind: "no-signing-key" })
      yield* table.put(saved)

      // Reformatted but unchanged, it still verifies: the signature covers the values, not the layout.
      const pretty = path.join(dir, "pretty.checkpoint")
      fs.writeFileSync(pretty, JSON.stringify({ signature: original["signature"], ...original }, null, 2))
      expect((yield* runAudit(env, { checkpoint: pretty })).ok).toBe(true)

      // Shredding the whole namespace shreds the signing key too: no checkpoint verifies or is signed any more.
      expect(yield* store.shred("")).toBeGreaterThanOrEqual(2)
      expect(yield* Effect.flip(runAudit(env, { checkpoint: good }))).toMatchObject({ kind: "no-signing-key" })
      const unsigned = yield* Effect.flip(runAudit(env, { checkpointOut: path.join(dir, "after-shred.checkpoint") }))
      expect(unsigned).toMatchObject({ _tag: "CheckpointWriteFailed" })
      expect(unsigned.message).toContain("DataKeyShredded")
    }))

  it.live("under KMS the checkpoint signs and verifies; one signed with a key planted under another KMS key is refused", () =>
    Effect.gen(function*() {
      const fake = yield* FakeKms.scoped()
      const ours = fake.createKey({ alias: "alias/store" })
      const theirs = fake.createKey({ alias: "alias/attacker" })
      const kms = yield* Effect.acquireRelease(
        Effect.sync(() =>
          new KMSClient({
            endpoint: fake.endpoint,
            region: "us-east-1",
            credentials: { accessKeyId: "test", secretAccessKey: "test" }
          })
        ),
        (client) => Effect.sync(() => client.destroy())
      )
      const keyringOf = (keyId: string) =>
        Effect.map(KmsKeyring.make(kms, { keyId }), (keyring) => Layer.succeed(Keyring, keyring))
      const store = yield* keyringOf(ours.arn)
      const env = yield* freshEnv("audit-kms")
      const writer = yield* openStore(env.location, { client: env.client, keyring: store })
      yield* writer.put({ key: "/k", value: bytes("v1") })
      yield* writer.put({ key: "/k", value: bytes("v2") })
      const good = path.join(dir, "kms.checkpoint")
      expect((yield* runAudit(env, { checkpointOut: good }, env.client, store)).ok).toBe(true)
      expect((yield* runAudit(env, { checkpoint: good }, env.client, store)).ok).toBe(true)

      // A table writer with a KMS key of their own replaces the signing key item and signs a lowered checkpoint.
      yield* raw(env).delete({
        pk: { S: partitionOf(env.location.namespace) },
        sk: { B: new Uint8Array(Buffer.from(Checkpoint.signingKeyId, "utf8")) }
      })
      const forged = path.join(dir, "kms-forged.checkpoint")
      const attacker = yield* Layer.build(eventTableLayer(env.location, {
        client: env.client,
        keyring: yield* keyringOf(theirs.arn)
      }))
      yield* Checkpoint.write({
        path: forged,
        location: env.location,
        dataKeys: Context.get(attacker, DataKeys),
        keys: [["/k", 1, null]],
        takenAt: new Date().toISOString()
      })
      const refused = yield* Effect.flip(runAudit(env, { checkpoint: forged }, env.client, store))
      expect(refused).toMatchObject({ _tag: "CheckpointInvalid", kind: "forged" })
      expect(refused.message).toContain("not wrapped under this store's keyring")
    }))
})
