/**
 * What opening a store may set up (`StoreLive.OpenOptions`): a reader that may not create the table fails with
 * `TableMissing` and creates nothing; a missing key file is created only when allowed and only for a store without
 * data keys, never beside data encrypted under another key.
 */
import { DescribeTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import { Store } from "../../src/programs/store/Store.ts"
import { endpoint, freshTableName, streamsConfig } from "../support/TestStore.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-open-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const configFor = (table: string, keyFile: string) =>
  StoreConfig.load({
    env: { DYNASTATE_ENDPOINT: endpoint(), DYNASTATE_TABLE_NAME: table, DYNASTATE_KEYRING_FILE: keyFile }
  })

const tableExists = (table: string) =>
  Effect.promise(() =>
    new DynamoDBClient(streamsConfig()).send(new DescribeTableCommand({ TableName: table })).then(
      () => true,
      () => false
    )
  )

const put = Store.use((store) => store.put({ key: "/open/k", value: new TextEncoder().encode("v") }))

describe("StoreLive open options", () => {
  it.live("createTable: false fails with TableMissing naming provision, and creates neither table nor key", () =>
    Effect.gen(function*() {
      const table = freshTableName("open")
      const keyFile = path.join(dir, "reader.key")
      const config = yield* configFor(table, keyFile)
      const error = yield* Effect.flip(
        Layer.build(StoreLive.layer(config, undefined, { createTable: false, createKey: false }))
      ).pipe(Effect.scoped)
      expect(error._tag).toBe("TableMissing")
      expect(error.message).toContain("dynastate provision")
      expect(yield* tableExists(table)).toBe(false)
      expect(fs.existsSync(keyFile)).toBe(false)
    }))

  it.live("createKey: false fails with KeyFileMissing naming init; allowed, the first key is created", () =>
    Effect.gen(function*() {
      const table = freshTableName("open")
      const keyFile = path.join(dir, "first.key")
      const config = yield* configFor(table, keyFile)
      const refused = yield* Effect.flip(Layer.build(StoreLive.layer(config, undefined, { createKey: false }))).pipe(
        Effect.scoped
      )
      expect(refused._tag).toBe("KeyFileMissing")
      expect(refused.message).toContain("dynastate init")
      expect(fs.existsSync(keyFile)).toBe(false)

      yield* put.pipe(Effect.provide(StoreLive.layer(config)))
      expect(fs.existsSync(keyFile)).toBe(true)
    }))

  it.live("a missing key file is never created beside data encrypted under another key", () =>
    Effect.gen(function*() {
      const table = freshTableName("open")
      const config = yield* configFor(table, path.join(dir, "original.key"))
      yield* put.pipe(Effect.provide(StoreLive.layer(config)))

      const lost = path.join(dir, "moved-away.key")
      const error = yield* Effect.flip(
        Layer.build(StoreLive.layer(yield* configFor(table, lost)))
      ).pipe(Effect.scoped)
      expect(error._tag).toBe("KeyFileMissing")
      expect(error.message).toContain("already holds data encrypted under another key")
      expect(fs.existsSync(lost)).toBe(false)
    }))
})
