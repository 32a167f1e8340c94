/**
 * DynamoDB helpers of the store contract tests: a table per test file and raw
 * (SDK-level) views of the table to check what the store really wrote. The
 * byte and key helpers are the suite's (./suite/Backend.ts), re-exported.
 */
import { ScanCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { afterAll, beforeAll } from "@effect/vitest"
import { Effect } from "effect"
import type { Scope } from "effect"
import { Attr } from "../../../src/infra/EventRecord.ts"
import type { Store } from "../../../src/programs/store/Store.ts"
import type { WriteAcks } from "../../../src/programs/store/WriteAcks.ts"
import { rawKeyItems } from "../../support/RawTable.ts"
import { freshTableName, makeClient, openStore, openStoreWithAcks, provisionTable } from "../../support/TestStore.ts"
import type { OpenStoreOptions, TestTable } from "../../support/TestStore.ts"

export { bytes, patterned, sameBytes, text, uniquePrefix } from "./suite/Backend.ts"

/** A raw DynamoDB item. */
export type RawItem = Record<string, AttributeValue>

/** The table of a test file: provisioned before the first test, its client destroyed after the last. */
export interface FileTable {
  readonly client: DynamoDBClient
  readonly location: TestTable
  /** A store instance (own actor system) on the table, closed with the scope. */
  readonly open: (options?: OpenStoreOptions) => Effect.Effect<Store["Service"], never, Scope.Scope>
  /** {@link open} with the instance's write acknowledgements. */
  readonly openWithAcks: () => Effect.Effect<
    { readonly store: Store["Service"]; readonly acks: WriteAcks["Service"] },
    never,
    Scope.Scope
  >
}

/** Registers hooks that provision a fresh table for the calling test file. */
export const useTable = (label: string): FileTable => {
  let client: DynamoDBClient | undefined
  let location: TestTable | undefined
  const clients: Array<DynamoDBClient> = []
  beforeAll(async () => {
    client = makeClient()
    location = await Effect.runPromise(provisionTable(client, freshTableName(label)))
  })
  afterAll(() => {
    client?.destroy()
    for (const extra of clients) extra.destroy()
  })
  const table: FileTable = {
    get client() {
      if (client === undefined) throw new Error("table not provisioned yet")
      return client
    },
    get location() {
      if (location === undefined) throw new Error("table not provisioned yet")
      return location
    },
    open: (options = {}) => {
      const own = options.client ?? makeClient()
      if (options.client === undefined) clients.push(own)
      return openStore(table.location, { ...options, client: own })
    },
    openWithAcks: () => {
      const own = makeClient()
      clients.push(own)
      return openStoreWithAcks(table.location, { client: own })
    }
  }
  return table
}

/** A client that records the name of every command it sends, to see what I/O an operation did. */
export const recordingClient = (): { readonly client: DynamoDBClient; readonly calls: Array<string> } => {
  const client = makeClient()
  const calls: Array<string> = []
  client.middlewareStack.add(
    (next, context) => (args) => {
      calls.push(context.commandName ?? "unknown")
      return next(args)
    },
    { step: "initialize", name: "recordCalls" }
  )
  return { client, calls }
}

/** Every item of a table, read raw with a consistent, paginated Scan. */
export const scanAll = (client: DynamoDBClient, table: string): Effect.Effect<Array<RawItem>> =>
  Effect.promise(async () => {
    const items: Array<RawItem> = []
    let start: RawItem | undefined
    do {
      const page = await client.send(
        new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey: start })
      )
      items.push(...(page.Items ?? []))
      start = page.LastEvaluatedKey
    } while (start !== undefined)
    return items
  })

/** Every raw event item of one key, newest first. */
export const rawEvents = (client: DynamoDBClient, location: TestTable, key: string): Effect.Effect<Array<RawItem>> =>
  Effect.promise(() => rawKeyItems(client, location, key))

/** The ops of a key's raw events, oldest first. */
export const opsOf = (client: DynamoDBClient, location: TestTable, key: string): Effect.Effect<Array<string>> =>
  Effect.map(rawEvents(client, location, key), (items) => items.map((item) => item[Attr.op]?.S ?? "?").reverse())

/** How many `expire` events a key has in the raw table. */
export const expireCount = (client: DynamoDBClient, location: TestTable, key: string): Effect.Effect<number> =>
  Effect.map(opsOf(client, location, key), (ops) => ops.filter((op) => op === "expire").length)

const attributeText = (value: AttributeValue): string => {
  if (value.S !== undefined) return `S:${value.S}`
  if (value.N !== undefined) return `N:${value.N}`
  if (value.B !== undefined) return `B:${Buffer.from(value.B).toString("hex")}`
  return JSON.stringify(value)
}

/** A canonical text of a whole table, to compare before and after an operation. */
export const snapshot = (client: DynamoDBClient, table: string): Effect.Effect<string> =>
  Effect.map(scanAll(client, table), (items) =>
    items
      .map((item) =>
        Object.keys(item)
          .sort()
          .map((name) => `${name}=${attributeText(item[name]!)}`)
          .join(",")
      )
      .sort()
      .join("\n"))

/** Every item of a table that holds the bytes of one of `secrets` anywhere (keys, attributes, binaries). */
export const itemsHolding = (
  client: DynamoDBClient,
  table: string,
  secrets: ReadonlyArray<string>
): Effect.Effect<Array<RawItem>> =>
  Effect.map(scanAll(client, table), (items) =>
    items.filter((item) => {
      const raw = Object.values(item).map((value) =>
        value.B !== undefined ? Buffer.from(value.B).toString("latin1") : JSON.stringify(value)
      ).join("|")
      return secrets.some((secret) => raw.includes(secret))
    }))
