/**
 * `doctor` against DynamoDB Local and a fake KMS: a healthy store passes; a table without a stream, one without
 * TTL, a missing table, refused credentials, an unreachable endpoint and KMS keys the keyring cannot use each fail
 * with their own fix. Nothing doctor does changes a table.
 */
import { DynamoDBClient, ScanCommand } from "@aws-sdk/client-dynamodb"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as KmsKeyring from "../../src/infra/crypto/KmsKeyring.ts"
import * as ProjectionLeases from "../../src/infra/ProjectionLeases.ts"
import * as Doctor from "../../src/programs/ops/Doctor.ts"
import * as Target from "../../src/programs/ops/Target.ts"
import * as FakeKms from "../support/FakeKms.ts"
import { endpoint, freshTableName, makeClient, provisionTable, sharedKeyring } from "../support/TestStore.ts"
import { createBareEventTable, opsLayer } from "./support.ts"

const client = makeClient()
afterAll(() => client.destroy())

const check = (report: Doctor.DoctorReport, id: string) => report.checks.find((entry) => entry.id === id)!

const evidence = (report: Doctor.DoctorReport, action: string, resource: string) =>
  report.permissions.flatMap((feature) => feature.permissions).find((entry) =>
    entry.action === action && entry.resource === resource
  )?.evidence

describe("Doctor", () => {
  it.live(
    "a provisioned store with its lease table and keyring passes, proving item permissions without writing",
    () =>
      Effect.gen(function*() {
        const location = yield* provisionTable(client, freshTableName("doctor-ok"))
        const target = Target.make(location.table, location.namespace)
        yield* ProjectionLeases.ensureTable(target.leaseTable)
        const report = yield* Doctor.run({ target, keyring: sharedKeyring })
        expect(report.checks.filter((entry) => entry.verdict !== "pass")).toEqual([])
        expect(report.ok).toBe(true)
        expect(check(report, "encryption").detail).toContain("made a data key and unwrapped it again")
        for (const action of ["Query", "GetItem", "PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem"]) {
          expect(evidence(report, `dynamodb:${action}`, `table/${location.table}`)).toBe("verified")
        }
        expect(evidence(report, "dynamodb:DescribeStream", `table/${location.table}/stream/*`)).toBe("verified")
        expect(evidence(report, "dynamodb:GetRecords", `table/${location.table}/stream/*`)).toBe("verified")
        expect(evidence(report, "dynamodb:DescribeTimeToLive", `table/${target.leaseTable}`)).toBe("verified")
        expect(evidence(report, "dynamodb:CreateTable", `table/${location.table}`)).toBe("inferred")
        // The probes wrote nothing: the table is as empty as before.
        const items = yield* Effect.promise(() => client.send(new ScanCommand({ TableName: location.table })))
        expect(items.Count).toBe(0)
        const text = Doctor.render(report, { permissions: true })
        expect(text).toContain("no problem found")
        expect(text).toContain(`verified  dynamodb:PutItem on table/${location.table}`)
        expect(JSON.parse(JSON.stringify(report))).toEqual(report)
      }).pipe(Effect.provide(opsLayer(client))),
    90_000
  )

  it.live("a table without a stream and without TTL fails both checks, each with its fix", () =>
    Effect.gen(function*() {
      const table = freshTableName("doctor-bare")
      yield* Effect.promise(() => createBareEventTable(client, table))
      const report = yield* Doctor.run({ target: Target.make(table, "ns") })
      expect(report.ok).toBe(false)
      expect(check(report, "table").verdict).toBe("pass")
      expect(check(report, "stream")).toMatchObject({ verdict: "fail" })
      expect(check(report, "stream").detail).toContain("has no stream")
      expect(check(report, "stream").fix).toContain("dynastate provision")
      expect(check(report, "stream").fix).toContain("StreamViewType=NEW_IMAGE")
      expect(check(report, "ttl")).toMatchObject({ verdict: "fail" })
      expect(check(report, "ttl").fix).toContain("AttributeName=ttl")
      expect(check(report, "lease-table").verdict).toBe("warn")
      expect(check(report, "encryption").verdict).toBe("skip")
      expect(Doctor.render(report)).toContain("2 checks failed")
    }).pipe(Effect.provide(opsLayer(client))))

  it.live("a missing table fails and names provision", () =>
    Effect.gen(function*() {
      const report = yield* Doctor.run({ target: Target.make(freshTableName("doctor-missing"), "ns") })
      expect(check(report, "table")).toMatchObject({ verdict: "fail" })
      expect(check(report, "table").fix).toContain("dynastate provision")
      expect(check(report, "stream").verdict).toBe("skip")
    }).pipe(Effect.provide(opsLayer(client))))

  it.live("refused credentials and an unreachable endpoint fail the credentials check", () =>
    Effect.gen(function*() {
      const refusing = new DynamoDBClient({
        endpoint: endpoint(),
        region: "us-east-1",
        credentials: { accessKeyId: "", secretAccessKey: "" }
      })
      const unreachable = new DynamoDBClient({
        endpoint: "http://127.0.0.1:9",
        region: "us-east-1",
        credentials: { accessKeyId: "a", secretAccessKey: "b" },
        maxAttempts: 1
      })
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          refusing.destroy()
          unreachable.destroy()
        })
      )
      const target = Target.make(freshTableName("doctor-creds"), "ns")
      const refused = yield* Doctor.run({ target }).pipe(Effect.provide(opsLayer(refusing)))
      expect(check(refused, "credentials")).toMatchObject({ verdict: "fail" })
      expect(check(refused, "credentials").detail).toContain("refused the credentials")
      expect(check(refused, "tables").verdict).toBe("skip")
      const missing = new DynamoDBClient({
        endpoint: endpoint(),
        region: "us-east-1",
        // What the SDK's default chain throws when no provider has credentials.
        credentials: () =>
          Promise.reject(
            Object.assign(new Error("Could not load credentials from any providers"), {
              name: "CredentialsProviderError"
            })
          ),
        maxAttempts: 1
      })
      const none = yield* Doctor.run({ target }).pipe(Effect.provide(opsLayer(missing)))
      missing.destroy()
      expect(check(none, "credentials").detail).toContain("no credentials found")
      expect(check(none, "credentials").fix).toContain("AWS_PROFILE")
      const down = yield* Doctor.run({ target }).pipe(Effect.provide(opsLayer(unreachable)))
      expect(check(down, "credentials").detail).toContain("could not be reached")
      expect(check(down, "credentials").fix).toContain("--endpoint")
    }).pipe(Effect.scoped))

  it.live("KMS keys the keyring cannot use: disabled, missing, access denied", () =>
    Effect.gen(function*() {
      const kms = yield* FakeKms.scoped()
      const location = yield* provisionTable(client, freshTableName("doctor-kms"))
      const target = Target.make(location.table, location.namespace)
      const keyring = (keyId: string) =>
        KmsKeyring.layer({
          keyId,
          endpoint: kms.endpoint,
          region: kms.region,
          credentials: { accessKeyId: "test", secretAccessKey: "test" },
          maxAttempts: 1
        })
      const usable = kms.createKey({ alias: "alias/usable" })
      const good = yield* Doctor.run({ target, keyring: keyring("alias/usable"), kmsKeys: ["alias/usable"] })
      expect(check(good, "encryption").verdict).toBe("pass")
      expect(evidence(good, "kms:GenerateDataKey", "key alias/usable")).toBe("verified")

      const disabled = kms.createKey({ alias: "alias/disabled" })
      kms.disableKey(disabled.keyId)
      const off = yield* Doctor.run({ target, keyring: keyring("alias/disabled"), kmsKeys: ["alias/disabled"] })
      expect(check(off, "encryption")).toMatchObject({ verdict: "fail" })
      expect(check(off, "encryption").detail).toContain("key-disabled")
      expect(check(off, "encryption").fix).toContain("aws kms enable-key")

      const missing = yield* Doctor.run({ target, keyring: keyring("alias/nowhere") })
      expect(check(missing, "encryption").detail).toContain("key-not-found")
      expect(check(missing, "encryption").fix).toContain("storage.kms_key")

      kms.injectFailures({ operation: "GenerateDataKey", error: "AccessDeniedException", times: 1 })
      const denied = yield* Doctor.run({ target, keyring: keyring(usable.arn), kmsKeys: [usable.arn] })
      expect(check(denied, "encryption").detail).toContain("access-denied")
      expect(check(denied, "encryption").fix).toContain("kms:GenerateDataKey")
      expect(evidence(denied, "kms:GenerateDataKey", `key ${usable.arn}`)).toBe("denied")
      expect(check(denied, "permissions")).toMatchObject({ verdict: "fail" })

      const pending = kms.createKey({ alias: "alias/pending" })
      kms.scheduleDeletion(pending.keyId)
      const deleting = yield* Doctor.run({ target, keyring: keyring("alias/pending") })
      expect(check(deleting, "encryption").fix).toContain("cancel-key-deletion")
    }).pipe(Effect.scoped, Effect.provide(opsLayer(client))), 90_000)
})
