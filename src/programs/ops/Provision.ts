/**
 * `dynastate provision`: creates the store's tables or brings them to the configured shape — billing mode and
 * capacity, stream, TTL, point-in-time recovery, deletion protection, table-level encryption, tags — by first
 * working out a plan (the list of changes) from what DynamoDB reports, then applying it one change at a time (a
 * table takes one update at a time), unless it is a dry run. A second run plans nothing.
 *
 * What it never does: change a key schema or a stream's view type (both need a new table or stream, which loses
 * the worker's position), move TTL from another attribute, or remove tags it was not asked about; those are
 * refused with the reason. Settings the endpoint does not implement (DynamoDB Local has no point-in-time recovery
 * and no tags, and ignores table encryption) are noted and left alone.
 */
import { Effect, Schema } from "effect"
import type { Dynamo } from "../../infra/Dynamo.ts"
import { Dynamo as DynamoService } from "../../infra/Dynamo.ts"
import * as TableAdmin from "../../infra/ops/TableAdmin.ts"
import type { AdminError, TableInfo } from "../../infra/ops/TableAdmin.ts"
import * as TableSpecs from "../../infra/ops/TableSpecs.ts"
import type { Billing, Encryption, TableKind } from "../../infra/ops/TableSpecs.ts"
import * as SideTable from "../../infra/SideTable.ts"
import type { StoreConfig } from "../../infra/StoreConfig.ts"
import { schemaDifferences } from "../../infra/TableProvisioner.ts"
import type { Target } from "./Target.ts"

export type { Billing, Encryption } from "../../infra/ops/TableSpecs.ts"

/** The shape the event table should have; an undefined setting is left as it is (or DynamoDB's default on creation). */
export interface Shape {
  readonly billing: Billing
  readonly pointInTimeRecovery?: boolean | undefined
  readonly deletionProtection?: boolean | undefined
  readonly encryption?: Encryption | undefined
  /** Tags to set (on the side tables too); tags not named here are left alone. */
  readonly tags?: Readonly<Record<string, string>> | undefined
}

/** The settings `provision` takes beyond the configuration file's (CLI flags). */
export interface ShapeFlags {
  readonly pointInTimeRecovery?: boolean | undefined
  readonly deletionProtection?: boolean | undefined
  /** `aws-owned`, `aws-managed`, or a KMS key (an ARN, to compare it with what the table has). */
  readonly encryption?: string | undefined
  readonly tags?: Readonly<Record<string, string>> | undefined
}

/** The shape a store configuration asks for (`billing_mode`, capacities), with the flags' settings. */
export const shapeOf = (
  config: Pick<StoreConfig, "billingMode" | "readCapacityUnits" | "writeCapacityUnits">,
  flags: ShapeFlags = {}
): Shape => ({
  billing: config.billingMode === "provisioned"
    ? {
      _tag: "Provisioned",
      readCapacityUnits: config.readCapacityUnits,
      writeCapacityUnits: config.writeCapacityUnits
    }
    : { _tag: "PayPerRequest" },
  pointInTimeRecovery: flags.pointInTimeRecovery,
  deletionProtection: flags.deletionProtection,
  encryption: flags.encryption === undefined
    ? undefined
    : flags.encryption === "aws-owned"
    ? { _tag: "AwsOwned" }
    : flags.encryption === "aws-managed"
    ? { _tag: "AwsManaged" }
    : { _tag: "Kms", keyId: flags.encryption },
  tags: flags.tags
})

/** A table cannot be brought to the shape without a change provision does not make. */
export class ProvisionRefused extends Schema.TaggedError<ProvisionRefused>()("ProvisionRefused", {
  table: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `cannot provision ${this.table}: ${this.reason}`
  }
}

/** What one change does. */
export type ChangeKind =
  | "create-table"
  | "enable-stream"
  | "billing"
  | "enable-ttl"
  | "point-in-time-recovery"
  | "deletion-protection"
  | "encryption"
  | "tags"

/** One change of the plan. */
export interface Change {
  readonly table: string
  readonly kind: ChangeKind
  readonly description: string
}

/** A change with the request that makes it. */
interface Step extends Change {
  readonly run: Effect.Effect<void, AdminError, Dynamo>
}

/** The plan: its changes in order, and what was left alone and why. */
export interface Plan {
  readonly changes: ReadonlyArray<Change>
  readonly notes: ReadonlyArray<string>
  readonly steps: ReadonlyArray<Step>
}

/** What `provision` did; plain data, so `JSON.stringify` gives the `-o json` output. */
export interface ProvisionReport {
  readonly dryRun: boolean
  readonly changes: ReadonlyArray<Change>
  /** How many changes were applied (0 on a dry run). */
  readonly applied: number
  readonly notes: ReadonlyArray<string>
}

const billingText = (billing: Billing) =>
  billing._tag === "PayPerRequest"
    ? "on demand"
    : `provisioned ${billing.readCapacityUnits} RCU / ${billing.writeCapacityUnits} WCU`

const encryptionText = (encryption: Encryption) =>
  encryption._tag === "AwsOwned"
    ? "DynamoDB's own key"
    : encryption._tag === "AwsManaged"
    ? "the AWS managed key aws/dynamodb"
    : `KMS key ${encryption.keyId}`

const keySchemaText = (info: TableInfo) => info.keySchema.map((key) => `${key.name} ${key.type} ${key.role}`).join(", ")

const isKeyArn = (keyId: string) => /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\//.test(keyId)

const activeAfter = (table: string, run: Effect.Effect<void, AdminError, Dynamo>) =>
  run.pipe(Effect.andThen(TableAdmin.waitUntilActive(table)), Effect.asVoid)

const enableTtl = (table: string, attribute: string) =>
  DynamoService.use((dynamo) => SideTable.enableTtl(dynamo, table, attribute)).pipe(Effect.asVoid)

/** The changes one table needs, given what DynamoDB reports of it. */
const planTable = Effect.fnUntraced(function*(
  table: string,
  kind: TableKind,
  shape: Shape,
  steps: Array<Step>,
  notes: Array<string>
): Effect.fn.Return<void, ProvisionRefused | AdminError, Dynamo> {
  const events = kind === "events"
  // Side tables hold nothing that cannot be rebuilt: on demand, DynamoDB's own key, only the tags follow the shape.
  const options: TableSpecs.CreateOptions = events
    ? {
      billing: shape.billing,
      deletionProtection: shape.deletionProtection ?? false,
      encryption: shape.encryption ?? { _tag: "AwsOwned" },
      tags: shape.tags ?? {}
    }
    : {
      billing: { _tag: "PayPerRequest" },
      deletionProtection: false,
      encryption: { _tag: "AwsOwned" },
      tags: shape.tags ?? {}
    }
  const ttlAttribute = TableSpecs.ttlAttributeOf[kind]
  const info = yield* TableAdmin.describeTable(table)
  if (info === undefined) {
    const settings = [
      billingText(options.billing),
      ...(events ? ["stream NEW_IMAGE"] : []),
      ...(options.deletionProtection ? ["deletion protection"] : []),
      ...(options.encryption._tag === "AwsOwned" ? [] : [`encrypted with ${encryptionText(options.encryption)}`]),
      ...(Object.keys(options.tags).length > 0 ? [`tags ${Object.keys(options.tags).join(", ")}`] : [])
    ]
    steps.push({
      table,
      kind: "create-table",
      description: `create ${table} (${TableSpecs.keySchemaOf[kind]}; ${settings.join(", ")})`,
      run: TableAdmin.createTable(TableSpecs.createRequest(table, kind, options)).pipe(
        Effect.andThen(TableAdmin.waitUntilActive(table)),
        Effect.asVoid
      )
    })
    if (ttlAttribute !== undefined) {
      steps.push({
        table,
        kind: "enable-ttl",
        description: `turn TTL on for ${ttlAttribute}`,
        run: enableTtl(table, ttlAttribute)
      })
    }
    // Before the table exists, AWS answers TableNotFoundException, an endpoint without the feature its own error.
    const pitr = events && shape.pointInTimeRecovery === true
      ? yield* TableAdmin.describePitr(table).pipe(Effect.catch(() => Effect.succeed("supported")))
      : undefined
    if (pitr !== undefined && typeof pitr !== "string") {
      notes.push(`${table}: the endpoint has no point-in-time recovery (${pitr.reason}); left off`)
    } else if (pitr !== undefined) {
      steps.push({
        table,
        kind: "point-in-time-recovery",
        description: "turn point-in-time recovery on",
        run: TableAdmin.updatePitr(table, true)
      })
    }
    return
  }

  const differences = events
    ? schemaDifferences(info.description).filter((difference) => !difference.startsWith("the stream"))
    : keySchemaText(info) === TableSpecs.keySchemaOf[kind]
    ? []
    : [`key schema must be ${TableSpecs.keySchemaOf[kind]}; it is ${keySchemaText(info)}`]
  if (differences.length > 0) {
    return yield* new ProvisionRefused({
      table,
      reason: `${differences.join("; ")}: it was made for something else; choose another table name`
    })
  }

  if (events && !info.stream.enabled) {
    steps.push({
      table,
      kind: "enable-stream",
      description: "turn the stream on (NEW_IMAGE)",
      run: activeAfter(
        table,
        TableAdmin.updateTable({
          TableName: table,
          StreamSpecification: { StreamEnabled: true, StreamViewType: "NEW_IMAGE" }
        })
      )
    })
  } else if (events && info.stream.viewType !== "NEW_IMAGE" && info.stream.viewType !== "NEW_AND_OLD_IMAGES") {
    return yield* new ProvisionRefused({
      table,
      reason: `its stream carries ${info.stream.viewType}, the worker needs new images; a view type cannot change ` +
        "in place: disable the stream, then run provision again (the worker then starts on the new stream)"
    })
  }

  if (events) {
    const current: Billing = info.billingMode === "provisioned"
      ? {
        _tag: "Provisioned",
        readCapacityUnits: info.readCapacityUnits ?? 0,
        writeCapacityUnits: info.writeCapacityUnits ?? 0
      }
      : { _tag: "PayPerRequest" }
    if (billingText(current) !== billingText(shape.billing)) {
      const billing = shape.billing
      steps.push({
        table,
        kind: "billing",
        description: `billing ${billingText(current)} -> ${billingText(billing)}` +
          (current._tag !== billing._tag ? " (AWS allows one billing mode switch a day)" : ""),
        run: activeAfter(
          table,
          TableAdmin.updateTable(
            billing._tag === "PayPerRequest"
              ? { TableName: table, BillingMode: "PAY_PER_REQUEST" }
              : {
                TableName: table,
                BillingMode: "PROVISIONED",
                ProvisionedThroughput: {
                  ReadCapacityUnits: billing.readCapacityUnits,
                  WriteCapacityUnits: billing.writeCapacityUnits
                }
              }
          )
        )
      })
    }
  }

  if (ttlAttribute !== undefined) {
    const ttl = yield* TableAdmin.describeTtl(table)
    const on = ttl.status === "ENABLED" || ttl.status === "ENABLING"
    if (on && ttl.attribute !== ttlAttribute) {
      return yield* new ProvisionRefused({
        table,
        reason: `TTL is on attribute ${ttl.attribute}, the store needs ${ttlAttribute}; turn it off first ` +
          "(DynamoDB allows one TTL attribute per table)"
      })
    }
    if (!on) {
      steps.push({
        table,
        kind: "enable-ttl",
        description: `turn TTL on for ${ttlAttribute}`,
        run: enableTtl(table, ttlAttribute)
      })
    }
  }

  if (events && shape.deletionProtection !== undefined && shape.deletionProtection !== info.deletionProtection) {
    const enabled = shape.deletionProtection
    steps.push({
      table,
      kind: "deletion-protection",
      description: `turn deletion protection ${enabled ? "on" : "off"}`,
      run: activeAfter(table, TableAdmin.updateTable({ TableName: table, DeletionProtectionEnabled: enabled }))
    })
  }

  if (events && shape.encryption !== undefined) {
    const wanted = shape.encryption
    const same = wanted._tag === "AwsOwned"
      ? info.sse.status === "DEFAULT"
      : wanted._tag === "AwsManaged"
      // DescribeTable names the AWS managed key by its key ARN, which cannot be told from a customer key's.
      ? info.sse.status !== "DEFAULT"
      : info.sse.kmsKeyArn === wanted.keyId
    if (info.local) {
      notes.push(`${table}: DynamoDB Local ignores table encryption; ${encryptionText(wanted)} left unapplied`)
    } else if (!same && wanted._tag === "Kms" && !isKeyArn(wanted.keyId) && info.sse.status !== "DEFAULT") {
      notes.push(
        `${table}: encrypted with ${info.sse.kmsKeyArn}; ${wanted.keyId} is not a key ARN, so whether it is the same ` +
          "key cannot be told: give the key ARN to change it"
      )
    } else if (!same) {
      steps.push({
        table,
        kind: "encryption",
        description: `encrypt at rest with ${encryptionText(wanted)}`,
        run: activeAfter(
          table,
          TableAdmin.updateTable({ TableName: table, SSESpecification: TableSpecs.sseSpecification(wanted) })
        )
      })
    }
  }

  if (events && shape.pointInTimeRecovery !== undefined) {
    const pitr = yield* TableAdmin.describePitr(table)
    if (typeof pitr !== "string") {
      notes.push(`${table}: the endpoint has no point-in-time recovery (${pitr.reason}); left as is`)
    } else if ((pitr === "ENABLED") !== shape.pointInTimeRecovery) {
      const enabled = shape.pointInTimeRecovery
      steps.push({
        table,
        kind: "point-in-time-recovery",
        description: `turn point-in-time recovery ${enabled ? "on" : "off"}`,
        run: TableAdmin.updatePitr(table, enabled)
      })
    }
  }

  const wantedTags = shape.tags ?? {}
  if (Object.keys(wantedTags).length > 0 && info.arn !== undefined) {
    const tags = yield* TableAdmin.listTags(info.arn)
    if (tags._tag === "Unsupported") {
      notes.push(`${table}: the endpoint has no tagging (${tags.reason}); tags left unapplied`)
    } else {
      const current = tags.tags
      const missing = Object.fromEntries(Object.entries(wantedTags).filter(([key, value]) => current[key] !== value))
      if (Object.keys(missing).length > 0) {
        const arn = info.arn
        steps.push({
          table,
          kind: "tags",
          description: `tag ${Object.entries(missing).map(([key, value]) => `${key}=${value}`).join(", ")}`,
          run: TableAdmin.tag(arn, missing)
        })
      }
    }
  }
})

/** Works out the changes the target's tables need to have `shape`; changes nothing. */
export const plan = Effect.fn("Provision.plan")(function*(
  target: Target,
  shape: Shape
): Effect.fn.Return<Plan, ProvisionRefused | AdminError, Dynamo> {
  const steps: Array<Step> = []
  const notes: Array<string> = []
  yield* planTable(target.table, "events", shape, steps, notes)
  yield* planTable(target.leaseTable, "leases", shape, steps, notes)
  for (const view of target.viewTables) yield* planTable(view, "view", shape, steps, notes)
  return {
    steps,
    notes,
    changes: steps.map(({ description, kind, table }) => ({ table, kind, description }))
  }
})

/** Plans, then applies the plan unless `dryRun`: the whole of `dynastate provision`. */
export const provision = Effect.fn("Provision.provision")(function*(options: {
  readonly target: Target
  readonly shape: Shape
  readonly dryRun?: boolean | undefined
}): Effect.fn.Return<ProvisionReport, ProvisionRefused | AdminError, Dynamo> {
  const planned = yield* plan(options.target, options.shape)
  const dryRun = options.dryRun === true
  let applied = 0
  if (!dryRun) {
    for (const step of planned.steps) {
      yield* Effect.logInfo(`provision: ${step.table}: ${step.description}`)
      yield* step.run
      applied++
    }
  }
  return { dryRun, changes: planned.changes, applied, notes: planned.notes }
})

/** The report as text: the plan, one change a line, then what happened. */
export const render = (report: ProvisionReport): string => {
  const lines: Array<string> = []
  if (report.changes.length === 0) lines.push("nothing to change: the tables have the configured shape")
  else {
    lines.push(
      report.dryRun ? `plan (${report.changes.length} changes, dry run):` : `${report.changes.length} changes:`
    )
    for (const change of report.changes) {
      lines.push(`  ${change.kind === "create-table" ? "+" : "~"} ${change.table}: ${change.description}`)
    }
  }
  for (const note of report.notes) lines.push(`note: ${note}`)
  if (report.changes.length > 0) {
    lines.push(report.dryRun ? "dry run: nothing was changed" : `applied ${report.applied} changes`)
  }
  return lines.join("\n")
}
