/**
 * The per-namespace IAM policy (`NamespacePolicy`), evaluated by `policyEvaluator` against requests whose
 * partition keys come from the record codecs themselves (events, graves, history, data keys, leases), never from
 * strings written here: every item kind the store writes is allowed, every other namespace's partitions are not,
 * and the document is JSON IAM accepts. No DynamoDB: IAM does not exist on DynamoDB Local.
 */
import { Result } from "effect"
import { describe, expect, it } from "vitest"
import { partitionOf as dataKeyPartition } from "../../src/infra/crypto/DataKeyStore.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import type { Location } from "../../src/infra/EventRecord.ts"
import * as GraveRecord from "../../src/infra/GraveRecord.ts"
import * as HistoryRecord from "../../src/infra/HistoryRecord.ts"
import { keyPartition, metaPartition } from "../../src/infra/PartitionKeys.ts"
import * as ProjectionLeases from "../../src/infra/ProjectionLeases.ts"
import * as ValueChunks from "../../src/infra/ValueChunks.ts"
import * as NamespacePolicy from "../../src/programs/ops/NamespacePolicy.ts"
import type { PolicyOptions, Role } from "../../src/programs/ops/NamespacePolicy.ts"
import { actions } from "../../src/programs/ops/Permissions.ts"
import * as Target from "../../src/programs/ops/Target.ts"
import { allows } from "./policyEvaluator.ts"

const table = "shared"
const account = "123456789012"
const region = "eu-west-1"
const key = `arn:aws:kms:${region}:${account}:key/1234abcd-12ab-34cd-56ef-1234567890ab`
const copyKey = `arn:aws:kms:us-east-1:${account}:key/abcd1234-12ab-34cd-56ef-1234567890ab`
const tableArn = (name: string) => `arn:aws:dynamodb:${region}:${account}:table/${name}`

/** The partition key each codec writes for the namespace, read off the items (or keys) the codecs make. */
const codecPartitions = (location: Location, key = "/k"): ReadonlyArray<string> => {
  const grave = GraveRecord.graveKey(location, key)
  return [
    GraveRecord.toTombstone(location, grave)[Attr.partition]!.S!, // a live event, as the grave restores it
    grave[Attr.partition]!.S!,
    HistoryRecord.firstSeqKey(location, key)[Attr.partition]!.S!,
    HistoryRecord.freedMarker(location, key, 1)[Attr.partition]!.S!,
    dataKeyPartition(location.namespace)
  ]
}

const namespaces = ["default", "/teleport", "a$b*c?d", `\${aws:username}`, "名前空間/x", "tab\there", "é"]

const policyFor = (namespace: string, role: Role, extra: Partial<PolicyOptions> = {}) => {
  const target = Target.make(table, namespace, { leaseGroup: `workers-${namespace}`, views: ["byEmail"] })
  const made = NamespacePolicy.make({ target, role, kmsKeys: [key], region, account, ...extra })
  if (Result.isFailure(made)) throw new Error(made.failure.message)
  return { target, document: made.success, json: NamespacePolicy.toJson(made.success) }
}

const item = (action: string, partition: string, resource = tableArn(table)) => ({
  action,
  resource,
  context: { "dynamodb:LeadingKeys": [partition] }
})

describe("NamespacePolicy", () => {
  it("allows every item kind the codecs write for the namespace, for every item action of the role", () => {
    for (const namespace of namespaces) {
      for (const role of NamespacePolicy.roles) {
        const { json, target } = policyFor(namespace, role)
        const granted = role === "readonly" ? actions.read : [...actions.read, ...actions.write]
        for (const partition of codecPartitions(Target.locationOf(target))) {
          for (const action of granted) expect(allows(json, item(action, partition)), `${role} ${action}`).toBe(true)
        }
        if (role === "readonly") {
          for (const action of actions.write) expect(allows(json, item(action, namespace))).toBe(false)
        }
      }
    }
  })

  it("on a partitioned key space, allows every partition of the layout (each bucket's events, graves, history, chunks) and the layout record, and no other", () => {
    const partitions = [{ prefix: "/own/", name: "own" }, { prefix: "/hot/", name: "hot", buckets: 4 }]
    for (const match of ["exact", "wildcard"] as const) {
      const target = Target.make(table, "app", { leaseGroup: "workers-app", partitions })
      const made = NamespacePolicy.make({ target, role: "app", kmsKeys: [key], region, account, match })
      if (Result.isFailure(made)) throw new Error(made.failure.message)
      const json = NamespacePolicy.toJson(made.success)
      const location = Target.locationOf(target)
      const keys = ["/k", "/own/a", ...Array.from({ length: 16 }, (_, i) => `/hot/${i}`)]
      const written = [
        ...keys.flatMap((each) => codecPartitions(location, each)),
        ...keys.map((each) => ValueChunks.chunkPartition({ ...location, namespace: keyPartition(location, each) })),
        metaPartition("app")
      ]
      // Six live partitions (default, own, four buckets), each with graves, history and chunks; data keys; the record.
      expect(new Set(written).size).toBe(6 * 4 + 2)
      for (const partition of written) {
        for (const action of [...actions.read, ...actions.write]) {
          expect(allows(json, item(action, partition)), `${match} ${JSON.stringify(partition)}`).toBe(true)
        }
      }
      for (const partition of ["app\u0000@hot.4", "app\u0000@other", "app\u0000@hot", "app\u0000@own.0\u0000history"]) {
        expect(allows(json, item("dynamodb:GetItem", partition)), JSON.stringify(partition)).toBe(false)
      }
    }
  })

  it("refuses every partition of another namespace, and one no store uses", () => {
    for (const namespace of namespaces) {
      const { json } = policyFor(namespace, "app")
      const others = ["other", `${namespace}x`, namespace.slice(0, -1), `x${namespace}`, `${namespace}/graves`]
      const foreign = [
        ...others.flatMap((other) => codecPartitions({ table, namespace: other })),
        "\u0000dynastate-doctor",
        `${namespace}\u0000graves2`,
        `${namespace}\u0001history`
      ]
      for (const partition of foreign) {
        for (const action of [...actions.read, ...actions.write]) {
          expect(allows(json, item(action, partition)), JSON.stringify(partition)).toBe(false)
        }
      }
      // A transaction or batch naming one foreign partition beside its own is refused as a whole.
      expect(
        allows(json, {
          ...item("dynamodb:PutItem", namespace),
          context: { "dynamodb:LeadingKeys": [namespace, "other"] }
        })
      )
        .toBe(false)
    }
  })

  it("grants nothing that names no partition: Scan, PartiQL and batch reads are refused", () => {
    for (const role of NamespacePolicy.roles) {
      const { json } = policyFor("app", role)
      for (
        const action of ["dynamodb:Scan", "dynamodb:PartiQLSelect", "dynamodb:BatchGetItem", "dynamodb:DeleteTable"]
      ) {
        expect(allows(json, { action, resource: tableArn(table), context: {} })).toBe(false)
      }
      // Even an item action arriving without the key (as a Scan does) is refused, by the Null check.
      expect(allows(json, { action: "dynamodb:Query", resource: tableArn(table), context: {} })).toBe(false)
    }
  })

  it("grants each role exactly its actions, from the Permissions catalogue, never a wildcard action", () => {
    const actionsOf = (role: Role, extra: Partial<PolicyOptions> = {}) =>
      new Set(policyFor("app", role, extra).document.Statement.flatMap((statement) => statement.Action))
    const items = [...actions.read, ...actions.write]
    expect(actionsOf("readonly")).toEqual(
      new Set([...actions.read, ...actions.tableSetup, "kms:Decrypt", "kms:DescribeKey"])
    )
    expect(actionsOf("app")).toEqual(
      new Set([...items, ...actions.tableSetup, ...actions.kmsDataKeys, ...actions.kmsResolve])
    )
    expect(actionsOf("app", { watch: true })).toEqual(
      new Set([...items, ...actions.tableSetup, ...actions.stream, ...actions.kmsDataKeys, ...actions.kmsResolve])
    )
    expect(actionsOf("worker")).toEqual(
      new Set([
        ...items,
        ...actions.tableSetup,
        ...actions.stream,
        ...actions.leases,
        ...actions.views,
        ...actions.kmsDataKeys,
        ...actions.kmsResolve
      ])
    )
    expect(actionsOf("app", { createTables: true })).toEqual(
      new Set([...items, ...actions.tableSetup, ...actions.tableCreate, ...actions.kmsDataKeys, ...actions.kmsResolve])
    )
    for (const role of NamespacePolicy.roles) {
      for (const action of actionsOf(role)) expect(action).not.toContain("*")
    }
  })

  it("confines the worker's leases to its group's partitions, and its views to their tables", () => {
    const { json, target } = policyFor("app", "worker")
    const leaseArn = tableArn(target.leaseTable)
    for (const partition of ProjectionLeases.partitionsOf({ table: target.leaseTable, group: target.leaseGroup })) {
      for (const action of actions.leases) expect(allows(json, item(action, partition, leaseArn))).toBe(true)
    }
    for (const partition of ProjectionLeases.partitionsOf({ table: target.leaseTable, group: "default" })) {
      expect(allows(json, item("dynamodb:UpdateItem", partition, leaseArn))).toBe(false)
    }
    expect(allows(json, item("dynamodb:PutItem", "\u0000by-key", tableArn(`${table}.view.byEmail`)))).toBe(true)
    expect(allows(json, item("dynamodb:PutItem", "\u0000by-key", tableArn(`${table}.view.other`)))).toBe(false)
    // The application only queries its views; the worker maintains them.
    const app = policyFor("app", "app").json
    expect(allows(app, item("dynamodb:Query", "0abc", tableArn(`${table}.view.byEmail`)))).toBe(true)
    expect(allows(app, item("dynamodb:PutItem", "\u0000by-key", tableArn(`${table}.view.byEmail`)))).toBe(false)
    // The stream is granted table-wide: IAM has no LeadingKeys for it, as the notes say.
    const stream = {
      action: "dynamodb:GetRecords",
      resource: `${tableArn(table)}/stream/2026-01-01T00:00:00.000`,
      context: {}
    }
    expect(allows(json, stream)).toBe(true)
    expect(allows(policyFor("app", "app").json, stream)).toBe(false)
    expect(NamespacePolicy.notes({ target, role: "worker", kmsKeys: [key] }).join(" ")).toContain(
      "cannot be confined by LeadingKeys"
    )
  })

  it("confines KMS to data keys whose encryption context names the table and the namespace", () => {
    const namespace = "a$b*c?d"
    const { json } = policyFor(namespace, "app", { kmsKeys: [key, copyKey] })
    const context = (ns: string, tableName = table) => ({
      "kms:EncryptionContext:dynastate:table": tableName,
      "kms:EncryptionContext:dynastate:namespace": ns,
      "kms:EncryptionContext:dynastate:purpose": "data-key"
    })
    const kms = (action: string, resource: string, ctx: Record<string, string>) => ({ action, resource, context: ctx })
    expect(allows(json, kms("kms:GenerateDataKey", key, context(namespace)))).toBe(true)
    expect(allows(json, kms("kms:Decrypt", key, context(namespace)))).toBe(true)
    expect(allows(json, kms("kms:Encrypt", copyKey, context(namespace)))).toBe(true)
    expect(allows(json, kms("kms:Decrypt", key, context("other")))).toBe(false)
    expect(allows(json, kms("kms:Decrypt", key, context("a$bXcYd")))).toBe(false)
    expect(allows(json, kms("kms:Decrypt", key, context(namespace, "another-table")))).toBe(false)
    expect(allows(json, kms("kms:Decrypt", key, {}))).toBe(false)
    expect(allows(json, kms("kms:Encrypt", key, context(namespace)))).toBe(false)
    const readonly = policyFor(namespace, "readonly", { kmsKeys: [key] }).json
    expect(allows(readonly, kms("kms:Decrypt", key, context(namespace)))).toBe(true)
    expect(allows(readonly, kms("kms:GenerateDataKey", key, context(namespace)))).toBe(false)
    // Without a KMS key there is no KMS statement at all.
    const raw = policyFor(namespace, "app", { kmsKeys: [] }).document
    expect(raw.Statement.flatMap((statement) => statement.Action).filter((a) => a.startsWith("kms:"))).toEqual([])
  })

  it("writes JSON with only the characters IAM accepts, NUL and wide characters escaped, that reads back the same", () => {
    for (const namespace of namespaces) {
      for (const role of NamespacePolicy.roles) {
        const { document, json } = policyFor(namespace, role)
        expect(json).toMatch(/^[\t\n\r\u0020-\u00ff]+$/)
        expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(document)))
        expect(JSON.parse(json)).toMatchObject({ Version: "2012-10-17" })
        for (const statement of document.Statement) {
          expect(statement.Sid).toMatch(/^[A-Za-z0-9]+$/)
          expect(statement.Effect).toBe("Allow")
          expect(statement.Resource.length).toBeGreaterThan(0)
        }
      }
    }
    expect(policyFor("app", "app").json).toContain("app\\u0000graves")
    // A namespace that looks like a policy variable is written so IAM reads it literally.
    expect(policyFor(`\${aws:username}`, "app").json).toContain(`"\${$}{aws:username}\\u0000history"`)
  })

  it("in wildcard mode, has no NUL at all, still allows the codecs' partitions, and names its one blind spot", () => {
    const namespace = "app"
    const { document, json, target } = policyFor(namespace, "app", { match: "wildcard" })
    expect(json).not.toContain("\\u0000")
    expect(document.Statement[0]!.Condition).toHaveProperty(["ForAllValues:StringLike"])
    for (const partition of codecPartitions(Target.locationOf(target))) {
      expect(allows(json, item("dynamodb:GetItem", partition))).toBe(true)
    }
    expect(allows(json, item("dynamodb:GetItem", "other"))).toBe(false)
    expect(allows(json, item("dynamodb:GetItem", "appXhistoryX"))).toBe(false)
    // The blind spot: `app` + one character + `graves` is another namespace's live partition, and is allowed.
    expect(allows(json, item("dynamodb:GetItem", "app/graves"))).toBe(true)
    expect(NamespacePolicy.notes({ target, role: "app", kmsKeys: [], match: "wildcard" }).join(" ")).toContain(
      "app\" + one character + graves"
    )
    // Wildcards in the namespace itself stay literal.
    const odd = policyFor("a*", "app", { match: "wildcard" }).json
    expect(allows(odd, item("dynamodb:GetItem", "a*"))).toBe(true)
    expect(allows(odd, item("dynamodb:GetItem", "ab"))).toBe(false)
  })

  it("refuses what IAM cannot name, with a reason", () => {
    const target = Target.make(table, "app")
    const refused = (options: Partial<PolicyOptions>) => {
      const made = NamespacePolicy.make({ target, role: "app", kmsKeys: [], ...options })
      expect(Result.isFailure(made)).toBe(true)
      return Result.isFailure(made) ? made.failure : undefined
    }
    expect(refused({ kmsKeys: ["alias/dynastate"] })?.reason).toContain("not a KMS key ARN")
    expect(refused({ kmsKeys: ["1234abcd-12ab-34cd-56ef-1234567890ab"] })?._tag).toBe("PolicyInputInvalid")
    expect(refused({ account: "12345" })?.reason).toContain("12 digits")
    expect(refused({ region: "Europe" })?.reason).toContain("region")
    expect(Result.isSuccess(NamespacePolicy.make({ target, role: "app", kmsKeys: [] }))).toBe(true)
  })
})
