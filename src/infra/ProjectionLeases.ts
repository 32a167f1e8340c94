/**
 * Leases and checkpoints of projection workers, in a DynamoDB table of their
 * own (without a stream: checkpoint writes must not feed the stream they
 * follow). Per shard: an owner, an epoch that changes only when the shard
 * changes hands (the fencing token of every write a worker makes for it), a
 * lease expiry renewed by heartbeats, the checkpoint, and whether the shard
 * was fully applied. Beside them, in a partition of their own, each live
 * worker announces itself with an expiring item, so workers can tell how many
 * share the shards.
 */
import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand
} from "@aws-sdk/client-dynamodb"
import { Clock, Data, Effect } from "effect"
import type { StorageFailure } from "../domain/Errors.ts"
import type { Throttled } from "../domain/Errors.ts"
import { conditionalPut, Dynamo } from "./Dynamo.ts"
import type { AttributeMap } from "./Dynamo.ts"
import * as SideTable from "./SideTable.ts"

/** A shard lease as stored. */
export interface ShardLease {
  readonly shardId: string
  readonly owner: string | undefined
  readonly epoch: number
  readonly expiresAt: number
  readonly checkpoint: string | undefined
  readonly finished: boolean
}

/** The lease is held by someone else now (or changed epoch): stop working on the shard. */
export class LeaseLost extends Data.TaggedError("LeaseLost")<{ readonly shardId: string }> {}

/** Where a group of workers keeps its leases. */
export interface LeaseLocation {
  readonly table: string
  /** Workers of one group share the shards; different groups each see every record. */
  readonly group: string
}

const itemKey = (location: LeaseLocation, arn: string, shardId: string): AttributeMap => ({
  pk: { S: location.group },
  sk: { S: `shard#${arn}#${shardId}` }
})

const decode = (shardId: string, item: AttributeMap | undefined): ShardLease => ({
  shardId,
  owner: item?.owner?.S,
  epoch: Number(item?.epoch?.N ?? 0),
  expiresAt: Number(item?.expiresAt?.N ?? 0),
  checkpoint: item?.checkpoint?.S,
  finished: item?.finished?.BOOL ?? false
})

/** Creates the lease table when missing and waits until it is active. */
export const ensureTable = (table: string) => SideTable.ensure(table, "pk", "sk", "ttl")

/**
 * How long a finished shard's lease is kept: past the stream's 24-hour retention, after which DescribeStream no
 * longer lists the shard (and a child whose parent is not listed starts at once), so finished leases do not
 * pile up with every shard rollover.
 */
export const finishedLeaseMillis = 48 * 60 * 60_000

/** The lease of a shard as stored now. */
export const read = (location: LeaseLocation, arn: string, shardId: string) =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    const output = yield* dynamo.call("GetItem", (client, abortSignal) =>
      client.send(
        new GetItemCommand({ TableName: location.table, Key: itemKey(location, arn, shardId), ConsistentRead: true }),
        {
          abortSignal
        }
      ))
    return decode(shardId, output.Item)
  })

/**
 * Takes the lease of an unfinished shard, as `current` read it, if it is
 * free, expired, or already ours; the epoch goes up when the owner changes.
 * `undefined` if another worker holds it (or it is finished), or if the lease
 * changed since it was read: deciding between the read and the write is safe.
 */
export const take = (
  location: LeaseLocation,
  arn: string,
  current: ShardLease,
  owner: string,
  leaseMillis: number,
  parentShardId?: string | undefined
) =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    const now = yield* Clock.currentTimeMillis
    const shardId = current.shardId
    if (current.finished) return undefined
    const ours = current.owner === owner
    if (!ours && current.owner !== undefined && current.expiresAt > now) return undefined
    const epoch = ours ? current.epoch : current.epoch + 1
    const taken = yield* dynamo.callConditional("UpdateItem", (client, abortSignal) =>
      client.send(
        new UpdateItemCommand({
          TableName: location.table,
          Key: itemKey(location, arn, shardId),
          UpdateExpression: "SET #owner = :owner, epoch = :epoch, expiresAt = :expiresAt, parent = :parent",
          // Exactly the state we read: a concurrent taker makes one of us lose, and a lease its owner renewed
          // after we read it expired stays its owner's (our own renewals may move the expiry of a lease of ours).
          // And never a shard whose last records were applied meanwhile.
          ConditionExpression: "((attribute_not_exists(epoch) AND :previous = :zero) OR " +
            (ours ? "epoch = :previous" : "(epoch = :previous AND expiresAt = :seenExpiry)") +
            ") AND (attribute_not_exists(finished) OR finished = :unfinished)",
          ExpressionAttributeNames: { "#owner": "owner" },
          ExpressionAttributeValues: {
            ...(ours ? {} : { ":seenExpiry": { N: String(current.expiresAt) } }),
            ":owner": { S: owner },
            ":epoch": { N: String(epoch) },
            ":previous": { N: String(current.epoch) },
            ":zero": { N: "0" },
            ":unfinished": { BOOL: false },
            ":expiresAt": { N: String(now + leaseMillis) },
            // Kept for operators reading the table: which shard this one continues.
            ":parent": parentShardId === undefined ? { NULL: true } : { S: parentShardId }
          }
        }),
        { abortSignal }
      )).pipe(
        Effect.as(true),
        Effect.catchTag("ConditionalCheckFailed", () => Effect.succeed(false))
      )
    return taken ? { ...current, owner, epoch, expiresAt: now + leaseMillis } : undefined
  })

const fenced = (
  location: LeaseLocation,
  arn: string,
  shardId: string,
  owner: string,
  epoch: number,
  update: string,
  values: AttributeMap,
  unlessReleased = false
): Effect.Effect<void, LeaseLost | Throttled | StorageFailure, Dynamo> =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    yield* dynamo.callConditional("UpdateItem", (client, abortSignal) =>
      client.send(
        new UpdateItemCommand({
          TableName: location.table,
          Key: itemKey(location, arn, shardId),
          UpdateExpression: update,
          ConditionExpression: "#owner = :owner AND epoch = :epoch" +
            (unlessReleased ? " AND expiresAt > :released" : ""),
          // "ttl" is a reserved word; a name the expressions do not use would be refused.
          ExpressionAttributeNames: { "#owner": "owner", ...(update.includes("#ttl") ? { "#ttl": "ttl" } : {}) },
          ExpressionAttributeValues: {
            ...values,
            ":owner": { S: owner },
            ":epoch": { N: String(epoch) },
            ...(unlessReleased ? { ":released": { N: "0" } } : {})
          }
        }),
        { abortSignal }
      )).pipe(
        Effect.catchTag("ConditionalCheckFailed", () => Effect.fail(new LeaseLost({ shardId })))
      )
  })

/**
 * Extends a lease we hold and have not released: a renewal that reaches
 * DynamoDB after the release (its request was under way at shutdown) must not
 * take the lease back. With `checkpoint`, records progress in the same write
 * (a checkpoint deferred to the heartbeat costs no request of its own).
 */
export const renew = (
  location: LeaseLocation,
  arn: string,
  lease: ShardLease,
  owner: string,
  leaseMillis: number,
  checkpoint?: string | undefined
) =>
  Effect.flatMap(
    Clock.currentTimeMillis,
    (now) =>
      fenced(
        location,
        arn,
        lease.shardId,
        owner,
        lease.epoch,
        checkpoint === undefined
          ? "SET expiresAt = :expiresAt"
          : "SET expiresAt = :expiresAt, checkpoint = :checkpoint",
        {
          ":expiresAt": { N: String(now + leaseMillis) },
          ...(checkpoint === undefined ? {} : { ":checkpoint": { S: checkpoint } })
        },
        true
      )
  )

/** Records progress on a shard we hold; `finished` when every record of a closed shard was applied (DynamoDB's TTL then removes the lease later). */
export const checkpoint = (
  location: LeaseLocation,
  arn: string,
  lease: ShardLease,
  owner: string,
  sequenceNumber: string | undefined,
  finished: boolean
) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const sets = ["finished = :finished"]
    const values: AttributeMap = { ":finished": { BOOL: finished } }
    if (sequenceNumber !== undefined) {
      sets.push("checkpoint = :checkpoint")
      values[":checkpoint"] = { S: sequenceNumber }
    }
    if (finished) {
      sets.push("#ttl = :ttl")
      values[":ttl"] = { N: String(Math.ceil((now + finishedLeaseMillis) / 1000)) }
    }
    return fenced(location, arn, lease.shardId, owner, lease.epoch, `SET ${sets.join(", ")}`, values)
  })

/**
 * Gives a lease up (graceful shutdown, hand-off), so another worker takes it at once; with `checkpoint`, recording
 * the progress not recorded yet in the same write.
 */
export const release = (
  location: LeaseLocation,
  arn: string,
  lease: ShardLease,
  owner: string,
  checkpoint?: string | undefined
) =>
  fenced(
    location,
    arn,
    lease.shardId,
    owner,
    lease.epoch,
    checkpoint === undefined ? "SET expiresAt = :zero" : "SET expiresAt = :zero, checkpoint = :checkpoint",
    { ":zero": { N: "0" }, ...(checkpoint === undefined ? {} : { ":checkpoint": { S: checkpoint } }) }
  )

/**
 * Records a shard nobody has leased yet as an unowned lease, so that every
 * worker counts it when it works out its fair share. A lease already there
 * is left as it is.
 */
export const register = (location: LeaseLocation, arn: string, shardId: string, parentShardId: string | undefined) =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    yield* conditionalPut(dynamo, {
      TableName: location.table,
      Item: {
        ...itemKey(location, arn, shardId),
        parent: parentShardId === undefined ? { NULL: true } : { S: parentShardId }
      },
      ConditionExpression: "attribute_not_exists(pk)"
    }).pipe(Effect.catchTag("ConditionalCheckFailed", () => Effect.void))
  })

/** A lease as listed, with the stream it belongs to. */
export interface ListedLease extends ShardLease {
  readonly arn: string
}

/** A worker's announcement as stored. */
export interface WorkerAnnouncement {
  readonly owner: string
  readonly expiresAt: number
}

// Announcements live in a partition of their own, so a group's partition holds shard leases only.
const workersPartition = (location: LeaseLocation) => `${location.group}#workers`

/** Every partition key a group's workers read or write in the lease table (what an IAM policy confines them to). */
export const partitionsOf = (location: LeaseLocation): ReadonlyArray<string> => [
  location.group,
  workersPartition(location)
]
const workerKey = (location: LeaseLocation, owner: string): AttributeMap => ({
  pk: { S: workersPartition(location) },
  sk: { S: `worker#${owner}` }
})

const queryAll = (location: LeaseLocation, pk: string, prefix: string) =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    const items: Array<AttributeMap> = []
    let start: AttributeMap | undefined
    do {
      const page = yield* dynamo.call("Query", (client, abortSignal) =>
        client.send(
          new QueryCommand({
            TableName: location.table,
            KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues: { ":pk": { S: pk }, ":prefix": { S: prefix } },
            ConsistentRead: true,
            ExclusiveStartKey: start
          }),
          { abortSignal }
        ))
      items.push(...(page.Items ?? []))
      start = page.LastEvaluatedKey
    } while (start !== undefined)
    return items
  })

/** Every shard lease of the group (of every stream it followed) and every worker announcement, as stored now. */
export const list = (location: LeaseLocation) =>
  Effect.gen(function*() {
    const leaseItems = yield* queryAll(location, location.group, "shard#")
    const workerItems = yield* queryAll(location, workersPartition(location), "worker#")
    const leases = leaseItems.map((item): ListedLease => {
      // sk is `shard#<arn>#<shardId>`; neither a stream ARN nor a shard id contains `#`.
      const path = item.sk!.S!.slice("shard#".length)
      const cut = path.lastIndexOf("#")
      return { ...decode(path.slice(cut + 1), item), arn: path.slice(0, cut) }
    })
    const workers = workerItems.map((item): WorkerAnnouncement => ({
      owner: item.sk!.S!.slice("worker#".length),
      expiresAt: Number(item.expiresAt?.N ?? 0)
    }))
    return { leases, workers }
  })

/**
 * Announces a worker as alive for `leaseMillis`. The first announcement
 * creates the item; later ones only extend an existing item, so one still
 * under way when the worker withdrew cannot bring it back (false then: the
 * item is gone).
 */
export const announce = (location: LeaseLocation, owner: string, leaseMillis: number, first: boolean) =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    const now = yield* Clock.currentTimeMillis
    const expiresAt = { N: String(now + leaseMillis) }
    if (first) {
      yield* dynamo.call("PutItem", (client, abortSignal) =>
        client.send(
          new PutItemCommand({
            TableName: location.table,
            Item: { ...workerKey(location, owner), expiresAt, startedAt: { N: String(now) } }
          }),
          { abortSignal }
        ))
      return true
    }
    return yield* dynamo.callConditional("UpdateItem", (client, abortSignal) =>
      client.send(
        new UpdateItemCommand({
          TableName: location.table,
          Key: workerKey(location, owner),
          UpdateExpression: "SET expiresAt = :expiresAt",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeValues: { ":expiresAt": expiresAt }
        }),
        { abortSignal }
      )).pipe(
        Effect.as(true),
        Effect.catchTag("ConditionalCheckFailed", () => Effect.succeed(false))
      )
  })

/**
 * Removes a worker's announcement: on graceful shutdown (the others count
 * one worker less at once), or, with `expiresAt`, the stale announcement of a
 * worker that died (only if it was not renewed since it was read).
 */
export const withdraw = (location: LeaseLocation, owner: string, expiresAt?: number) =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    yield* dynamo.callConditional("DeleteItem", (client, abortSignal) =>
      client.send(
        new DeleteItemCommand({
          TableName: location.table,
          Key: workerKey(location, owner),
          ...(expiresAt === undefined
            ? {}
            : {
              ConditionExpression: "expiresAt = :seen",
              ExpressionAttributeValues: { ":seen": { N: String(expiresAt) } }
            })
        }),
        { abortSignal }
      )).pipe(Effect.catchTag("ConditionalCheckFailed", () => Effect.void))
  })
