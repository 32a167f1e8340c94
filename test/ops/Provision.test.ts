/**
 * `provision` against DynamoDB Local: a dry run plans and changes nothing; a run creates the event table and the
 * side tables with the configured settings; a second run plans nothing; a table without stream and TTL gets
 * both; billing and deletion protection follow the shape; what cannot be changed in place is refused. DynamoDB
 * Local has no point-in-time recovery and no tags and ignores table encryption: those are noted, not applied.
 */
import { CreateTableCommand, UpdateTimeToLiveCommand } from "@aws-sdk/client-dynamodb"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as TableAdmin from "../../src/infra/ops/TableAdmin.ts"
import * as Doctor from "../../src/programs/ops/Doctor.ts"
import * as Provision from "../../src/programs/ops/Provision.ts"
import * as Target from "../../src/programs/ops/Target.ts"
import { freshTableName, makeClient } from "../support/TestStore.ts"
import { createBareEventTable, opsLayer } from "./support.ts"

const client = makeClient()
afterAll(() => client.destroy())

const onDemand: Provision.Shape = { billing: { _tag: "PayPerRequest" } }

describe("Provision", () => {
  it.live(
    "plans, creates every table with its settings, and plans nothing the second time",
    () =>
      Effect.gen(function*() {
        const target = Target.make(freshTableName("provision-new"), "ns", { views: ["byEmail"] })
        const shape: Provision.Shape = {
          billing: { _tag: "Provisioned", readCapacityUnits: 3, writeCapacityUnits: 4 },
          deletionProtection: true,
          pointInTimeRecovery: true,
          encryption: { _tag: "Kms", keyId: "arn:aws:kms:us-east-1:111122223333:key/0000-1111" },
          tags: { team: "ops" }
        }
        const dry = yield* Provision.provision({ target, shape, dryRun: true })
        expect(dry.applied).toBe(0)
        expect(dry.changes.map((change) => [change.table, change.kind])).toEqual([
          [target.table, "create-table"],
          [target.table, "enable-ttl"],
          [target.leaseTable, "create-table"],
          [target.leaseTable, "enable-ttl"],
          [target.viewTables[0], "create-table"]
        ])
        expect(dry.notes.join("\n")).toContain("no point-in-time recovery")
        expect(yield* TableAdmin.describeTable(target.table)).toBeUndefined()
        expect(Provision.render(dry)).toContain("dry run: nothing was changed")

        const applied = yield* Provision.provision({ target, shape })
        expect(applied.applied).toBe(5)
        const events = (yield* TableAdmin.describeTable(target.table))!
        expect(events).toMatchObject({
          status: "ACTIVE",
          billingMode: "provisioned",
          readCapacityUnits: 3,
          writeCapacityUnits: 4,
          deletionProtection: true,
          stream: { enabled: true, viewType: "NEW_IMAGE" }
        })
        expect(yield* TableAdmin.describeTtl(target.table)).toEqual({ status: "ENABLED", attribute: "ttl" })
        expect(yield* TableAdmin.describeTtl(target.leaseTable)).toEqual({ status: "ENABLED", attribute: "ttl" })
        expect((yield* TableAdmin.describeTable(target.viewTables[0]!))?.keySchema.map((key) => key.name)).toEqual([
          "ix",
          "key"
        ])
        const doctor = yield* Doctor.run({ target })
        expect(doctor.checks.filter((check) => check.verdict === "fail")).toEqual([])

        const again = yield* Provision.provision({ target, shape })
        expect(again.changes).toEqual([])
        expect(again.applied).toBe(0)
        // What Local cannot do is said, every time, and never planned.
        expect(again.notes.join("\n")).toContain("ignores table encryption")
        expect(again.notes.join("\n")).toContain("no tagging")
        expect(Provision.render(again)).toContain("nothing to change")

        // Back to on demand without deletion protection: two changes, then nothing again.
        const relaxed = yield* Provision.provision({ target, shape: { ...onDemand, deletionProtection: false } })
        expect(relaxed.changes.map((change) => change.kind)).toEqual(["billing", "deletion-protection"])
        expect(yield* TableAdmin.describeTable(target.table)).toMatchObject({
          billingMode: "pay_per_request",
          deletionProtection: false
        })
        expect((yield* Provision.plan(target, { ...onDemand, deletionProtection: false })).changes).toEqual([])
      }).pipe(Effect.provide(opsLayer(client))),
    // UpdateTable on DynamoDB Local takes 10-30 s on a loaded machine.
    240_000
  )

  it.live("a table without stream and TTL gets both, and doctor then passes them", () =>
    Effect.gen(function*() {
      const target = Target.make(freshTableName("provision-bare"), "ns")
      yield* Effect.promise(() => createBareEventTable(client, target.table))
      const report = yield* Provision.provision({ target, shape: onDemand })
      expect(report.changes.filter((change) => change.table === target.table).map((change) => change.kind)).toEqual([
        "enable-stream",
        "enable-ttl"
      ])
      const doctor = yield* Doctor.run({ target })
      expect(doctor.checks.find((check) => check.id === "stream")?.verdict).toBe("pass")
      expect(doctor.checks.find((check) => check.id === "ttl")?.verdict).toBe("pass")
      expect((yield* Provision.plan(target, onDemand)).changes).toEqual([])
    }).pipe(Effect.provide(opsLayer(client))), 120_000)

  it.live("refuses a foreign key schema and TTL on another attribute, changing nothing", () =>
    Effect.gen(function*() {
      const foreign = Target.make(freshTableName("provision-foreign"), "ns")
      yield* Effect.promise(() =>
        client.send(
          new CreateTableCommand({
            TableName: foreign.table,
            KeySchema: [{ AttributeName: "HashKey", KeyType: "HASH" }],
            AttributeDefinitions: [{ AttributeName: "HashKey", AttributeType: "S" }],
            BillingMode: "PAY_PER_REQUEST"
          })
        )
      )
      const refused = yield* Effect.flip(Provision.provision({ target: foreign, shape: onDemand }))
      expect(refused._tag).toBe("ProvisionRefused")
      expect(refused.message).toContain("key schema must be pk HASH, sk RANGE")
      expect(yield* TableAdmin.describeTable(foreign.leaseTable)).toBeUndefined()

      const otherTtl = Target.make(freshTableName("provision-ttl"), "ns")
      yield* Effect.promise(() => createBareEventTable(client, otherTtl.table, true))
      yield* Effect.promise(() =>
        client.send(
          new UpdateTimeToLiveCommand({
            TableName: otherTtl.table,
            TimeToLiveSpecification: { AttributeName: "Expires", Enabled: true }
          })
        )
      )
      const ttl = yield* Effect.flip(Provision.provision({ target: otherTtl, shape: onDemand }))
      expect(ttl.message).toContain("TTL is on attribute Expires")
    }).pipe(Effect.provide(opsLayer(client))), 60_000)
})

describe("Provision.shapeOf", () => {
  it("maps the configuration's billing and the flags", () => {
    expect(Provision.shapeOf({ billingMode: "pay_per_request", readCapacityUnits: 5, writeCapacityUnits: 5 })).toEqual({
      billing: { _tag: "PayPerRequest" },
      pointInTimeRecovery: undefined,
      deletionProtection: undefined,
      encryption: undefined,
      tags: undefined
    })
    const shape = Provision.shapeOf(
      { billingMode: "provisioned", readCapacityUnits: 7, writeCapacityUnits: 9 },
      { pointInTimeRecovery: true, encryption: "aws-managed", tags: { team: "ops" } }
    )
    expect(shape.billing).toEqual({ _tag: "Provisioned", readCapacityUnits: 7, writeCapacityUnits: 9 })
    expect(shape.encryption).toEqual({ _tag: "AwsManaged" })
    expect(
      Provision.shapeOf({ billingMode: "pay_per_request", readCapacityUnits: 1, writeCapacityUnits: 1 }, {
        encryption: "arn:aws:kms:eu-west-1:111122223333:key/k"
      }).encryption
    ).toEqual({ _tag: "Kms", keyId: "arn:aws:kms:eu-west-1:111122223333:key/k" })
  })
})
