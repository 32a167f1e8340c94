/**
 * Reading a table of Teleport's own DynamoDB backend: every item sits in partition `HashKey = "teleport"` under
 * `FullPath` (the key with the prefix `teleport` before it), holding `Value` (binary), `Expires` (epoch seconds,
 * optional; the table's TTL attribute) and, in recent versions, `Revision`. Read in `FullPath` order, a page at a
 * time, so an import can resume after the last path it finished.
 */
import { Stream } from "effect"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import type { AttributeMap, Dynamo } from "../Dynamo.ts"
import { queryPages } from "../Dynamo.ts"

/** Teleport's attribute names. */
export const TeleportAttr = {
  hashKey: "HashKey",
  fullPath: "FullPath",
  value: "Value",
  expires: "Expires",
  revision: "Revision"
} as const

/** Teleport's one partition, and the prefix of every `FullPath`. */
export const defaultHashKey = "teleport"

/** One Teleport item, parsed; `problem` says why it cannot be imported as it is. */
export interface TeleportRecord {
  readonly fullPath: string
  readonly value: Uint8Array
  /** Epoch milliseconds. */
  readonly expires: number | undefined
  readonly revision: string | undefined
  readonly problem: string | undefined
}

const parse = (item: AttributeMap): TeleportRecord => {
  const fullPath = item[TeleportAttr.fullPath]?.S ?? ""
  const raw = item[TeleportAttr.value]
  const value = raw?.B ?? (raw?.S === undefined ? undefined : new TextEncoder().encode(raw.S))
  const expiresText = item[TeleportAttr.expires]?.N
  const expires = expiresText === undefined ? undefined : Number(expiresText)
  const problem = fullPath === ""
    ? "no FullPath"
    : value === undefined
    ? "no binary Value"
    : expires !== undefined && !Number.isFinite(expires)
    ? `Expires ${expiresText} is not a number`
    : undefined
  return {
    fullPath,
    value: value ?? new Uint8Array(),
    expires: expires === undefined || !Number.isFinite(expires) ? undefined : expires * 1000,
    revision: item[TeleportAttr.revision]?.S,
    problem
  }
}

/** A page of a Teleport table, and the last `FullPath` on it (where to resume). */
export interface TeleportPage {
  readonly records: ReadonlyArray<TeleportRecord>
  readonly last: string | undefined
}

/** The items of a Teleport table in `FullPath` order, page by page, after `after` when given. */
export const pages = (options: {
  readonly table: string
  readonly hashKey: string
  readonly after?: string | undefined
  readonly pageSize?: number | undefined
}): Stream.Stream<TeleportPage, Throttled | StorageFailure, Dynamo> =>
  queryPages({
    TableName: options.table,
    KeyConditionExpression: "#h = :h",
    ExpressionAttributeNames: { "#h": TeleportAttr.hashKey },
    ExpressionAttributeValues: { ":h": { S: options.hashKey } },
    ConsistentRead: true,
    ...(options.after === undefined
      ? {}
      : {
        ExclusiveStartKey: {
          [TeleportAttr.hashKey]: { S: options.hashKey },
          [TeleportAttr.fullPath]: { S: options.after }
        }
      }),
    ...(options.pageSize === undefined ? {} : { Limit: options.pageSize })
  }).pipe(Stream.map((page) => {
    const records = (page.Items ?? []).map(parse)
    return { records, last: records.at(-1)?.fullPath }
  }))
