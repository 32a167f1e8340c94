/**
 * A namespace's store, worker and operational commands name only that namespace's partitions. Every request their
 * SDK clients send is recorded (a middleware reads each request's Key, Item, transaction items and key condition)
 * over a workload of every operation — writes of every kind, reads, ranges, watch, history, rewrap and shred, the
 * worker's compaction and expiry, backup, whole-namespace compaction, status and doctor — on a table another
 * namespace shares, with keys of the same names. Then: no request names another partition or scans, and the
 * namespace's generated IAM policy (`NamespacePolicy`) allows every request made, so the policy is enough to run.
 * KMS (a fake speaking KMS's protocol) is asked only for data keys whose encryption context names the table and
 * the namespace, which the policy's KMS statements require. What DynamoDB Local cannot show is IAM itself:
 * `NamespacePolicy.test.ts` evaluates the policy.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { KMSClient } from "@aws-sdk/client-kms"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Result, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Action, Condition } from "../../src/domain/AtomicWrite.ts"
import { Keyring } from "../../src/infra/crypto/Keyring.ts"
import * as KmsKeyring from "../../src/infra/crypto/KmsKeyring.ts"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import { HistoryArea } from "../../src/infra/HistoryArea.ts"
import * as NamespacePartitions from "../../src/infra/NamespacePartitions.ts"
import * as ProjectionLeases from "../../src/infra/ProjectionLeases.ts"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import { workerLayer } from "../../src/programs/app/WorkerLive.ts"
import * as Backup from "../../src/programs/ops/Backup.ts"
import * as Doctor from "../../src/programs/ops/Doctor.ts"
import * as NamespacePolicy from "../../src/programs/ops/NamespacePolicy.ts"
import * as Status from "../../src/programs/ops/Status.ts"
import * as Target from "../../src/programs/ops/Target.ts"
import { defaultStoreOptions, Store } from "../../src/programs/store/Store.ts"
import type { WatchEvent } from "../../src/programs/store/Watch.ts"
import { Compaction } from "../../src/programs/worker/Compaction.ts"
import * as FakeKms from "../support/FakeKms.ts"
import { rawPartition } from "../support/RawTable.ts"
import { eventTableLayer, makeClient, openStore, streamsConfig } from "../support/TestStore.ts"
import { bytes, eventually, freshEnv, testWorkerOptions } from "../worker/support.ts"
import { allows } from "./policyEvaluator.ts"

/** One request as the recorder saw it: its command, table or stream, and the partition keys it names. */
interface Recorded {
  readonly command: string
  /** The IAM action each item of the request is authorised as, with that item's table and partition key. */
  readonly items: ReadonlyArray<{ readonly action: string; readonly table: string; readonly partition: string }>
  /** The table (or stream ARN) of a request that names no item: describe, stream reads. */
  readonly resource: string | undefined
}

type Attributes = Record<string, { readonly S?: string | undefined } | undefined> | undefined

const hashAttribute = (table: string) => (table.includes(".view.") ? "ix" : "pk")

/** The partition key a Query's key condition names (`pk = :pk`, or `#h = :h` with `#h` naming the hash key). */
const queried = (input: Record<string, unknown>, table: string): string => {
  const expression = String(input["KeyConditionExpression"] ?? "")
  const names = (input["ExpressionAttributeNames"] ?? {}) as Record<string, string>
  const values = (input["ExpressionAttributeValues"] ?? {}) as Attributes
  for (const [, name, placeholder] of expression.matchAll(/([#\w]+)\s*=\s*(:\w+)/g)) {
    if ((names[name!] ?? name) === hashAttribute(table)) return values?.[placeholder!]?.S ?? "<not a string>"
  }
  return "<no partition in the key condition>"
}

const itemOf = (action: string, table: string, keys: Attributes) => ({
  action,
  table,
  partition: keys?.[hashAttribute(table)]?.S ?? "<no partition>"
})

/** What a request names, by command. */
const recordOf = (command: string, input: Record<string, unknown>): Recorded => {
  const table = String(input["TableName"] ?? "")
  const single = (action: string, keys: unknown) => ({
    command,
    items: [itemOf(action, table, keys as Attributes)],
    resource: undefined
  })
  switch (command) {
    case "GetItemCommand":
      return single("dynamodb:GetItem", input["Key"])
    case "PutItemCommand":
      return single("dynamodb:PutItem", input["Item"])
    case "UpdateItemCommand":
      return single("dynamodb:UpdateItem", input["Key"])
    case "DeleteItemCommand":
      return single("dynamodb:DeleteItem", input["Key"])
    case "QueryCommand":
      return {
        command,
        items: [{ action: "dynamodb:Query", table, partition: queried(input, table) }],
        resource: undefined
      }
    case "TransactWriteItemsCommand": {
      const items = (input["TransactItems"] as ReadonlyArray<Record<string, Record<string, unknown>>>).map((entry) => {
        const [kind, body] = Object.entries(entry)[0]!
        const action =
          { Put: "PutItem", Update: "UpdateItem", Delete: "DeleteItem", ConditionCheck: "ConditionCheckItem" }[
            kind
          ]
        return itemOf(`dynamodb:${action}`, String(body["TableName"]), (body["Item"] ?? body["Key"]) as Attributes)
      })
      return { command, items, resource: undefined }
    }
    case "BatchWriteItemCommand":
    case "BatchGetItemCommand":
    case "TransactGetItemsCommand":
    case "ScanCommand":
    case "ExecuteStatementCommand":
      // None of these is used by the store; record them as naming nothing confinable, so the test fails loudly.
      return {
        command,
        items: [{ action: `dynamodb:${command}`, table, partition: "<unconfinable>" }],
        resource: undefined
      }
    default:
      // GetRecords names only its iterator; IAM authorises it on the stream the iterator was taken from.
      return { command, items: [], resource: String(input["StreamArn"] ?? input["TableName"] ?? "stream") }
  }
}

/** Adds the recording middleware to a client; returns it. */
const recording = <C extends DynamoDBClient | DynamoDBStreamsClient>(client: C, log: Array<Recorded>): C => {
  const stack = client.middlewareStack as unknown as {
    add: (middleware: unknown, options: { step: string; name: string }) => void
  }
  stack.add(
    (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) =>
    (args: { input: Record<string, unknown> }) => {
      log.push(recordOf(String(context.commandName), args.input))
      return next(args)
    },
    { step: "initialize", name: "tenantRecorder" }
  )
  return client
}

/** The resource ARN IAM sees for a request DynamoDB Local served. */
const arnOf = (table: string) => `arn:aws:dynamodb:ddblocal:000000000000:table/${table}`

describe("tenant isolation", () => {
  it.live(
    "every request of a namespace's store, worker and ops commands names only its partitions, and its policy allows each",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("tenant")
        const mine = { table: env.location.table, namespace: "tenant-a" }
        const theirs = { table: env.location.table, namespace: "tenant-b" }
        const group = "tenant-a"
        const target = Target.make(mine.table, mine.namespace, { leaseGroup: group })
        // Set up by an administrator, not recorded: the other namespace's data (same key names), the lease table.
        const other = yield* openStore(theirs, { client: env.client })
        for (const key of ["/app/a", "/app/b", "/app/r1", "/app/exp"]) {
          yield* other.put({ key, value: bytes(`b:${key}`) })
        }
        yield* ProjectionLeases.ensureTable(env.leaseTable).pipe(
          Effect.provideService(Dynamo, Dynamo.fromClient(env.client))
        )

        const kms = yield* FakeKms.scoped()
        const key = kms.createKey()
        const kmsClient = new KMSClient({
          endpoint: kms.endpoint,
          region: kms.region,
          credentials: { accessKeyId: "test", secretAccessKey: "test" }
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => kmsClient.destroy()))
        const keyring = yield* KmsKeyring.make(kmsClient, { keyId: key.arn })
        const keyringLayer = Layer.succeed(Keyring, keyring)

        const log: Array<Recorded> = []
        const dynamo = recording(makeClient(), log)
        const streams = recording(new DynamoDBStreamsClient(streamsConfig()), log)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            dynamo.destroy()
            streams.destroy()
          })
        )
        const services = Store.layer(defaultStoreOptions).pipe(
          Layer.provideMerge(Layer.succeed(StreamsApi, fromClients(dynamo, streams))),
          Layer.provideMerge(eventTableLayer(mine, { client: dynamo, keyring: keyringLayer }))
        )
        const context = yield* Layer.build(
          workerLayer(
            { ...testWorkerOptions(env, { group }), leases: { table: env.leaseTable, group } },
            { retention: { _tag: "Forever" }, settleMillis: 0 }
          ).pipe(Layer.provideMerge(services))
        )
        const store = Context.get(context, Store)

        // The application's workload: every operation of the store.
        const watched: Array<WatchEvent> = []
        const watcher = yield* store.watch({ prefixes: ["/app/"] }).pipe(
          Stream.runForEach((event) => Effect.sync(() => void watched.push(event))),
          Effect.forkChild
        )
        yield* eventually("the watch is live", Effect.sync(() => expect(watched[0]?._tag).toBe("Init")), 10_000, 20)
        yield* store.create({ key: "/app/a", value: bytes("a1") })
        // A value above what one item holds: its chunks take a partition of their own.
        const large = new Uint8Array(500_000).fill(7)
        yield* store.put({ key: "/app/large", value: large })
        expect((yield* store.get("/app/large")).value).toEqual(large)
        for (const n of [1, 2, 3]) yield* store.put({ key: "/app/b", value: bytes(`b${n}`) })
        yield* store.update({ key: "/app/b", value: bytes("b4") })
        yield* store.compareAndSwap({ key: "/app/b", value: bytes("b4") }, { key: "/app/b", value: bytes("b5") })
        const b = yield* store.get("/app/b")
        const lease = yield* store.conditionalUpdate({ ...b, value: bytes("b6") })
        yield* store.keepAlive(lease, Date.now() + 3_600_000)
        for (const n of [1, 2, 3]) yield* store.put({ key: `/app/r${n}`, value: bytes(`r${n}`) })
        expect((yield* store.getRange("/app/", "/app/~")).map((item) => item.key)).toContain("/app/r2")
        yield* Stream.runCollect(store.items({ start: "/app/", end: "/app/~", descending: true }))
        yield* store.atomicWrite([
          { key: "/app/a", condition: Condition.exists, action: Action.put(bytes("a2")) },
          { key: "/app/u", condition: Condition.notExists, action: Action.put(bytes("u")) }
        ])
        yield* store.put({ key: "/app/c", value: bytes("c") })
        yield* store.delete("/app/c")
        expect(yield* store.deleteRange("/app/r1", "/app/r2")).toBe(2)
        yield* store.put({ key: "/app/exp", value: bytes("soon"), expires: Date.now() + 1500 })
        yield* Stream.runCollect(store.history("/app/b"))
        yield* store.getAt("/app/b", { _tag: "Revision", revision: b.revision })

        // The worker compacts (history and graves) and records the expiry nobody reads.
        yield* eventually(
          "the worker moved superseded events to the history area and recorded the expiry",
          Effect.gen(function*() {
            const history = yield* Effect.promise(() =>
              rawPartition(env.client, mine.table, NamespacePartitions.partitionsOf(mine)[2]!.key)
            )
            expect(history.length).toBeGreaterThan(0)
            expect(watched.some((event) => event._tag === "Expire")).toBe(true)
          }),
          20_000
        )
        yield* Fiber.interrupt(watcher)
        expect(yield* store.rewrap(keyring)).toBeGreaterThan(0)

        // The operational commands for the namespace, on the same recording client.
        const ops = Layer.mergeAll(
          Layer.succeed(Dynamo, Dynamo.fromClient(dynamo)),
          Layer.succeed(StreamsApi, fromClients(dynamo, streams))
        )
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-tenant-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const backup = yield* Backup.backup(target, path.join(dir, "a.backup")).pipe(Effect.provide(ops))
        expect(backup.header.counts.event).toBeGreaterThan(0)
        const compactionLayer = Compaction.layer.pipe(
          Layer.provideMerge(HistoryArea.layer),
          Layer.provideMerge(eventTableLayer(mine, { client: dynamo, keyring: keyringLayer }))
        )
        const compaction = Context.get(yield* Layer.build(compactionLayer), Compaction)
        yield* compaction.all(() => Effect.void)
        const status = yield* Status.status(target).pipe(Effect.provide(ops))
        expect(status.table.exists).toBe(true)
        const doctor = yield* Doctor.run({ target, keyring: keyringLayer, kmsKeys: [key.arn] }).pipe(
          Effect.provide(ops)
        )
        expect(doctor.checks.length).toBeGreaterThan(0)
        expect(yield* store.shred("")).toBeGreaterThan(0)

        // The other namespace was never named, and its data is as it was.
        const allowed = new Set(NamespacePartitions.partitionsOf(mine).map((partition) => partition.key))
        const leasePartitions = new Set(ProjectionLeases.partitionsOf({ table: env.leaseTable, group }))
        const items = log.flatMap((entry) => entry.items)
        expect(items.length).toBeGreaterThan(100)
        const strays = items.filter((item) =>
          item.table === mine.table ? !allowed.has(item.partition) : !leasePartitions.has(item.partition)
        )
        expect(strays).toEqual([])
        expect(new Set(items.map((item) => item.table))).toEqual(new Set([mine.table, env.leaseTable]))
        expect(log.map((entry) => entry.command)).not.toContain("ScanCommand")
        // Every partition kind was touched, so the workload covered every item kind.
        expect(new Set(items.filter((item) => item.table === mine.table).map((item) => item.partition))).toEqual(
          allowed
        )
        expect((yield* other.get("/app/b")).value).toEqual(bytes("b:/app/b"))

        // The worker role's policy (a superset of the application's) allows every request the workload made.
        const made = NamespacePolicy.make({ target, role: "worker", kmsKeys: [key.arn] })
        if (Result.isFailure(made)) throw new Error(made.failure.message)
        const policy = NamespacePolicy.toJson(made.success)
        const refused = [
          ...items.filter((item) =>
            !allows(policy, {
              action: item.action,
              resource: arnOf(item.table),
              context: { "dynamodb:LeadingKeys": [item.partition] }
            })
          ),
          // Doctor lists tables to prove the credentials, and says the store does not need it when denied.
          ...log.filter((entry) => entry.items.length === 0 && entry.command !== "ListTablesCommand").filter((entry) =>
            !allows(policy, {
              action: `dynamodb:${entry.command.replace(/Command$/, "")}`,
              resource: entry.resource === "stream"
                ? arnOf(`${mine.table}/stream/any`)
                : entry.resource!.startsWith("arn:")
                ? entry.resource!
                : arnOf(entry.resource!),
              context: {}
            })
          )
        ]
        expect(refused).toEqual([])

        // KMS saw only this namespace's data keys (and doctor's check, made in the store's own context), each allowed.
        expect(kms.requests.length).toBeGreaterThan(2)
        const kmsRefused = kms.requests.filter((request) =>
          !allows(policy, {
            action: `kms:${request.operation}`,
            resource: key.arn,
            context: Object.fromEntries(
              Object.entries(request.encryptionContext ?? {}).map((
                [name, value]
              ) => [`kms:EncryptionContext:${name}`, value])
            )
          })
        )
        // Except rewrap's kms:Encrypt (wrapping the data keys anew): an administrator's operation, as the notes say.
        expect(new Set(kmsRefused.map((request) => request.operation))).toEqual(new Set(["Encrypt"]))
        for (const request of kms.requests.filter((entry) => entry.operation !== "DescribeKey")) {
          expect(request.encryptionContext).toMatchObject({
            "dynastate:table": mine.table,
            "dynastate:namespace": mine.namespace
          })
        }
      }),
    90_000
  )

  it.live(
    "a reader's requests (get, range, history, backup) are all allowed by the readonly policy",
    () =>
      Effect.gen(function*() {
        const env = yield* freshEnv("tenant-reader")
        const mine = { table: env.location.table, namespace: "tenant-r" }
        const target = Target.make(mine.table, mine.namespace)
        const writer = yield* openStore(mine, { client: env.client })
        for (const n of [1, 2]) yield* writer.put({ key: "/r/a", value: bytes(`a${n}`) })
        yield* writer.put({ key: "/r/b", value: bytes("b") })

        const log: Array<Recorded> = []
        const dynamo = recording(makeClient(), log)
        yield* Effect.addFinalizer(() => Effect.sync(() => dynamo.destroy()))
        const reader = yield* openStore(mine, { client: dynamo })
        expect((yield* reader.get("/r/a")).value).toEqual(bytes("a2"))
        expect(yield* reader.getRange("/r/", "/r/~")).toHaveLength(2)
        expect(yield* Stream.runCollect(reader.history("/r/a"))).toHaveLength(2)
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-tenant-reader-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        yield* Backup.backup(target, path.join(dir, "r.backup")).pipe(
          Effect.provideService(Dynamo, Dynamo.fromClient(dynamo))
        )

        const made = NamespacePolicy.make({ target, role: "readonly", kmsKeys: [] })
        if (Result.isFailure(made)) throw new Error(made.failure.message)
        const policy = NamespacePolicy.toJson(made.success)
        const items = log.flatMap((entry) => entry.items)
        expect(new Set(items.map((item) => item.action))).toEqual(new Set(["dynamodb:GetItem", "dynamodb:Query"]))
        const refused = items.filter((item) =>
          !allows(policy, {
            action: item.action,
            resource: arnOf(item.table),
            context: { "dynamodb:LeadingKeys": [item.partition] }
          })
        )
        expect(refused).toEqual([])
      }),
    60_000
  )
})
