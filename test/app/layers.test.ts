/**
 * The layers an application composes: the whole store from Effect's `Config`, from the YAML file and
 * `DYNASTATE_*` variables, and over SDK clients of the application's own (left for the application to destroy).
 * Each is checked against DynamoDB Local by writing through one layer and reading through another.
 */
import { DescribeTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { DynamoDBStreamsClient } from "@aws-sdk/client-dynamodb-streams"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Option } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import * as WorkerLive from "../../src/programs/app/WorkerLive.ts"
import { Store } from "../../src/programs/store/Store.ts"
import { endpoint, freshTableName, streamsConfig } from "../support/TestStore.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-layers-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
const keyFile = path.join(dir, "keyring.key")
const bytes = (value: string) => new TextEncoder().encode(value)
const text = (value: Uint8Array) => new TextDecoder().decode(value)

/** The `storage` section every layer below is configured with: one table, one key file. */
const table = freshTableName("layers")
const storage = { endpoint: endpoint(), table_name: table, keyring_file: keyFile, namespace: "layers" }

const put = (key: string, value: string) => Store.use((store) => store.put({ key, value: bytes(value) }))
const get = (key: string) => Store.use((store) => Effect.map(store.get(key), (item) => text(item.value)))

describe("StoreLive layers", () => {
  it.live("layerConfig reads storage.* from the current ConfigProvider", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromUnknown({ storage })
      const layer = StoreLive.layerConfig().pipe(Layer.provide(ConfigProvider.layer(provider)))
      yield* put("/layers/config", "from Config").pipe(Effect.provide(layer))
      // Read back through another layer built from a loaded configuration: the same table and key file.
      const config = yield* StoreConfig.fromProvider(provider)
      expect(config.tableName).toBe(table)
      expect(yield* get("/layers/config").pipe(Effect.provide(StoreLive.layer(config)))).toBe("from Config")
    }))

  it.live("layerConfig fails with ConfigInvalid naming the field, and builds nothing", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromUnknown({ storage: { ...storage, billing_mode: "sometimes" } })
      const error = yield* Effect.flip(
        Layer.build(StoreLive.layerConfig().pipe(Layer.provide(ConfigProvider.layer(provider))))
      ).pipe(Effect.scoped)
      expect(error._tag).toBe("ConfigInvalid")
      if (error._tag === "ConfigInvalid") expect(error.field).toBe("storage.billing_mode")
    }))

  it.live("layerFile reads the YAML file and DYNASTATE_* variables, the variables winning", () =>
    Effect.gen(function*() {
      const file = path.join(dir, "dynastate.yaml")
      fs.writeFileSync(file, `storage:\n  table_name: not-this-one\n  namespace: layers\n  keyring_file: ${keyFile}\n`)
      const layer = StoreLive.layerFile({ file, env: { DYNASTATE_ENDPOINT: endpoint(), DYNASTATE_TABLE_NAME: table } })
      expect(yield* get("/layers/config").pipe(Effect.provide(layer))).toBe("from Config")
    }))

  it.live("layerClients uses the application's clients and leaves them open", () =>
    Effect.gen(function*() {
      const dynamodb = new DynamoDBClient(streamsConfig())
      const streams = new DynamoDBStreamsClient(streamsConfig())
      const sent: Array<string> = []
      dynamodb.middlewareStack.add(
        (next, context) => (args) => {
          sent.push(context.commandName ?? "?")
          return next(args)
        },
        { step: "initialize", name: "recordCommands" }
      )
      // No endpoint in the configuration: only the clients know where DynamoDB is.
      const config = yield* StoreConfig.fromProvider(
        ConfigProvider.fromUnknown({
          storage: { region: "us-east-1", table_name: table, keyring_file: keyFile, namespace: "layers" }
        })
      )
      yield* put("/layers/clients", "through your client").pipe(
        Effect.provide(StoreLive.layerClients(config, { dynamodb, streams }))
      )
      expect(sent).toContain("PutItemCommand")
      // The layer is released, the clients are still usable: they are the application's to destroy.
      // DescribeTable, not ListTables: a shared DynamoDB Local holds more tables than one ListTables page.
      const described = yield* Effect.promise(() => dynamodb.send(new DescribeTableCommand({ TableName: table })))
      expect(described.Table?.TableName).toBe(table)
      const reader = StoreLive.layer({ ...config, endpoint: Option.some(endpoint()) })
      expect(yield* get("/layers/clients").pipe(Effect.provide(reader))).toBe("through your client")
      dynamodb.destroy()
      streams.destroy()
    }))

  it.live("WorkerLive.layerConfig gives the store beside the worker", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromUnknown({ storage })
      const layer = WorkerLive.layerConfig().pipe(Layer.provide(ConfigProvider.layer(provider)))
      expect(yield* get("/layers/config").pipe(Effect.provide(layer))).toBe("from Config")
    }))
})
