/**
 * A raw look at everything in a store's table, bypassing the store: how many
 * items each of a namespace's partitions holds, whether some text occurs in
 * clear anywhere, and one stored value's ciphertext. What `npm start`'s tour
 * shows to prove that values are stored encrypted; it scans the whole table,
 * so it is for demonstrations, never for serving reads.
 */
import { ScanCommand } from "@aws-sdk/client-dynamodb"
import { Effect } from "effect"
import type { StorageFailure, Throttled } from "../domain/Errors.ts"
import { partitionOf as dataKeyPartition } from "./crypto/DataKeyStore.ts"
import type { AttributeMap } from "./Dynamo.ts"
import { Dynamo } from "./Dynamo.ts"
import { Attr } from "./EventRecord.ts"
import type { Location } from "./EventRecord.ts"
import { isFreedMarker } from "./HistoryRecord.ts"
import { areaPartition, livePartitions } from "./PartitionKeys.ts"

/** What the table holds for one namespace, as DynamoDB has it. */
export interface Survey {
  readonly liveEvents: number
  readonly historyEvents: number
  readonly graves: number
  readonly dataKeys: number
  /** Whether `text` occurs in clear in any item of the table (of any namespace), in any attribute. */
  readonly contains: (text: string) => boolean
  /** A live event holding a value, as stored: its clear op and seq, and its ciphertext. */
  readonly sample: { readonly op: string; readonly seq: string; readonly ciphertext: Uint8Array } | undefined
}

const holds = (item: AttributeMap, text: string): boolean =>
  JSON.stringify(item).includes(text) ||
  Object.values(item).some((value) => value.B !== undefined && Buffer.from(value.B).includes(text))

/** Scans the whole table (every page) and surveys what it holds for the namespace of `location`. */
export const survey = (location: Location): Effect.Effect<Survey, Throttled | StorageFailure, Dynamo> =>
  Effect.gen(function*() {
    const dynamo = yield* Dynamo
    const items: Array<AttributeMap> = []
    let start: AttributeMap | undefined
    do {
      const page = yield* dynamo.call(
        "Scan",
        (client, abortSignal) =>
          client.send(new ScanCommand({ TableName: location.table, ExclusiveStartKey: start }), { abortSignal })
      )
      items.push(...(page.Items ?? []))
      start = page.LastEvaluatedKey
    } while (start !== undefined)
    const inPartition = (partition: string) => items.filter((item) => item[Attr.partition]?.S === partition)
    // Every live partition of a partitioned key space (see `PartitionKeys`), and the areas beside each.
    const partitions = livePartitions(location)
    const inEach = (area?: "history" | "graves") =>
      partitions.flatMap((live) => inPartition(area === undefined ? live : areaPartition(live, area)))
    const live = inEach()
    const sample = live.find((item) => item[Attr.value]?.B !== undefined)
    return {
      liveEvents: live.length,
      historyEvents: inEach("history").filter((item) => !isFreedMarker(item)).length,
      graves: inEach("graves").length,
      dataKeys: inPartition(dataKeyPartition(location.namespace)).length,
      contains: (text) => items.some((item) => holds(item, text)),
      sample: sample === undefined
        ? undefined
        : { op: sample[Attr.op]?.S ?? "?", seq: sample[Attr.seq]?.N ?? "?", ciphertext: sample[Attr.value]!.B! }
    }
  })
