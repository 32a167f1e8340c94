/**
 * What the operational commands' tests share: the DynamoDB and Streams services over the test DynamoDB Local, and
 * a table created with exactly the settings a test wants (no stream, no TTL, …), which the store's own
 * provisioner would never make.
 */
import { CreateTableCommand } from "@aws-sdk/client-dynamodb"
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { Layer } from "effect"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import { fromClients, StreamsApi } from "../../src/infra/streams/StreamsApi.ts"
import { streamsConfig } from "../support/TestStore.ts"

/** `Dynamo` and `StreamsApi` over one test client. */
export const opsLayer = (client: DynamoDBClient): Layer.Layer<Dynamo | StreamsApi> =>
  Layer.mergeAll(
    Layer.succeed(Dynamo, Dynamo.fromClient(client)),
    Layer.succeed(StreamsApi, fromClients(client, new DynamoDBStreamsClient(streamsConfig())))
  )

/** Creates an event table with the store's key schema but without a stream (and, as every new table, without TTL). */
export const createBareEventTable = (client: DynamoDBClient, table: string, stream = false) =>
  client.send(
    new CreateTableCommand({
      TableName: table,
      KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }, { AttributeName: "sk", KeyType: "RANGE" }],
      AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }, { AttributeName: "sk", AttributeType: "B" }],
      BillingMode: "PAY_PER_REQUEST",
      ...(stream ? { StreamSpecification: { StreamEnabled: true, StreamViewType: "NEW_IMAGE" } } : {})
    })
  )

/** Creates a table shaped as Teleport's DynamoDB backend makes it (`HashKey`, `FullPath`), for `import-teleport`. */
export const createTeleportTable = (client: DynamoDBClient, table: string) =>
  client.send(
    new CreateTableCommand({
      TableName: table,
      KeySchema: [{ AttributeName: "HashKey", KeyType: "HASH" }, { AttributeName: "FullPath", KeyType: "RANGE" }],
      AttributeDefinitions: [
        { AttributeName: "HashKey", AttributeType: "S" },
        { AttributeName: "FullPath", AttributeType: "S" }
      ],
      BillingMode: "PAY_PER_REQUEST"
    })
  )
