/**
 * The control-plane calls operators need (describe, create and update a table, its TTL, point-in-time recovery and
 * tags), with answers parsed into plain records, so that `status`, `doctor` and `provision` never handle SDK
 * shapes. Features an endpoint does not implement (DynamoDB Local has no tagging and no continuous backups) come
 * back as `unsupported` rather than as failures: the caller says so instead of refusing.
 */
import {
  CreateTableCommand,
  DescribeContinuousBackupsCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  ListTablesCommand,
  ListTagsOfResourceCommand,
  TagResourceCommand,
  UpdateContinuousBackupsCommand,
  UpdateTableCommand
} from "@aws-sdk/client-dynamodb"
import type { CreateTableCommandInput, TableDescription, UpdateTableCommandInput } from "@aws-sdk/client-dynamodb"
import { Effect, Schedule } from "effect"
import { StorageFailure } from "../../domain/Errors.ts"
import type { Throttled } from "../../domain/Errors.ts"
import { Dynamo } from "../Dynamo.ts"

/** Failures of the control-plane calls. */
export type AdminError = Throttled | StorageFailure

/** The name of the AWS error behind a failure (`AccessDeniedException`, …), or `undefined` for a network error. */
export const errorName = (error: { readonly reason: string }): string | undefined =>
  /^([A-Za-z]+):/.exec(error.reason)?.[1]

const unsupportedNames = new Set(["UnknownOperationException"])

/** One attribute of a key schema. */
export interface KeyAttribute {
  readonly name: string
  readonly role: "HASH" | "RANGE"
  readonly type: string | undefined
}

/** A table as `DescribeTable` reports it, reduced to what operators look at. */
export interface TableInfo {
  readonly name: string
  readonly arn: string | undefined
  readonly status: string | undefined
  readonly billingMode: "pay_per_request" | "provisioned"
  readonly readCapacityUnits: number | undefined
  readonly writeCapacityUnits: number | undefined
  /** DynamoDB's estimate, refreshed about every six hours. */
  readonly itemCount: number | undefined
  readonly sizeBytes: number | undefined
  readonly keySchema: ReadonlyArray<KeyAttribute>
  readonly stream: {
    readonly enabled: boolean
    readonly viewType: string | undefined
    readonly arn: string | undefined
  }
  readonly deletionProtection: boolean
  /** Table-level encryption at rest: `DEFAULT` is DynamoDB's own key (AWS owned). */
  readonly sse: { readonly status: string; readonly type: string | undefined; readonly kmsKeyArn: string | undefined }
  /** DynamoDB Local (its ARNs name the region `ddblocal`): it accepts but ignores SSE, and has no PITR or tags. */
  readonly local: boolean
  /** The description itself, for the table provisioner's schema check. */
  readonly description: TableDescription
}

/** Parses a table description. */
export const tableInfo = (table: TableDescription): TableInfo => {
  const type = (name: string | undefined) =>
    table.AttributeDefinitions?.find((definition) => definition.AttributeName === name)?.AttributeType
  const provisioned = table.BillingModeSummary?.BillingMode === "PROVISIONED" ||
    (table.BillingModeSummary === undefined && (table.ProvisionedThroughput?.ReadCapacityUnits ?? 0) > 0)
  return {
    name: table.TableName ?? "",
    arn: table.TableArn,
    status: table.TableStatus,
    billingMode: provisioned ? "provisioned" : "pay_per_request",
    readCapacityUnits: provisioned ? table.ProvisionedThroughput?.ReadCapacityUnits : undefined,
    writeCapacityUnits: provisioned ? table.ProvisionedThroughput?.WriteCapacityUnits : undefined,
    itemCount: table.ItemCount,
    sizeBytes: table.TableSizeBytes,
    keySchema: (table.KeySchema ?? []).map((element) => ({
      name: element.AttributeName ?? "",
      role: element.KeyType === "RANGE" ? "RANGE" : "HASH",
      type: type(element.AttributeName)
    })),
    stream: {
      enabled: table.StreamSpecification?.StreamEnabled === true,
      viewType: table.StreamSpecification?.StreamEnabled ? table.StreamSpecification.StreamViewType : undefined,
      arn: table.StreamSpecification?.StreamEnabled ? table.LatestStreamArn : undefined
    },
    deletionProtection: table.DeletionProtectionEnabled === true,
    sse: table.SSEDescription?.Status === "ENABLED" || table.SSEDescription?.Status === "UPDATING"
      ? {
        status: table.SSEDescription.Status,
        type: table.SSEDescription.SSEType,
        kmsKeyArn: table.SSEDescription.KMSMasterKeyArn
      }
      : { status: "DEFAULT", type: undefined, kmsKeyArn: undefined },
    local: (table.TableArn ?? "").includes(":ddblocal:"),
    description: table
  }
}

const isNotFound = (error: AdminError) => errorName(error) === "ResourceNotFoundException"

/** The table, or `undefined` when it does not exist. */
export const describeTable = (table: string): Effect.Effect<TableInfo | undefined, AdminError, Dynamo> =>
  Dynamo.use((dynamo) =>
    dynamo.call(
      "DescribeTable",
      (client, abortSignal) => client.send(new DescribeTableCommand({ TableName: table }), { abortSignal })
    )
  ).pipe(
    Effect.map((output) => (output.Table === undefined ? undefined : tableInfo(output.Table))),
    Effect.catchIf(isNotFound, () => Effect.succeed(undefined))
  )

/** A table's TTL setting: `DISABLED`, `ENABLING`, `ENABLED` or `DISABLING`, and on which attribute. */
export interface TtlInfo {
  readonly status: string
  readonly attribute: string | undefined
}

/** The TTL setting of a table. */
export const describeTtl = (table: string): Effect.Effect<TtlInfo, AdminError, Dynamo> =>
  Dynamo.use((dynamo) =>
    dynamo.call(
      "DescribeTimeToLive",
      (client, abortSignal) => client.send(new DescribeTimeToLiveCommand({ TableName: table }), { abortSignal })
    )
  ).pipe(Effect.map((output) => ({
    status: output.TimeToLiveDescription?.TimeToLiveStatus ?? "DISABLED",
    attribute: output.TimeToLiveDescription?.AttributeName
  })))

/** Something the endpoint does not implement (DynamoDB Local: continuous backups, tagging). */
export interface Unsupported {
  readonly _tag: "Unsupported"
  readonly reason: string
}

const unsupported = (error: AdminError): Effect.Effect<Unsupported, AdminError> => {
  const name = errorName(error)
  return name !== undefined && unsupportedNames.has(name)
    ? Effect.succeed({ _tag: "Unsupported", reason: error.reason })
    : Effect.fail(error)
}

/** Whether point-in-time recovery is on (`ENABLED` / `DISABLED`), or that the endpoint has no such thing. */
export const describePitr = (table: string): Effect.Effect<string | Unsupported, AdminError, Dynamo> =>
  Dynamo.use((dynamo) =>
    dynamo.call(
      "DescribeContinuousBackups",
      (client, abortSignal) => client.send(new DescribeContinuousBackupsCommand({ TableName: table }), { abortSignal })
    )
  ).pipe(
    Effect.map((output): string | Unsupported =>
      output.ContinuousBackupsDescription?.PointInTimeRecoveryDescription?.PointInTimeRecoveryStatus ?? "DISABLED"
    ),
    Effect.catch(unsupported)
  )

/** Turns point-in-time recovery on or off. */
export const updatePitr = (table: string, enabled: boolean): Effect.Effect<void, AdminError, Dynamo> =>
  Dynamo.use((dynamo) =>
    dynamo.call("UpdateContinuousBackups", (client, abortSignal) =>
      client.send(
        new UpdateContinuousBackupsCommand({
          TableName: table,
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: enabled }
        }),
        { abortSignal }
      ))
  ).pipe(Effect.asVoid)

/** The tags of a table (every page), or that the endpoint has no tagging. */
export const listTags = (
  arn: string
): Effect.Effect<{ readonly _tag: "Tags"; readonly tags: Record<string, string> } | Unsupported, AdminError, Dynamo> =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    const tags: Record<string, string> = {}
    let next: string | undefined
    do {
      const page = yield* dynamo.call(
        "ListTagsOfResource",
        (client, abortSignal) =>
          client.send(new ListTagsOfResourceCommand({ ResourceArn: arn, NextToken: next }), { abortSignal })
      )
      for (const tag of page.Tags ?? []) if (tag.Key !== undefined) tags[tag.Key] = tag.Value ?? ""
      next = page.NextToken
    } while (next !== undefined)
    return { _tag: "Tags" as const, tags }
  }).pipe(Effect.catch(unsupported))

/** Adds or overwrites tags of a table (tags not named are left alone). */
export const tag = (arn: string, tags: Readonly<Record<string, string>>): Effect.Effect<void, AdminError, Dynamo> =>
  Dynamo.use((dynamo) =>
    dynamo.call("TagResource", (client, abortSignal) =>
      client.send(
        new TagResourceCommand({
          ResourceArn: arn,
          Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value }))
        }),
        { abortSignal }
      ))
  ).pipe(Effect.asVoid)

/** The names of up to `limit` tables: the cheapest call that proves credentials and endpoint work. */
export const listTables = (limit: number): Effect.Effect<ReadonlyArray<string>, AdminError, Dynamo> =>
  Dynamo.use((dynamo) =>
    dynamo.call(
      "ListTables",
      (client, abortSignal) => client.send(new ListTablesCommand({ Limit: limit }), { abortSignal })
    )
  ).pipe(Effect.map((output) => output.TableNames ?? []))

/** Creates a table; one that exists already (another process was first) is not a failure. */
export const createTable = (input: CreateTableCommandInput): Effect.Effect<void, AdminError, Dynamo> =>
  Dynamo.use((dynamo) =>
    dynamo.call("CreateTable", (client, abortSignal) => client.send(new CreateTableCommand(input), { abortSignal }))
  ).pipe(
    Effect.asVoid,
    Effect.catchIf((error) => errorName(error) === "ResourceInUseException", () => Effect.void)
  )

/** One `UpdateTable` call (DynamoDB takes one change of a table at a time: wait until active between them). */
export const updateTable = (input: UpdateTableCommandInput): Effect.Effect<void, AdminError, Dynamo> =>
  Dynamo.use((dynamo) =>
    dynamo.call("UpdateTable", (client, abortSignal) => client.send(new UpdateTableCommand(input), { abortSignal }))
  ).pipe(Effect.asVoid)

/** Waits until the table exists and is `ACTIVE` (at most `minutes`). */
export const waitUntilActive = (table: string, minutes = 10): Effect.Effect<TableInfo, AdminError, Dynamo> =>
  describeTable(table).pipe(
    Effect.flatMap((info) =>
      info?.status === "ACTIVE"
        ? Effect.succeed(info)
        : Effect.fail(new StorageFailure({ operation: "DescribeTable", reason: `table ${table} is not active yet` }))
    ),
    Effect.retry({
      schedule: Schedule.spaced("250 millis").pipe(Schedule.upTo({ duration: `${minutes} minutes` })),
      while: (error) => error._tag === "StorageFailure" && error.reason.endsWith("is not active yet")
    })
  )
