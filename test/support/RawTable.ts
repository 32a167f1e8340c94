/**
 * Raw reads of the event table for tests that check what DynamoDB really
 * holds, bypassing the store: a partition's items, a key's event items and a
 * namespace's graves, every page of them.
 */
import { DeleteItemCommand, GetItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import type { Layout } from "../../src/domain/Partitioning.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { graveKey, gravePartition, tombstoneSortAttr } from "../../src/infra/GraveRecord.ts"
import { keyPartition } from "../../src/infra/PartitionKeys.ts"

/** Where a key's events live. */
export interface RawLocation {
  readonly table: string
  readonly namespace: string
  /** Partitioned prefixes (see `Partitioning`): a key's items are in the partition its key routes to. */
  readonly partitions?: Layout | undefined
}

type RawItem = Record<string, AttributeValue>

/** Every item of partition `pk`, optionally within an inclusive sort-key range, all pages, consistently read. */
const queryAll = async (
  client: DynamoDBClient,
  table: string,
  pk: string,
  sortKeys?: { readonly lower: Uint8Array; readonly upper: Uint8Array }
): Promise<Array<RawItem>> => {
  const items: Array<RawItem> = []
  let start: RawItem | undefined
  do {
    const page = await client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: sortKeys === undefined ? "#pk = :pk" : "#pk = :pk AND #sk BETWEEN :lower AND :upper",
        ExpressionAttributeNames: { "#pk": Attr.partition, ...(sortKeys === undefined ? {} : { "#sk": Attr.sort }) },
        ExpressionAttributeValues: {
          ":pk": { S: pk },
          ...(sortKeys === undefined ? {} : { ":lower": { B: sortKeys.lower }, ":upper": { B: sortKeys.upper } })
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

/** Every item of one partition (`pk`) of a table. */
export const rawPartition = (client: DynamoDBClient, table: string, pk: string): Promise<Array<RawItem>> =>
  queryAll(client, table, pk)

/** Every event item of one key in its live range, newest first (a consistent Query over the key's sort keys). */
export const rawKeyItems = (client: DynamoDBClient, location: RawLocation, key: string): Promise<Array<RawItem>> =>
  queryAll(client, location.table, keyPartition(location, key), {
    lower: SortKey.lowerBound(key),
    upper: SortKey.upperBound(key)
  })

/** Deletes one event item of the live range by hand, as a principal with write access to the table could. */
export const deleteRawEvent = async (
  client: DynamoDBClient,
  location: RawLocation,
  key: string,
  seq: number
): Promise<void> => {
  await client.send(
    new DeleteItemCommand({
      TableName: location.table,
      Key: { [Attr.partition]: { S: keyPartition(location, key) }, [Attr.sort]: { B: SortKey.encode(key, seq) } }
    })
  )
}

/** Every grave of a namespace (buried tombstones), as key, seq and op, ordered by key. */
export const rawGraves = async (
  client: DynamoDBClient,
  location: RawLocation
): Promise<
  Array<{ readonly key: string; readonly seq: number; readonly op: string; readonly revision: string | undefined }>
> =>
  (await queryAll(client, location.table, gravePartition(location)))
    .map((item) => ({
      key: SortKey.decode(item[tombstoneSortAttr]!.B!).key,
      seq: Number(item[Attr.seq]!.N),
      op: item[Attr.op]!.S!,
      revision: item[Attr.revision]?.S
    }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))

/** The seq of a key's grave (its buried tombstone), if it has one. */
export const rawGraveSeq = async (
  client: DynamoDBClient,
  location: RawLocation,
  key: string
): Promise<number | undefined> => {
  const { Item } = await client.send(
    new GetItemCommand({ TableName: location.table, Key: graveKey(location, key), ConsistentRead: true })
  )
  return Item === undefined ? undefined : Number(Item[Attr.seq]!.N)
}
