/**
 * Tables beside the event table (worker leases, views): string hash and range
 * keys, on-demand billing, no stream, optionally a TTL attribute. Created
 * when missing, waited for until active; a concurrent creator is fine.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  UpdateTimeToLiveCommand
} from "@aws-sdk/client-dynamodb"
import { Effect, Schedule } from "effect"
import { StorageFailure } from "../domain/Errors.ts"
import { Dynamo } from "./Dynamo.ts"

const failedWith = (name: string) => (error: { readonly _tag: string; readonly reason?: string }) =>
  error._tag === "StorageFailure" && (error.reason ?? "").startsWith(name)

const ttlStatus = (dynamo: Dynamo["Service"], table: string) =>
  dynamo.call(
    "DescribeTimeToLive",
    (client, abortSignal) => client.send(new DescribeTimeToLiveCommand({ TableName: table }), { abortSignal })
  ).pipe(
    Effect.map((output) => output.TimeToLiveDescription)
  )

const isOn = (description: { readonly TimeToLiveStatus?: string | undefined } | undefined) =>
  description?.TimeToLiveStatus === "ENABLED" || description?.TimeToLiveStatus === "ENABLING"

/**
 * Turns DynamoDB's TTL on for `attribute` unless it already is (or is being) on. Another process may turn it on
 * between our read and our update (two workers starting at once): DynamoDB then refuses the update, and a second
 * read showing TTL on the same attribute is success.
 */
export const enableTtl = (dynamo: Dynamo["Service"], table: string, attribute: string) =>
  Effect.gen(function*() {
    if (isOn(yield* ttlStatus(dynamo, table))) return
    yield* dynamo.call("UpdateTimeToLive", (client, abortSignal) =>
      client.send(
        new UpdateTimeToLiveCommand({
          TableName: table,
          TimeToLiveSpecification: { AttributeName: attribute, Enabled: true }
        }),
        { abortSignal }
      )).pipe(
        Effect.catchIf(failedWith("ValidationException"), (refused) =>
          Effect.flatMap(ttlStatus(dynamo, table), (description) =>
            isOn(description) && description?.AttributeName === attribute ? Effect.void : Effect.fail(refused)))
      )
  })

/** Makes sure a side table with these key attribute names exists and is active, with TTL on `ttlAttribute` if given. */
export const ensure = (table: string, hashKey: string, rangeKey: string, ttlAttribute?: string) =>
  Dynamo.use((dynamo) =>
    Effect.gen(function*() {
      const status = dynamo.call("DescribeTable", (client, abortSignal) =>
        client.send(new DescribeTableCommand({ TableName: table }), { abortSignal })).pipe(
          Effect.map((output) =>
            output.Table?.TableStatus
          ),
          Effect.catchIf(failedWith("ResourceNotFoundException"), () => Effect.succeed(undefined))
        )
      if ((yield* status) === undefined) {
        yield* dynamo.call("CreateTable", (client, abortSignal) =>
          client.send(
            new CreateTableCommand({
              TableName: table,
              KeySchema: [{ AttributeName: hashKey, KeyType: "HASH" }, { AttributeName: rangeKey, KeyType: "RANGE" }],
              AttributeDefinitions: [{ AttributeName: hashKey, AttributeType: "S" }, {
                AttributeName: rangeKey,
                AttributeType: "S"
              }],
              BillingMode: "PAY_PER_REQUEST"
            }),
            { abortSignal }
          )).pipe(Effect.catchIf(failedWith("ResourceInUseException"), () => Effect.void))
      }
      yield* status.pipe(
        Effect.flatMap((current) =>
          current === "ACTIVE"
            ? Effect.void
            : Effect.fail(new StorageFailure({ operation: "CreateTable", reason: `${table} is not active yet` }))
        ),
        Effect.retry({ schedule: Schedule.spaced("200 millis").pipe(Schedule.upTo({ duration: "2 minutes" })) })
      )
      if (ttlAttribute !== undefined) yield* enableTtl(dynamo, table, ttlAttribute)
    })
  )
