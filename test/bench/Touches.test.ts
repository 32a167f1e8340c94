import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { itemBytes, writeUnits } from "../../bench/simulation/ItemSize.ts"
import { allocate, keyOfSort, touchesOf } from "../../bench/simulation/Touches.ts"
import type { Touch } from "../../bench/simulation/Touches.ts"
import * as SortKey from "../../src/domain/SortKey.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261202), numRuns: Number(process.env.FC_RUNS ?? 200) }

const table = "events"
const event = (key: string, seq: number, valueBytes = 10, pk = "ns") => ({
  pk: { S: pk },
  sk: { B: SortKey.encode(key, seq) },
  val: { B: new Uint8Array(valueBytes) }
})
const keyOf = (key: string, pk = "ns") => ({ pk: { S: pk }, sk: { B: SortKey.encode(key, 1) } })
const total = (touches: ReadonlyArray<Touch>) => touches.reduce((sum, t) => sum + t.units, 0)

describe("item sizes", () => {
  it("adds attribute names and values, and bills writes per 1 KB, twice in a transaction", () => {
    expect(itemBytes({ ab: { S: "héllo" }, c: { B: new Uint8Array(7) }, n: { N: "12345" }, t: { BOOL: true } }))
      .toBe(2 + 6 + 1 + 7 + 1 + 4 + 1 + 1)
    expect(writeUnits(0, false)).toBe(1)
    expect(writeUnits(1024, false)).toBe(1)
    expect(writeUnits(1025, false)).toBe(2)
    expect(writeUnits(1025, true)).toBe(4)
  })
})

describe("keyOfSort", () => {
  it("reads the store key of an event's, a grave's and a string sort key, and nothing of a digest", () => {
    expect(keyOfSort({ B: SortKey.encode("/nodes/a", 42) })).toBe("/nodes/a")
    expect(keyOfSort({ B: SortKey.keyPrefix("/nodes/b") })).toBe("/nodes/b")
    expect(keyOfSort({ S: "/nodes/c" })).toBe("/nodes/c")
    expect(keyOfSort({ B: new Uint8Array([0xff, 0xfe, 0x01, 0x02]) })).toBeUndefined()
    expect(keyOfSort(undefined)).toBeUndefined()
  })
})

describe("touchesOf", () => {
  it("charges a single-item write or read wholly to its partition-key value and key", () => {
    const consumed = [{ TableName: table, CapacityUnits: 1 }]
    expect(touchesOf("PutItem", { TableName: table, Item: event("/a", 3) }, consumed)).toEqual([
      { table, pk: "ns", key: { _tag: "Key", key: "/a" }, kind: "write", units: 1, consistent: false }
    ])
    const read = touchesOf("GetItem", { TableName: table, Key: keyOf("/b"), ConsistentRead: true }, consumed)
    expect(read).toEqual([
      { table, pk: "ns", key: { _tag: "Key", key: "/b" }, kind: "read", units: 1, consistent: true }
    ])
  })

  it("reads a Query's partition key and sort-key bounds: one key, a range, or the whole value", () => {
    const query = (values: Record<string, { S?: string; B?: Uint8Array }>, condition: string) =>
      touchesOf(
        "Query",
        {
          TableName: table,
          KeyConditionExpression: condition,
          ExpressionAttributeNames: { "#pk": "pk", "#sk": "sk" },
          ExpressionAttributeValues: values
        },
        [{ TableName: table, CapacityUnits: 2.5 }]
      )[0]!
    const between = "#pk = :pk AND #sk BETWEEN :lower AND :upper"
    const one = query(
      { ":pk": { S: "ns" }, ":lower": { B: SortKey.lowerBound("/k") }, ":upper": { B: SortKey.upperBound("/k") } },
      between
    )
    expect(one).toMatchObject({ pk: "ns", key: { _tag: "Key", key: "/k" }, kind: "read", units: 2.5 })
    const range = query(
      {
        ":pk": { S: "ns" },
        ":lower": { B: SortKey.lowerBound("/a") },
        ":upper": { B: SortKey.prefixUpperBound("/z") }
      },
      between
    )
    expect(range.key._tag).toBe("Range")
    if (range.key._tag === "Range") {
      expect(Buffer.compare(range.key.lower, range.key.upper)).toBeLessThan(0)
      expect(Buffer.from(range.key.lower).subarray(0, 2).toString()).toBe("/a")
    }
    expect(query({ ":pk": { S: "ns\u0000data-keys" } }, "pk = :pk")).toMatchObject({
      pk: "ns\u0000data-keys",
      key: { _tag: "All" }
    })
  })

  it("splits a transaction as DynamoDB bills it: a Put by its size, the rest of the table's units over the others", () => {
    // A 3 KB put costs 6 units in a transaction; the delete of a stored item whose size only DynamoDB knows, and a
    // condition check, share the other 4 of the table's 10.
    const touches = touchesOf(
      "TransactWriteItems",
      {
        TransactItems: [
          { Put: { TableName: table, Item: event("/a", 2, 3000, "ns\u0000history") } },
          { Delete: { TableName: table, Key: keyOf("/a") } },
          { ConditionCheck: { TableName: table, Key: keyOf("/b") } },
          { Put: { TableName: "leases", Item: { pk: { S: "shard" }, sk: { S: "x" } } } }
        ]
      },
      [{ TableName: table, CapacityUnits: 10 }, { TableName: "leases", CapacityUnits: 2 }]
    )
    expect(touches.map((t) => [t.table, t.pk, t.units])).toEqual([
      [table, "ns\u0000history", 6],
      [table, "ns", 2],
      [table, "ns", 2],
      ["leases", "shard", 2]
    ])
    expect(touches.every((t) => t.kind === "write")).toBe(true)
  })

  it("splits a batch write with single-write units per item", () => {
    const touches = touchesOf(
      "BatchWriteItem",
      {
        RequestItems: {
          [table]: [{ PutRequest: { Item: event("/a", 1, 1500) } }, { DeleteRequest: { Key: keyOf("/b", "other") } }]
        }
      },
      [{ TableName: table, CapacityUnits: 5 }]
    )
    expect(touches.map((t) => [t.pk, t.units])).toEqual([["ns", 2], ["other", 3]])
  })

  it("scales estimates to the reported total when the rest cannot cover the items of unknown size", () => {
    expect(allocate(3, [4, undefined], 2)).toEqual([2, 1])
    expect(allocate(6, [undefined, undefined, undefined], 2)).toEqual([2, 2, 2])
    expect(allocate(0, [], 1)).toEqual([])
  })

  it("keeps a request's units what DynamoDB reported, however they are split", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ put: fc.boolean(), bytes: fc.integer({ min: 0, max: 20_000 }) }), {
          minLength: 1,
          maxLength: 25
        }),
        fc.integer({ min: 0, max: 400 }),
        (items, reported) => {
          const touches = touchesOf(
            "TransactWriteItems",
            {
              TransactItems: items.map((item, i) =>
                item.put
                  ? { Put: { TableName: table, Item: event(`/k${i}`, 1, item.bytes) } }
                  : { Delete: { TableName: table, Key: keyOf(`/k${i}`) } }
              )
            },
            [{ TableName: table, CapacityUnits: reported }]
          )
          expect(touches).toHaveLength(items.length)
          expect(total(touches)).toBeCloseTo(reported, 6)
          expect(touches.every((t) => t.units >= 0)).toBe(true)
        }
      ),
      params
    )
  })
})
