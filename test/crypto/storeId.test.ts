/**
 * Values are bound to the store's name (the table name unless `store_id` says
 * otherwise): a table restored from a backup under a new name holds values
 * bound to the old one, which decrypt once the store is told its old id, and
 * not before.
 */
import { PutItemCommand, ScanCommand } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { freshTableName, makeClient, openStore, provisionTable } from "../support/TestStore.ts"

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (value: Uint8Array) => new TextDecoder().decode(value)

describe("store id", () => {
  it.live(
    "a store copied into a table of another name decrypts only under its original store id",
    () =>
      Effect.gen(function*() {
        const client = makeClient()
        yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
        const original = yield* provisionTable(client, freshTableName("store-id-original"))
        const store = yield* openStore(original, { client })
        yield* store.put({ key: "/restored/a", value: bytes("first") })
        yield* store.put({ key: "/restored/a", value: bytes("second") })

        // "Restore the backup": every item, byte for byte, into a table of another name.
        const restored = yield* provisionTable(client, freshTableName("store-id-restored"))
        const { Items } = yield* Effect.promise(() => client.send(new ScanCommand({ TableName: original.table })))
        for (const item of Items ?? []) {
          yield* Effect.promise(() => client.send(new PutItemCommand({ TableName: restored.table, Item: item })))
        }

        const unbound = yield* openStore(restored, { client })
        const refused = yield* Effect.flip(unbound.get("/restored/a"))
        expect(refused._tag).toBe("DecryptionFailed")

        const rebound = yield* openStore({ ...restored, storeId: original.table }, { client })
        expect(text((yield* rebound.get("/restored/a")).value)).toBe("second")
        const past = [...(yield* Stream.runCollect(rebound.history("/restored/a")))]
        expect(past.map((event) => event.value && text(event.value))).toEqual(["first", "second"])
        // New writes there are bound to the same id, so the store stays one.
        yield* rebound.put({ key: "/restored/b", value: bytes("written after the restore") })
        expect(text((yield* rebound.get("/restored/b")).value)).toBe("written after the restore")
      }),
    30_000
  )
})
