/**
 * `import-teleport` against DynamoDB Local: a table shaped as Teleport's DynamoDB backend makes it (HashKey,
 * FullPath, binary Value, Expires in epoch seconds, Revision) is imported into a store page by page; expired
 * items are skipped, bad ones reported, everything else reads back through the store with its expiry; an import
 * that stopped resumes after its last page without writing anything twice.
 */
import { PutItemCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Data, Effect, Stream } from "effect"
import * as ImportTeleport from "../../src/programs/ops/ImportTeleport.ts"
import { Store } from "../../src/programs/store/Store.ts"
import { freshTableName, makeClient, openStore, provisionTable } from "../support/TestStore.ts"
import { createTeleportTable, opsLayer } from "./support.ts"

const client = makeClient()
afterAll(() => client.destroy())
const bytes = (text: string) => new TextEncoder().encode(text)

class Stop extends Data.TaggedError("Stop")<{ readonly page: number }> {}

const teleportTable = (table: string) => Effect.promise(() => createTeleportTable(client, table))

const putTeleport = (table: string, fullPath: string, fields: Record<string, AttributeValue>) =>
  Effect.promise(() =>
    client.send(
      new PutItemCommand({
        TableName: table,
        Item: {
          HashKey: { S: "teleport" },
          FullPath: { S: fullPath },
          Timestamp: { N: String(Math.floor(Date.now() / 1000)) },
          Revision: { S: `rev-${fullPath}` },
          ...fields
        }
      })
    )
  )

describe("ImportTeleport", () => {
  it.live(
    "imports live items with their expiry, skips expired and bad ones, and resumes without doubling",
    () =>
      Effect.gen(function*() {
        const source = freshTableName("teleport-source")
        yield* teleportTable(source)
        const inAnHour = Math.floor(Date.now() / 1000) + 3600
        const binary = new Uint8Array([0, 1, 2, 250, 255])
        yield* putTeleport(source, "teleport/a/1", { Value: { B: bytes("one") } })
        yield* putTeleport(source, "teleport/a/2", { Value: { B: bytes("two") }, Expires: { N: String(inAnHour) } })
        yield* putTeleport(source, "teleport/a/3", { Value: { B: bytes("gone") }, Expires: { N: "1000000000" } })
        yield* putTeleport(source, "teleport/b/bin", { Value: { B: binary } })
        yield* putTeleport(source, "teleport/c/novalue", {})
        yield* putTeleport(source, "teleport/many/00", { Value: { B: bytes("m0") } })
        for (let i = 1; i < 8; i++) yield* putTeleport(source, `teleport/many/0${i}`, { Value: { B: bytes(`m${i}`) } })
        // Another partition (not Teleport's) is not read at all.
        yield* Effect.promise(() =>
          client.send(
            new PutItemCommand({
              TableName: source,
              Item: { HashKey: { S: "other" }, FullPath: { S: "other/x" }, Value: { B: bytes("x") } }
            })
          )
        )

        const location = yield* provisionTable(client, freshTableName("teleport-target"))
        const store = yield* openStore(location, { client })
        const withStore = Effect.provideService(Store, store)

        // The first run stops after its second page (as a killed process would).
        const seen: Array<ImportTeleport.ImportProgress> = []
        const stopped = yield* Effect.flip(
          ImportTeleport.importTeleport({
            source,
            pageSize: 3,
            progress: (progress) => {
              seen.push(progress)
              return seen.length === 2 ? Effect.fail(new Stop({ page: 2 })) : Effect.void
            }
          }).pipe(withStore)
        )
        expect(stopped._tag).toBe("Stop")
        expect(seen.map((progress) => progress.last)).toEqual(["teleport/a/3", "teleport/many/00"])
        expect(ImportTeleport.renderProgress(seen[1]!)).toContain("at teleport/many/00")

        // Resumed after the last page reported, then run once more from the start: nothing is written twice.
        const resumed = yield* ImportTeleport.importTeleport({ source, pageSize: 3, after: seen[0]!.last }).pipe(
          withStore
        )
        expect(resumed).toMatchObject({ scanned: 10, imported: 7, unchanged: 2, expired: 0, skipped: 1 })
        expect(resumed.skippedItems).toEqual([{ fullPath: "teleport/c/novalue", reason: "no binary Value" }])
        expect(resumed.last).toBe("teleport/many/07")
        const again = yield* ImportTeleport.importTeleport({ source }).pipe(withStore)
        expect(again).toMatchObject({ scanned: 13, imported: 0, unchanged: 11, expired: 1, skipped: 1 })
        expect(ImportTeleport.render(again)).toContain("imported 0 of 13 items")

        const text = (value: Uint8Array) => new TextDecoder().decode(value)
        expect(text((yield* store.get("/a/1")).value)).toBe("one")
        const two = yield* store.get("/a/2")
        expect([text(two.value), two.expires]).toEqual(["two", inAnHour * 1000])
        expect((yield* Effect.flip(store.get("/a/3")))._tag).toBe("NotFound")
        expect([...(yield* store.get("/b/bin")).value]).toEqual([...binary])
        const many = yield* store.getRange("/many/", "/many/~")
        expect(many.map((item) => text(item.value))).toEqual(["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"])
        for (const item of many) expect((yield* Stream.runCollect(store.history(item.key))).length).toBe(1)
        expect((yield* Effect.flip(store.get("/x")))._tag).toBe("NotFound")

        // A changed value in the source is imported again as a new event.
        yield* putTeleport(source, "teleport/a/1", { Value: { B: bytes("uno") } })
        const changed = yield* ImportTeleport.importTeleport({ source }).pipe(withStore)
        expect(changed.imported).toBe(1)
        expect(text((yield* store.get("/a/1")).value)).toBe("uno")
        expect((yield* Stream.runCollect(store.history("/a/1"))).length).toBe(2)
      }).pipe(Effect.scoped, Effect.provide(opsLayer(client))),
    120_000
  )

  it("keys are the paths without Teleport's prefix", () => {
    expect(ImportTeleport.keyOf("teleport/nodes/n1", "teleport")).toBe("/nodes/n1")
    expect(ImportTeleport.keyOf("/nodes/n1", "")).toBe("/nodes/n1")
    expect(ImportTeleport.keyOf("other/n1", "teleport")).toEqual({
      problem: "FullPath does not start with the key prefix \"teleport\""
    })
  })
})
