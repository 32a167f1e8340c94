/**
 * A stub transport: an SDK `requestHandler` that answers each DynamoDB request with canned JSON on the next turn of
 * the event loop, so no server (and no network) is involved and what a phase costs in CPU is the client's alone: the
 * store, the SDK's serialization, signing and parsing. Only for measuring the client; nothing here claims DynamoDB
 * behaviour.
 */
import type { AttributeValue, DynamoDBClientConfig } from "@aws-sdk/client-dynamodb"

/** An item in DynamoDB's JSON wire form (binary values in base64). */
export type WireItem = Record<string, unknown>

/** Answers a request: its operation (`PutItem`, `Query`, …) and its parsed JSON input, to a JSON output. */
export type Answer = (operation: string, input: Record<string, unknown>) => unknown

/** An SDK item in wire form, as a response body carries it. */
export const toWire = (item: Record<string, AttributeValue>): WireItem => {
  const value = (attribute: AttributeValue): unknown => {
    if (attribute.B !== undefined) return { B: Buffer.from(attribute.B).toString("base64") }
    if (attribute.M !== undefined) return { M: toWire(attribute.M) }
    if (attribute.L !== undefined) return { L: attribute.L.map(value) }
    if (attribute.BS !== undefined) return { BS: attribute.BS.map((b) => Buffer.from(b).toString("base64")) }
    return attribute
  }
  return Object.fromEntries(Object.entries(item).map(([name, attribute]) => [name, value(attribute)]))
}

/**
 * A later turn of the event loop, where a socket's reply would arrive. Answered within the same turn, a phase of
 * thousands of requests is one unbroken chain of microtasks: timers never fire (a store's layout lease lapsed
 * unrenewed) and V8's foreground tasks never run (freed memory stayed resident, 0.4 GiB after 100k puts).
 */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * Time the stub spent on its own work (reading the request, building the reply), in µs: the work a server would
 * do, which a client's CPU figure leaves out. Read before and after a phase.
 */
export interface Meter {
  micros: number
}

/**
 * The SDK's `requestHandler` option answering every request with `answer`, on a later turn of the event loop,
 * adding the time its own work took to `meter`.
 */
export const handler = (answer: Answer, meter: Meter = { micros: 0 }): DynamoDBClientConfig["requestHandler"] => {
  const stub = {
    metadata: { handlerProtocol: "stub" },
    handle: async (request: { headers: Record<string, string>; body?: unknown }) => {
      await nextTurn()
      const started = performance.now()
      const target = request.headers["x-amz-target"] ?? ""
      const operation = target.slice(target.indexOf(".") + 1)
      const text = request.body instanceof Uint8Array
        ? Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength).toString("utf8")
        : typeof request.body === "string"
        ? request.body
        : "{}"
      const input = JSON.parse(text === "" ? "{}" : text) as Record<string, unknown>
      const body = Buffer.from(JSON.stringify(answer(operation, input) ?? {}))
      meter.micros += (performance.now() - started) * 1000
      return {
        response: {
          statusCode: 200,
          reason: "OK",
          headers: { "content-type": "application/x-amz-json-1.0", "content-length": String(body.length) },
          body
        }
      }
    },
    updateHttpClientConfig: () => {},
    httpHandlerConfigs: () => ({}),
    destroy: () => {}
  }
  return stub as unknown as DynamoDBClientConfig["requestHandler"]
}

/** An empty table: every read finds nothing, every write succeeds. */
export const emptyTable: Answer = (operation) => operation === "Query" ? { Items: [], Count: 0, ScannedCount: 0 } : {}
