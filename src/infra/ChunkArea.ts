/**
 * The chunk items of a namespace's large values in DynamoDB (`<namespace>\0chunks`, see `ValueChunks`): written
 * before their event, read back when it is decoded, and removed once no stored event names them.
 */
import { DeleteItemCommand, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb"
import { Effect, Result, Stream } from "effect"
import { StorageFailure } from "../domain/Errors.ts"
import type { Throttled } from "../domain/Errors.ts"
import type { Event } from "../domain/Event.ts"
import * as SortKey from "../domain/SortKey.ts"
import type { AttributeMap } from "./Dynamo.ts"
import { Dynamo, queryPages } from "./Dynamo.ts"
import { Attr } from "./EventRecord.ts"
import type { Location } from "./EventRecord.ts"
import { areaPartition, keyArea, keyPartition, livePartitions } from "./PartitionKeys.ts"
import { ChunkAttr, chunkRange, chunkSortKey, markerRange, markerSortKey, ownerOf } from "./ValueChunks.ts"
import type { ChunkOwner, Split } from "./ValueChunks.ts"

export type { ChunkOwner } from "./ValueChunks.ts"

/** Chunk writes (and deletes) in flight at once for one value: 16 MiB is 43 chunks. */
const concurrency = 8

/** The chunk items of one namespace. */
export interface ChunkArea {
  /**
   * Writes a large value's marker, then its chunk items (before its event item): a write that stops half way leaves
   * a marker for the collection of orphans to find.
   */
  readonly write: (split: Omit<Split, "item">) => Effect.Effect<void, Throttled | StorageFailure>
  /** The `count` chunk items of an event, read consistently; a missing one is left out. */
  readonly read: (
    event: Pick<Event, "key" | "seq" | "revision">,
    count: number
  ) => Effect.Effect<ReadonlyArray<AttributeMap>, Throttled | StorageFailure>
  /** Deletes every chunk item of an event, then its marker; how many chunks there were. */
  readonly remove: (
    owner: Pick<ChunkOwner, "key" | "seq" | "revision">
  ) => Effect.Effect<number, Throttled | StorageFailure>
  /** Every event that a marker names (whose chunks may be stored), in the markers' order. */
  readonly owners: Stream.Stream<ChunkOwner, Throttled | StorageFailure>
  /** Whether the event of a chunk's owner is stored, live or in the history area, with that event id. */
  readonly holds: (owner: ChunkOwner) => Effect.Effect<boolean, Throttled | StorageFailure>
}

/**
 * The chunk area of a location over a client: the event table makes one to write and read values, the worker's
 * collector one to find orphans.
 */
export const make = (dynamo: Dynamo["Service"], location: Location): ChunkArea => {
  // Each live partition keeps its chunks beside it (see `PartitionKeys`): a key's are in its partition's.
  const partitionOf = (key: string) => keyArea(location, key, "chunks")

  const put = (item: AttributeMap) =>
    dynamo.call(
      "PutItem",
      (client, abortSignal) =>
        client.send(new PutItemCommand({ TableName: location.table, Item: item }), { abortSignal })
    )
  const deleteItem = (item: AttributeMap) =>
    dynamo.call("DeleteItem", (client, abortSignal) =>
      client.send(
        new DeleteItemCommand({
          TableName: location.table,
          Key: { [ChunkAttr.partition]: item[ChunkAttr.partition]!, [ChunkAttr.sort]: item[ChunkAttr.sort]! }
        }),
        { abortSignal }
      ))

  const write = ({ chunks, marker }: Omit<Split, "item">) =>
    put(marker).pipe(
      Effect.andThen(Effect.forEach(chunks, put, { concurrency, discard: true })),
      Effect.withSpan("ChunkArea.write", { attributes: { chunks: chunks.length } })
    )

  /** The items of a sort-key range of the partition. */
  const query = (
    partition: string,
    range: { readonly lower: Uint8Array; readonly upper: Uint8Array },
    consistent: boolean
  ) =>
    queryPages({
      TableName: location.table,
      KeyConditionExpression: "#pk = :pk AND #sk BETWEEN :lower AND :upper",
      ExpressionAttributeNames: { "#pk": ChunkAttr.partition, "#sk": ChunkAttr.sort },
      ExpressionAttributeValues: {
        ":pk": { S: partition },
        ":lower": { B: range.lower },
        ":upper": { B: range.upper }
      },
      ConsistentRead: consistent
    }).pipe(
      Stream.flatMap((page) => Stream.fromIterable(page.Items ?? [])),
      Stream.provideService(Dynamo, dynamo)
    )

  // One GetItem per chunk, several at once: a Query returns at most 1 MB a page, one page after the other.
  const read = (event: Pick<Event, "key" | "seq" | "revision">, count: number) =>
    Effect.forEach(
      Array.from({ length: count }, (_, index) => index),
      (index) =>
        dynamo.call("GetItem", (client, abortSignal) =>
          client.send(
            new GetItemCommand({
              TableName: location.table,
              Key: {
                [ChunkAttr.partition]: { S: partitionOf(event.key) },
                [ChunkAttr.sort]: { B: chunkSortKey(event, index) }
              },
              ConsistentRead: true
            }),
            { abortSignal }
          )),
      { concurrency }
    ).pipe(
      Effect.map((outputs) => outputs.flatMap((output) => (output.Item === undefined ? [] : [output.Item]))),
      Effect.withSpan("ChunkArea.read", { attributes: { key: event.key, seq: event.seq, chunks: count } })
    )

  const remove = (owner: Pick<ChunkOwner, "key" | "seq" | "revision">) =>
    Effect.gen(function*() {
      const partition = partitionOf(owner.key)
      const items = yield* Stream.runCollect(query(partition, chunkRange(owner), true))
      yield* Effect.forEach(items, deleteItem, { concurrency, discard: true })
      // Last: should this stop half way, the marker is still there for the next sweep.
      yield* deleteItem({ [ChunkAttr.partition]: { S: partition }, [ChunkAttr.sort]: { B: markerSortKey(owner) } })
      return items.length
    }).pipe(Effect.withSpan("ChunkArea.remove"))

  const owners = Stream.fromIterable(livePartitions(location)).pipe(
    Stream.flatMap((live) => query(areaPartition(live, "chunks"), markerRange, false)),
    Stream.mapEffect((item) => {
      const owner = ownerOf(item)
      return Result.isSuccess(owner)
        ? Effect.succeed(owner.success)
        : Effect.fail(new StorageFailure({ operation: "read chunk markers", reason: owner.failure }))
    })
  )

  const holds = (owner: ChunkOwner) =>
    Effect.gen(function*() {
      // Live first, then history: compaction copies an event into the history area before it deletes it from the
      // live range, so an event moving between them is seen in one or the other.
      const live = keyPartition(location, owner.key)
      for (const pk of [live, areaPartition(live, "history")]) {
        const output = yield* dynamo.call("GetItem", (client, abortSignal) =>
          client.send(
            new GetItemCommand({
              TableName: location.table,
              Key: { [Attr.partition]: { S: pk }, [Attr.sort]: { B: SortKey.encode(owner.key, owner.seq) } },
              ProjectionExpression: "#rev",
              ExpressionAttributeNames: { "#rev": Attr.revision },
              ConsistentRead: true
            }),
            { abortSignal }
          ))
        if (output.Item?.[Attr.revision]?.S === owner.revision) return true
      }
      return false
    })

  return { write, read, remove, owners, holds }
}
