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

/** A key's events as the raw table has them (live range, history area, grave), by seq: op and expiry. */
export type RawEvents = ReadonlyMap<number, { readonly op: string; readonly expires: number | undefined }>

export const rawEvents = async (client: DynamoDBClient, record: CampaignRecord): Promise<Map<string, RawEvents>> => {
  const location = { table: record.table, namespace: record.namespace }
  const byKey = new Map<string, Map<number, { op: string; expires: number | undefined }>>()
  const add = (key: string, item: Record<string, AttributeValue>) => {
    const events = byKey.get(key) ?? new Map()
    const expires = item[Attr.expires]?.N
    events.set(Number(item[Attr.seq]!.N), {
      op: item[Attr.op]!.S!,
      expires: expires === undefined ? undefined : Number(expires)
    })
    byKey.set(key, events)
  }
  for (const key of ttlKeys) {
    for (const item of await rawKeyItems(client, location, key)) add(key, item)
  }
  for (const item of await rawPartition(client, record.table, historyPartition(location))) {
    // A marker for a freed seq 1 (retention none) holds no event.
    if (isFreedMarker(item)) continue
    const { key } = SortKey.decode(item[Attr.sort]!.B!)
    if (ttlKeys.includes(key)) add(key, item)
  }
  for (const grave of await rawGraves(client, location)) {
    if (ttlKeys.includes(grave.key)) {
      const events = byKey.get(grave.key) ?? new Map()
      if (!events.has(grave.seq)) events.set(grave.seq, { op: grave.op, expires: undefined })
      byKey.set(grave.key, events)
    }
  }
  return byKey
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
