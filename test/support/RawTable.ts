/**
 * Raw reads of the event table for tests that check what DynamoDB really
 * holds, bypassing the store: a key's event items, every page of them.
 */
import { QueryCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"

/** Where a key's events live. */
export interface RawLocation {
  readonly table: string
  readonly namespace: string
}

/** Every event item of one key in its live range, newest first (a consistent Query over the key's sort keys). */
export const rawKeyItems = async (
  client: DynamoDBClient,
  location: RawLocation,
  key: string
): Promise<Array<Record<string, AttributeValue>>> => {
  const items: Array<Record<string, AttributeValue>> = []
  let start: Record<string, AttributeValue> | undefined
  do {
    const page = await client.send(
      new QueryCommand({
        TableName: location.table,
        KeyConditionExpression: "#pk = :pk AND #sk BETWEEN :lower AND :upper",
        ExpressionAttributeNames: { "#pk": Attr.partition, "#sk": Attr.sort },
        ExpressionAttributeValues: {
          ":pk": { S: location.namespace },
          ":lower": { B: SortKey.lowerBound(key) },
          ":upper": { B: SortKey.upperBound(key) }
        },
        ConsistentRead: true,
        ExclusiveStartKey: start
      })
    )
    items.push(...(page.Items ?? []))
    start = page.LastEvaluatedKey
  } while (start !== undefined)
  return items
}
