/**
 * Checks that read the raw tables, bypassing the store: a key's events wherever compaction put them (live range,
 * history area, grave), and every attribute of every item searched for plaintext values.
 */
import { ScanCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import * as SortKey from "../../src/domain/SortKey.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import { historyPartition, isFreedMarker } from "../../src/infra/HistoryRecord.ts"
import { rawGraves, rawKeyItems, rawPartition } from "../support/RawTable.ts"
import type { CampaignRecord } from "./Campaign.ts"
import { ttlKeys } from "./Campaign.ts"
import type { CheckOutcome } from "./Checks.ts"

/** One event of a key as the raw table has it: op, expiry, revision, and where copies of it were found. */
export interface RawEvent {
  readonly op: string
  readonly expires: number | undefined
  readonly revision: string | undefined
  /** `live`, `history`, `grave`: every place a copy of this seq was found, in reading order. */
  readonly where: ReadonlyArray<string>
}

/** A key's events as the raw table has them (live range, history area, grave), by seq. */
export type RawEvents = ReadonlyMap<number, RawEvent>

/** A key's raw events, and the seqs whose copies disagree (a history copy or grave that is not the live event). */
export interface RawKey {
  readonly events: RawEvents
  readonly conflicts: ReadonlyArray<string>
}

const describe = (event: Omit<RawEvent, "where">) =>
  `${event.op}@${event.revision}${event.expires === undefined ? "" : ` exp ${event.expires}`}`

/**
 * Every expiring key's events, read from the live range, then the history area, then the graves. A seq found in
 * several places must be the same event everywhere (compaction copies, it never rewrites): any difference is listed
 * as a conflict, and the copy read last is kept.
 */
export const rawEvents = async (client: DynamoDBClient, record: CampaignRecord): Promise<Map<string, RawKey>> => {
  const location = { table: record.table, namespace: record.namespace }
  const byKey = new Map<string, { events: Map<number, RawEvent>; conflicts: Array<string> }>()
  const add = (key: string, where: string, seq: number, event: Omit<RawEvent, "where">) => {
    const entry = byKey.get(key) ?? { events: new Map<number, RawEvent>(), conflicts: [] }
    byKey.set(key, entry)
    const earlier = entry.events.get(seq)
    // A grave keeps op and revision only; its expiry is not compared.
    if (
      earlier !== undefined &&
      (earlier.op !== event.op || earlier.revision !== event.revision ||
        (where !== "grave" && earlier.expires !== event.expires))
    ) {
      entry.conflicts.push(`seq ${seq}: ${earlier.where.join("+")} ${describe(earlier)}, ${where} ${describe(event)}`)
    }
    entry.events.set(seq, {
      ...(where === "grave" && earlier !== undefined ? earlier : event),
      where: [...(earlier?.where ?? []), where]
    })
  }
  const fromItem = (item: Record<string, AttributeValue>) => {
    const expires = item[Attr.expires]?.N
    return {
      op: item[Attr.op]!.S!,
      expires: expires === undefined ? undefined : Number(expires),
      revision: item[Attr.revision]?.S
    }
  }
  for (const key of ttlKeys) {
    for (const item of await rawKeyItems(client, location, key)) {
      add(key, "live", Number(item[Attr.seq]!.N), fromItem(item))
    }
  }
  for (const item of await rawPartition(client, record.table, historyPartition(location))) {
    // A marker for a freed seq 1 (retention none) holds no event.
    if (isFreedMarker(item)) continue
    const { key } = SortKey.decode(item[Attr.sort]!.B!)
    if (ttlKeys.includes(key)) add(key, "history", Number(item[Attr.seq]!.N), fromItem(item))
  }
  for (const grave of await rawGraves(client, location)) {
    if (ttlKeys.includes(grave.key)) {
      add(grave.key, "grave", grave.seq, { op: grave.op, expires: undefined, revision: grave.revision })
    }
  }
  return new Map([...byKey].map(([key, { conflicts, events }]) => [key, { events, conflicts }]))
}

const leaves = (value: AttributeValue): Array<string | Uint8Array> => {
  if (value.S !== undefined) return [value.S]
  if (value.B !== undefined) return [value.B]
  if (value.SS !== undefined) return [...value.SS]
  if (value.BS !== undefined) return [...value.BS]
  if (value.L !== undefined) return value.L.flatMap(leaves)
  if (value.M !== undefined) return Object.entries(value.M).flatMap(([name, inner]) => [name, ...leaves(inner)])
  return []
}

/** No attribute of any item of `tables` contains one of `values`; the note says how much compaction moved. */
export const plaintext = async (
  client: DynamoDBClient,
  tables: ReadonlyArray<string>,
  values: ReadonlyArray<string>
): Promise<CheckOutcome> => {
  const violations: Array<string> = []
  let items = 0
  let moved = 0
  let graves = 0
  for (const table of tables) {
    let start: Record<string, AttributeValue> | undefined
    do {
      const page = await client.send(
        new ScanCommand({ TableName: table, ExclusiveStartKey: start, ConsistentRead: true })
      )
      for (const item of page.Items ?? []) {
        items++
        if (item[Attr.partition]?.S?.endsWith("\u0000history")) moved++
        if (item[Attr.partition]?.S?.endsWith("\u0000graves")) graves++
        for (const [name, value] of Object.entries(item)) {
          const haystack = [name, ...leaves(value)]
            .map((leaf) => (typeof leaf === "string" ? leaf : Buffer.from(leaf).toString("latin1")))
            .join("\n")
          // Every written value starts with "plain-": one search finds the candidates, the exact values confirm them.
          if (!haystack.includes("plain-")) continue
          for (const v of values) {
            if (haystack.includes(v)) violations.push(`attribute ${name} of an item of ${table} contains ${v}`)
          }
        }
      }
      start = page.LastEvaluatedKey
    } while (start !== undefined)
  }
  return {
    name: "plaintext",
    violations,
    note: `${items} items scanned, ${moved} in the history area, ${graves} graves`
  }
}
