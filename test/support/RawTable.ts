/**
 * Raw reads of the event table for tests that check what DynamoDB really
 * holds, bypassing the store: a key's event items, every page of them, and
 * a namespace's graves.
 */
import { GetItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { graveKey, gravePartition, tombstoneSortAttr } from "../../src/infra/GraveRecord.ts"

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

/** Every grave of a namespace (buried tombstones), as key, seq and op, ordered by key. */
export const rawGraves = async (
  client: DynamoDBClient,
  location: RawLocation
): Promise<Array<{ readonly key: string; readonly seq: number; readonly op: string }>> => {
  const graves: Array<{ key: string; seq: number; op: string }> = []
  let start: Record<string, AttributeValue> | undefined
  do {
    const page = await client.send(
      new QueryCommand({
        TableName: location.table,
        KeyConditionExpression: "#pk = :pk",
        ExpressionAttributeNames: { "#pk": Attr.partition },
        ExpressionAttributeValues: { ":pk": { S: gravePartition(location) } },
        ConsistentRead: true,
        ExclusiveStartKey: start
      })
    )
    for (const item of page.Items ?? []) {
      graves.push({ key: SortKey.decode(item[tombstoneSortAttr]!.B!).key, seq: Number(item[Attr.seq]!.N), op: item[Attr.op]!.S! })
    }
    start = page.LastEvaluatedKey
  } while (start !== undefined)
  return graves.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
}

/** The seq of a key's grave (its buried tombstone), if it has one. */
export const rawGraveSeq = async (client: DynamoDBClient, location: RawLocation, key: string): Promise<number | undefined> => {
  const { Item } = await client.send(new GetItemCommand({ TableName: location.table, Key: graveKey(location, key), ConsistentRead: true }))
  return Item === undefined ? undefined : Number(Item[Attr.seq]!.N)
}

/** Every item of one partition (`pk`) of a table, all pages, consistently read. */
export const rawPartition = async (
  client: DynamoDBClient,
  table: string,
  pk: string
): Promise<Array<Record<string, AttributeValue>>> => {
  const items: Array<Record<string, AttributeValue>> = []
  let start: Record<string, AttributeValue> | undefined
  do {
    const page = await client.send(new QueryCommand({
      TableName: table,
      KeyConditionExpression: "#pk = :pk",
      ExpressionAttributeNames: { "#pk": Attr.partition },
      ExpressionAttributeValues: { ":pk": { S: pk } },
      ConsistentRead: true,
      ExclusiveStartKey: start
    }))
    items.push(...(page.Items ?? []))
    start = page.LastEvaluatedKey
  } while (start !== undefined)
  return items
}
