/**
 * Creates the event table when it is missing and checks an existing one,
 * refusing (without changing anything) a table whose schema the store cannot use.
 */
import { CreateTableCommand, DescribeTableCommand } from "@aws-sdk/client-dynamodb"
import type { TableDescription } from "@aws-sdk/client-dynamodb"
import { Effect, Schedule } from "effect"
import { StorageFailure, TableSchemaMismatch } from "../domain/Errors.ts"
import type { Throttled } from "../domain/Errors.ts"
import { Dynamo } from "./Dynamo.ts"
import { Attr } from "./EventRecord.ts"
import * as SideTable from "./SideTable.ts"

/** How to create the table when it does not exist. */
export interface TableOptions {
  readonly table: string
  readonly billingMode: "pay_per_request" | "provisioned"
  readonly readCapacityUnits: number
  readonly writeCapacityUnits: number
}

/** The differences between a table and the schema the store needs; empty when it fits. */
export const schemaDifferences = (table: TableDescription): ReadonlyArray<string> => {
  const differences: Array<string> = []
  const keyType = (name: string) => table.KeySchema?.find((element) => element.AttributeName === name)?.KeyType
  const attributeType = (name: string) =>
    table.AttributeDefinitions?.find((definition) => definition.AttributeName === name)?.AttributeType
  if (table.KeySchema?.length !== 2 || keyType(Attr.partition) !== "HASH" || keyType(Attr.sort) !== "RANGE") {
    const actual = (table.KeySchema ?? []).map((element) => `${element.AttributeName} ${element.KeyType}`).join(", ")
    differences.push(`key schema must be ${Attr.partition} HASH, ${Attr.sort} RANGE; it is ${actual || "empty"}`)
  }
  if (attributeType(Attr.partition) !== "S") {
    differences.push(`${Attr.partition} must be a string (S); it is ${attributeType(Attr.partition) ?? "undefined"}`)
  }
  if (attributeType(Attr.sort) !== "B") {
    differences.push(`${Attr.sort} must be binary (B); it is ${attributeType(Attr.sort) ?? "undefined"}`)
  }
  const view = table.StreamSpecification?.StreamEnabled ? table.StreamSpecification.StreamViewType : undefined
  if (view !== undefined && view !== "NEW_IMAGE" && view !== "NEW_AND_OLD_IMAGES") {
    differences.push(`the stream must carry new images (NEW_IMAGE); it is ${view}`)
  }
  return differences
}

const describe = (dynamo: Dynamo["Service"], table: string) =>
  dynamo.call(
    "DescribeTable",
    (client, abortSignal) => client.send(new DescribeTableCommand({ TableName: table }), { abortSignal })
  ).pipe(
    Effect.map((output) => output.Table),
    Effect.catchIf(
      (error) => error._tag === "StorageFailure" && error.reason.startsWith("ResourceNotFoundException"),
      () => Effect.succeed(undefined)
    )
  )

/** The table as DynamoDB describes it, or `undefined` when it does not exist; nothing is created or changed. */
export const existingTable = (table: string) => Dynamo.use((dynamo) => describe(dynamo, table))

const create = (dynamo: Dynamo["Service"], options: TableOptions) =>
  dynamo.call("CreateTable", (client, abortSignal) =>
    client.send(
      new CreateTableCommand({
        TableName: options.table,
        KeySchema: [
          { AttributeName: Attr.partition, KeyType: "HASH" },
          { AttributeName: Attr.sort, KeyType: "RANGE" }
        ],
        AttributeDefinitions: [
          { AttributeName: Attr.partition, AttributeType: "S" },
          { AttributeName: Attr.sort, AttributeType: "B" }
        ],
        StreamSpecification: { StreamEnabled: true, StreamViewType: "NEW_IMAGE" },
        ...(options.billingMode === "provisioned"
          ? {
            BillingMode: "PROVISIONED",
            ProvisionedThroughput: {
              ReadCapacityUnits: options.readCapacityUnits,
              WriteCapacityUnits: options.writeCapacityUnits
            }
          }
          : { BillingMode: "PAY_PER_REQUEST" })
      }),
      { abortSignal }
    )).pipe(
      // Another process created it between our describe and create: that is fine.
      Effect.catchIf(
        (error) => error._tag === "StorageFailure" && error.reason.startsWith("ResourceInUseException"),
        () => Effect.void
      )
    )

const waitUntilActive = (dynamo: Dynamo["Service"], table: string) =>
  describe(dynamo, table).pipe(
    Effect.flatMap((description) =>
      description?.TableStatus === "ACTIVE"
        ? Effect.succeed(description)
        : Effect.fail(new StorageFailure({ operation: "CreateTable", reason: `table ${table} is not active yet` }))
    ),
    Effect.retry({
      schedule: Schedule.spaced("200 millis").pipe(Schedule.upTo({ duration: "5 minutes" })),
      while: (error) => error._tag === "StorageFailure" && error.reason.includes("not active yet")
    })
  )

/**
 * Makes sure the table exists with the store's schema, creating it (with
 * streams and TTL) when missing and waiting until it is active.
 */
export const ensureTable = Effect.fn("TableProvisioner.ensureTable")(function*(
  options: TableOptions
): Effect.fn.Return<void, TableSchemaMismatch | Throttled | StorageFailure, Dynamo> {
  const dynamo = yield* Dynamo
  const existing = yield* describe(dynamo, options.table)
  if (existing !== undefined) {
    const differences = schemaDifferences(existing)
    if (differences.length > 0) return yield* new TableSchemaMismatch({ table: options.table, differences })
    if (!existing.StreamSpecification?.StreamEnabled) {
      yield* Effect.logWarning(`table ${options.table} has no stream: the projection worker and watchers need one`)
    }
  } else {
    yield* Effect.logInfo(`creating table ${options.table} (${options.billingMode})`)
    yield* create(dynamo, options)
  }
  yield* waitUntilActive(dynamo, options.table)
  yield* SideTable.enableTtl(dynamo, options.table, Attr.ttl)
})
