import { DeleteItemCommand, PutItemCommand, TransactWriteItemsCommand } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { makeClients } from "../../bench/support/Clients.ts"
import { handler } from "../../bench/support/Stub.ts"
import * as Trace from "../../bench/support/Trace.ts"
import * as SortKey from "../../src/domain/SortKey.ts"

// The SDK's path through the bench's middleware, answered by a stub transport: what is checked is the capture, not
// DynamoDB (DynamoDB's own units come from DynamoDB Local in the `partitions` workload).
const answered: Array<{ operation: string; input: Record<string, unknown> }> = []
const stubClients = () =>
  makeClients("http://127.0.0.1:1", {
    maxAttempts: 1,
    requestHandler: handler((operation, input) => {
      answered.push({ operation, input })
      if (operation === "DeleteItem") throw Object.assign(new Error("unreachable"), { name: "TimeoutError" })
      if (operation === "PutItem") return { ConsumedCapacity: { TableName: "events", CapacityUnits: 1 } }
      return { ConsumedCapacity: [{ TableName: "events", CapacityUnits: 8 }] }
    })!
  })

const item = (pk: string, key: string, bytes: number) => ({
  pk: { S: pk },
  sk: { B: SortKey.encode(key, 1) },
  val: { B: new Uint8Array(bytes) }
})

describe("Trace.record", () => {
  it("records each request's touches with the units DynamoDB reported, asking for them", async () => {
    const clients = stubClients()
    const trace = Trace.make()
    Trace.record(clients.dynamodb, trace)
    const before = Trace.mark(trace)
    await clients.dynamodb.send(new PutItemCommand({ TableName: "events", Item: item("ns", "/nodes/a", 10) }))
    await clients.dynamodb.send(
      new TransactWriteItemsCommand({
        TransactItems: [
          { Put: { TableName: "events", Item: item("ns\u0000history", "/nodes/a", 1500) } },
          { Delete: { TableName: "events", Key: { pk: { S: "ns" }, sk: { B: SortKey.encode("/nodes/a", 1) } } } }
        ]
      })
    )
    expect(answered.map((a) => a.input["ReturnConsumedCapacity"])).toEqual(["TOTAL", "TOTAL"])
    const { requests, failures } = Trace.since(trace, before)
    expect(failures).toEqual([])
    expect(requests.map((r) => r.operation)).toEqual(["PutItem", "TransactWriteItems"])
    expect(requests[0]!.touches).toEqual([
      { table: "events", pk: "ns", key: { _tag: "Key", key: "/nodes/a" }, kind: "write", units: 1, consistent: false }
    ])
    // The 1.5 KB put costs 4 transactional units; the delete takes the other 4 of the 8 reported.
    expect(requests[1]!.touches.map((t) => [t.pk, t.units])).toEqual([["ns\u0000history", 4], ["ns", 4]])
    expect(requests[1]!.at).toBeGreaterThanOrEqual(requests[0]!.at)
    expect(Trace.since(trace, Trace.mark(trace)).requests).toEqual([])
  })

  it("counts a request that failed apart, with its operation and error, and traces nothing of it", async () => {
    const clients = stubClients()
    const trace = Trace.make()
    Trace.record(clients.dynamodb, trace)
    await expect(
      clients.dynamodb.send(new DeleteItemCommand({ TableName: "events", Key: { pk: { S: "ns" }, sk: { S: "x" } } }))
    ).rejects.toThrow("unreachable")
    expect(trace.requests).toEqual([])
    expect(trace.failures.map((f) => [f.operation, f.error])).toEqual([["DeleteItem", "TimeoutError"]])
  })
})
