/**
 * The layout record: the partitioned prefixes of a namespace (see `Partitioning`), kept in the table in the
 * namespace's metadata partition (`<namespace>\0meta`). Two processes that routed a key differently would write
 * its events into two partitions and fork it; so the first store opened with a layout records it (conditionally,
 * once), and every store after, layout or not, must agree with what is recorded or refuse to open. Changing a
 * layout moves keys between partitions: that is a migration's job, never a configuration change's. A migration
 * (`PartitionMigration`) records `to` beside the layout while it moves keys (see `LayoutTransition`), and when it
 * began (`begin`): stores with `to` serve in migrating mode, all others refuse, and stores already running re-read
 * the record within their layout lease (see `LayoutLease`); when it is done, `to` becomes the layout.
 *
 * The same item records the sealed prefixes a sealing migration began on (see `SealMigration`), each with its begin:
 * one consistent read tells a running store both whether its layout and its sealed prefixes are still allowed. The
 * item may hold sealed prefixes and no layout (a namespace never laid out): that reads as no layout recorded.
 *
 * A namespace never opened with a layout nor sealed in place has no record, and a store without a layout writes none
 * unless it seals clear keys: such a table stays byte for byte what it was.
 */
import { GetItemCommand, QueryCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb"
import { Clock, Effect, Result } from "effect"
import type { StorageFailure, Throttled } from "../domain/Errors.ts"
import * as Key from "../domain/Key.ts"
import * as LayoutTransition from "../domain/LayoutTransition.ts"
import * as Partitioning from "../domain/Partitioning.ts"
import type { Layout } from "../domain/Partitioning.ts"
import * as SortKey from "../domain/SortKey.ts"
import { ConfigInvalid } from "./config/ConfigInvalid.ts"
import { Dynamo } from "./Dynamo.ts"
import type { AttributeMap } from "./Dynamo.ts"
import { Attr, rangeQuery } from "./EventRecord.ts"
import type { Location } from "./EventRecord.ts"
import { areaPartition, metaPartition } from "./PartitionKeys.ts"

/** The attribute holding the recorded layout, canonical JSON (see `Partitioning.canonical`). */
const layoutAttr = "layout"

/** The field configuration errors about the layout name. */
export const layoutField = "storage.partitioned_prefixes"

const recordKey = (namespace: string): AttributeMap => ({
  [Attr.partition]: { S: metaPartition(namespace) },
  [Attr.sort]: { B: new Uint8Array(Buffer.from("layout", "utf8")) }
})

/** A layout's problems as one `ConfigInvalid`, or the layout. */
export const check = (layout: Layout): Result.Result<Layout, ConfigInvalid> =>
  Result.mapError(
    Partitioning.validate(layout, layoutField),
    (problems) => ConfigInvalid.of(problems as [Partitioning.LayoutProblem, ...Array<Partitioning.LayoutProblem>])
  )

const parse = (text: string): Layout | undefined => {
  try {
    const value: unknown = JSON.parse(text)
    if (!Array.isArray(value)) return undefined
    const checked = Partitioning.validate(value as Layout)
    return Result.isSuccess(checked) ? checked.success : undefined
  } catch {
    return undefined
  }
}

/** The attribute holding the layout a migration moves keys to (see `LayoutTransition`), while one is under way. */
const toAttr = "to"

/** The attribute holding when the migration was recorded (epoch ms, the runner's clock), while one is under way. */
const beginAttr = "begin"

const unreadable = (location: Pick<Location, "namespace">) =>
  new ConfigInvalid({
    field: layoutField,
    reason: `the layout record of namespace ${location.namespace} is unreadable: restore it from a backup`
  })

/** The attribute holding the sealed prefixes a sealing migration began on: a map from prefix to its begin (epoch ms). */
const sealedAttr = "sealed"

/** A sealed prefix recorded by a sealing migration, and when it was recorded (see `LayoutLease.movesFrom`). */
export interface RecordedSealing {
  readonly prefix: string
  readonly begin: number
}

/** What the namespace's record says: its layout (undefined when none was recorded), and its recorded sealed prefixes. */
export interface NamespaceRecord {
  readonly layout: LayoutTransition.Recorded | undefined
  readonly sealed: ReadonlyArray<RecordedSealing>
}

/** Both parts of the namespace's record, in one consistent read (see {@link NamespaceRecord}). */
export const readRecord = (location: Pick<Location, "table" | "namespace">) =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    const output = yield* dynamo.call("GetItem", (client, abortSignal) =>
      client.send(
        new GetItemCommand({ TableName: location.table, Key: recordKey(location.namespace), ConsistentRead: true }),
        { abortSignal }
      ))
    const item = output.Item
    if (item === undefined) return { layout: undefined, sealed: [] } satisfies NamespaceRecord
    const sealed: Array<RecordedSealing> = []
    for (const [prefix, value] of Object.entries(item[sealedAttr]?.M ?? {})) {
      const begin = Number(value.N)
      if (!Number.isSafeInteger(begin)) return yield* unreadable(location)
      sealed.push({ prefix, begin })
    }
    const text = item[layoutAttr]?.S
    if (text === undefined) {
      if (item[toAttr] !== undefined || item[sealedAttr]?.M === undefined) return yield* unreadable(location)
      return { layout: undefined, sealed } satisfies NamespaceRecord
    }
    const layout = parse(text)
    const toText = item[toAttr]?.S
    const to = toText === undefined ? undefined : parse(toText)
    if (layout === undefined || (toText !== undefined && to === undefined)) return yield* unreadable(location)
    const beginText = item[beginAttr]?.N
    const begin = beginText === undefined ? undefined : Number(beginText)
    if (begin !== undefined && !Number.isSafeInteger(begin)) return yield* unreadable(location)
    return { layout: { layout, to, begin }, sealed } satisfies NamespaceRecord
  })

/** What the namespace's record says (settled, or migrating with `to`): undefined when none was ever recorded. */
export const readState = (location: Pick<Location, "table" | "namespace">) =>
  Effect.map(readRecord(location), (record) => record.layout)

/**
 * Records that a sealing migration begins on `prefixes` (see `SealMigration`), each with the time it is sent unless
 * it was recorded before (its first begin stays): from then on stores configured without one of them are refused,
 * and those running are fenced by their lease. The recorded sealed prefixes, with their begins, after.
 */
export const recordSealing = Effect.fn("LayoutRecord.recordSealing")(function*(
  location: Pick<Location, "table" | "namespace">,
  prefixes: ReadonlyArray<string>
) {
  const dynamo = yield* Dynamo
  const update = (expression: string, names: Record<string, string>, values: AttributeMap) =>
    dynamo.call("UpdateItem", (client, abortSignal) =>
      client.send(
        new UpdateItemCommand({
          TableName: location.table,
          Key: recordKey(location.namespace),
          UpdateExpression: expression,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values
        }),
        { abortSignal }
      ))
  yield* update("SET #sealed = if_not_exists(#sealed, :none)", { "#sealed": sealedAttr }, { ":none": { M: {} } })
  for (const prefix of prefixes) {
    const now = yield* Clock.currentTimeMillis
    yield* update(
      "SET #sealed.#prefix = if_not_exists(#sealed.#prefix, :now)",
      { "#sealed": sealedAttr, "#prefix": prefix },
      { ":now": { N: String(now) } }
    )
  }
  return (yield* readRecord(location)).sealed
})

/** The recorded layout of a namespace (the one migrated from, while a migration is under way): undefined when none. */
export const read = (location: Pick<Location, "table" | "namespace">) =>
  Effect.map(readState(location), (state) => state?.layout)

/**
 * Records a migration from the recorded layout (`from`, none recorded when `[]` is the first) to `to`, with the time
 * it is sent (`begin`, see `LayoutLease.movesFrom`): on the condition that the record is still what was read, so of
 * two runners racing, one records and the other re-reads. False when the record changed meanwhile.
 */
export const begin = Effect.fn("LayoutRecord.begin")(function*(
  location: Pick<Location, "table" | "namespace">,
  recorded: LayoutTransition.Recorded | undefined,
  to: Layout
) {
  const dynamo = yield* Dynamo
  const from = recorded?.layout ?? []
  const now = yield* Clock.currentTimeMillis
  // An update, not a put: the item's sealed prefixes stay.
  return yield* dynamo.callConditional("UpdateItem", (client, abortSignal) =>
    client.send(
      new UpdateItemCommand({
        TableName: location.table,
        Key: recordKey(location.namespace),
        UpdateExpression: "SET #layout = :layout, #to = :to, #begin = :begin",
        ConditionExpression: recorded === undefined
          ? "attribute_not_exists(#layout)"
          : "#layout = :layout AND attribute_not_exists(#to)",
        ExpressionAttributeNames: { "#layout": layoutAttr, "#to": toAttr, "#begin": beginAttr },
        ExpressionAttributeValues: {
          ":layout": { S: JSON.stringify(Partitioning.canonical(from)) },
          ":to": { S: JSON.stringify(Partitioning.canonical(to)) },
          ":begin": { N: String(now) }
        }
      }),
      { abortSignal }
    )).pipe(Effect.as(true), Effect.catchTag("ConditionalCheckFailed", () => Effect.succeed(false)))
})

/**
 * Settles a finished migration: the record says `to` alone from then on (on the condition that it was migrating to
 * `to`), and stores open in plain mode. False when the record was not migrating to `to`.
 */
export const finish = Effect.fn("LayoutRecord.finish")(function*(
  location: Pick<Location, "table" | "namespace">,
  to: Layout
) {
  const dynamo = yield* Dynamo
  const target = JSON.stringify(Partitioning.canonical(to))
  return yield* dynamo.callConditional("UpdateItem", (client, abortSignal) =>
    client.send(
      new UpdateItemCommand({
        TableName: location.table,
        Key: recordKey(location.namespace),
        UpdateExpression: "SET #layout = :to REMOVE #to, #begin",
        ConditionExpression: "#to = :to",
        ExpressionAttributeNames: { "#layout": layoutAttr, "#to": toAttr, "#begin": beginAttr },
        ExpressionAttributeValues: { ":to": { S: target } }
      }),
      { abortSignal }
    )).pipe(Effect.as(true), Effect.catchTag("ConditionalCheckFailed", () => Effect.succeed(false)))
})

/** Whether any item of a partition lies in a sort-key range (one item read at most). */
const holdsAny = (location: Location, partition: string, prefix: string) =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    const output = yield* dynamo.call("Query", (client, abortSignal) =>
      client.send(
        new QueryCommand({
          ...rangeQuery(location.table, partition, Key.toBytes(prefix), SortKey.prefixUpperBound(prefix)),
          Limit: 1
        }),
        { abortSignal }
      ))
    return (output.Items?.length ?? 0) > 0
  })

/**
 * The first prefix of `layout` under which keys are already stored in the one default partition (live events, graves or
 * history copies): they would vanish from reads under a newly partitioned prefix, so a migration must move them.
 */
const storedUnder = (location: Location, layout: Layout) =>
  Effect.gen(function*() {
    for (const { prefix } of layout) {
      for (const area of ["live", "graves", "history"] as const) {
        const pk = area === "live" ? location.namespace : areaPartition(location.namespace, area)
        if (yield* holdsAny(location, pk, prefix)) return prefix
      }
    }
    return undefined
  })

const refused = (location: Location, reason: string) =>
  new ConfigInvalid({
    field: layoutField,
    reason: `namespace ${location.namespace} of table ${location.table}: ${reason}`
  })

/**
 * Checks a location's layout (`partitions`) against the namespace's record before a store serves (see
 * `LayoutTransition.opening`): the recorded layout, or none recorded and none configured, opens as it is; the layout
 * a recorded migration moves to opens migrating (the layout it moves from returned); anything else is
 * `ConfigInvalid` naming both. The first store with a layout records it (conditionally: of two racing first stores,
 * the second compares with the first's), after checking that no key is already stored under a newly partitioned
 * prefix. Invalid layouts are refused before any I/O. With the opening, the sealed prefixes the same read found
 * recorded (see {@link readRecord}), so a store checks both on one read.
 */
export const settleRecord = Effect.fn("LayoutRecord.settle")(function*(
  location: Location
): Effect.fn.Return<
  { readonly opening: LayoutTransition.Opening; readonly sealed: ReadonlyArray<RecordedSealing> },
  ConfigInvalid | Throttled | StorageFailure,
  Dynamo
> {
  const configured = location.partitions ?? []
  const valid = check(configured)
  if (Result.isFailure(valid)) return yield* valid.failure
  for (let attempt = 0; attempt < 2; attempt++) {
    const { layout: recorded, sealed } = yield* readRecord(location)
    const under = recorded === undefined && configured.length > 0
      ? yield* storedUnder(location, configured)
      : undefined
    const opening = LayoutTransition.opening(recorded, configured, under)
    if (opening._tag === "Refused") return yield* refused(location, opening.reason)
    if (opening._tag === "Migrating" || !opening.record) return { opening, sealed }
    const dynamo = yield* Dynamo
    const written = yield* dynamo.callConditional("UpdateItem", (client, abortSignal) =>
      client.send(
        new UpdateItemCommand({
          TableName: location.table,
          Key: recordKey(location.namespace),
          UpdateExpression: "SET #layout = :layout",
          ConditionExpression: "attribute_not_exists(#layout)",
          ExpressionAttributeNames: { "#layout": layoutAttr },
          ExpressionAttributeValues: { ":layout": { S: JSON.stringify(Partitioning.canonical(configured)) } }
        }),
        { abortSignal }
      )).pipe(
        Effect.as(true),
        Effect.catchTag("ConditionalCheckFailed", () => Effect.succeed(false))
      )
    if (written) {
      yield* Effect.logInfo(
        `recorded the layout of namespace ${location.namespace}: ${Partitioning.describe(configured)}`
      )
      return { opening, sealed }
    }
    // Another store recorded first: judge its record.
  }
  return yield* refused(location, "the layout record kept changing while this store opened")
})

/** {@link settleRecord}'s opening alone, for what checks only the layout (a restore's target). */
export const settle = (location: Location) => Effect.map(settleRecord(location), (settled) => settled.opening)
