/**
 * The layout record: the partitioned prefixes of a namespace (see `Partitioning`), kept in the table in the
 * namespace's metadata partition (`<namespace>\0meta`). Two processes that routed a key differently would write
 * its events into two partitions and fork it; so the first store opened with a layout records it (conditionally,
 * once), and every store after, layout or not, must agree with what is recorded or refuse to open. Changing a
 * layout moves keys between partitions: that is a migration's job, never a configuration change's.
 *
 * A namespace never opened with a layout has no record, and a store without a layout writes none: such a table
 * stays byte for byte what it was.
 */
import { GetItemCommand, PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb"
import { Effect, Result } from "effect"
import type { StorageFailure, Throttled } from "../domain/Errors.ts"
import * as Key from "../domain/Key.ts"
import * as Partitioning from "../domain/Partitioning.ts"
import type { Layout } from "../domain/Partitioning.ts"
import * as SortKey from "../domain/SortKey.ts"
import { ConfigInvalid } from "./config/ConfigInvalid.ts"
import { Dynamo } from "./Dynamo.ts"
import type { AttributeMap } from "./Dynamo.ts"
import { Attr } from "./EventRecord.ts"
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

/** The recorded layout of a namespace: undefined when none was ever recorded. */
export const read = (location: Pick<Location, "table" | "namespace">) =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    const output = yield* dynamo.call("GetItem", (client, abortSignal) =>
      client.send(
        new GetItemCommand({ TableName: location.table, Key: recordKey(location.namespace), ConsistentRead: true }),
        { abortSignal }
      ))
    const text = output.Item?.[layoutAttr]?.S
    if (output.Item === undefined) return undefined
    const layout = text === undefined ? undefined : parse(text)
    if (layout === undefined) {
      return yield* new ConfigInvalid({
        field: layoutField,
        reason: `the layout record of namespace ${location.namespace} is unreadable: restore it from a backup`
      })
    }
    return layout
  })

const mismatch = (location: Location, configured: Layout, recorded: Layout) =>
  new ConfigInvalid({
    field: layoutField,
    reason: `namespace ${location.namespace} of table ${location.table} is laid out as ` +
      `[${Partitioning.describe(recorded)}], but this store is configured with ` +
      `[${Partitioning.describe(configured)}]: every process of a namespace must route keys alike, or a key would ` +
      "fork across partitions. Configure the recorded layout; changing it needs a migration of the keys it moves"
  })

/** Whether any item of a partition lies in a sort-key range (one item read at most). */
const holdsAny = (location: Location, partition: string, prefix: string) =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    const output = yield* dynamo.call("Query", (client, abortSignal) =>
      client.send(
        new QueryCommand({
          TableName: location.table,
          KeyConditionExpression: "#pk = :pk AND #sk BETWEEN :lower AND :upper",
          ExpressionAttributeNames: { "#pk": Attr.partition, "#sk": Attr.sort },
          ExpressionAttributeValues: {
            ":pk": { S: partition },
            ":lower": { B: Key.toBytes(prefix) },
            ":upper": { B: SortKey.prefixUpperBound(prefix) }
          },
          ConsistentRead: true,
          Limit: 1
        }),
        { abortSignal }
      ))
    return (output.Items?.length ?? 0) > 0
  })

/**
 * Keys already stored under a newly partitioned prefix would vanish from reads (they stay in the default
 * partition, which reads under the prefix no longer consult): refused until a migration moves them. Live events,
 * graves and history copies all count.
 */
const refuseStoredUnder = (location: Location, layout: Layout) =>
  Effect.forEach(layout, ({ prefix }) =>
    Effect.gen(function*() {
      for (const partition of ["live", "graves", "history"] as const) {
        const pk = partition === "live" ? location.namespace : areaPartition(location.namespace, partition)
        if (yield* holdsAny(location, pk, prefix)) {
          return yield* new ConfigInvalid({
            field: layoutField,
            reason: `namespace ${location.namespace} already holds keys under ${prefix} in its one partition ` +
              `(${partition === "live" ? "live events" : partition}): partitioning the prefix would hide them. ` +
              "They need a migration into the new layout first"
          })
        }
      }
    }), { discard: true })

/**
 * Checks a location's layout (`partitions`) against the namespace's record before a store serves: the same
 * layout, or none recorded and none configured, opens; a differing one is `ConfigInvalid` naming both. The first
 * store with a layout records it (conditionally: of two racing first stores, the second compares with the first's),
 * after checking that no key is already stored under a newly partitioned prefix. Invalid layouts are refused
 * before any I/O.
 */
export const settle = Effect.fn("LayoutRecord.settle")(function*(
  location: Location
): Effect.fn.Return<void, ConfigInvalid | Throttled | StorageFailure, Dynamo> {
  const configured = location.partitions ?? []
  const valid = check(configured)
  if (Result.isFailure(valid)) return yield* valid.failure
  const recorded = yield* read(location)
  if (recorded !== undefined) {
    if (!Partitioning.same(recorded, configured)) return yield* mismatch(location, configured, recorded)
    return
  }
  if (configured.length === 0) return
  yield* refuseStoredUnder(location, configured)
  const dynamo = yield* Dynamo
  const written = yield* dynamo.callConditional("PutItem", (client, abortSignal) =>
    client.send(
      new PutItemCommand({
        TableName: location.table,
        Item: {
          ...recordKey(location.namespace),
          [layoutAttr]: { S: JSON.stringify(Partitioning.canonical(configured)) }
        },
        ConditionExpression: "attribute_not_exists(#pk)",
        ExpressionAttributeNames: { "#pk": Attr.partition }
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
    return
  }
  const raced = yield* read(location)
  if (raced !== undefined && !Partitioning.same(raced, configured)) {
    return yield* mismatch(location, configured, raced)
  }
})
