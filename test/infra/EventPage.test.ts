/**
 * `EventPage.decodeAll` decodes a page of event items exactly as `EventRecord.decode` decodes each, one after the
 * other, and `EventPage.decodeOne` one item as it does: the same events, or the same (first) failure, whether a data key is at hand or has to be loaded, for values,
 * tombstones and edited items alike.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted } from "effect"
import fc from "fast-check"
import { randomBytes } from "node:crypto"
import type { Event } from "../../src/domain/Event.ts"
import { DataKeyNotFound, DataKeys } from "../../src/infra/crypto/DataKeys.ts"
import type { DataKey } from "../../src/infra/crypto/DataKeys.ts"
import type { AttributeMap } from "../../src/infra/Dynamo.ts"
import * as EventPage from "../../src/infra/EventPage.ts"
import * as EventRecord from "../../src/infra/EventRecord.ts"
import type { StoredItem } from "../../src/infra/EventRecord.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261125), numRuns: Number(process.env.FC_RUNS ?? 100) }
const location = { table: "events", namespace: "page" }
const keys: ReadonlyArray<DataKey> = ["dk-a", "dk-b"].map((id) => ({
  id,
  material: Redacted.make(new Uint8Array(randomBytes(32)))
}))

/**
 * Data keys over fixed keys; only `atHand` ones are `cached` (the others load through `forDecryption`), and the
 * ids asked for are recorded. `withCached: false` leaves `cached` out, as services without it do.
 */
const dataKeys = (atHand: ReadonlySet<string>, options: { readonly withCached: boolean } = { withCached: true }) => {
  const loaded: Array<string> = []
  const byId = new Map(keys.map((key) => [key.id, key] as const))
  let encryptWith = keys[0]!
  const service = DataKeys.of({
    scopeOf: () => "",
    forEncryption: () => Effect.sync(() => encryptWith),
    forDecryption: (id) =>
      Effect.suspend(() => {
        loaded.push(id)
        const key = byId.get(id)
        return key === undefined ? Effect.fail(new DataKeyNotFound({ dataKey: id })) : Effect.succeed(key)
      }),
    ...(options.withCached ? { cached: (id: string) => (atHand.has(id) ? byId.get(id) : undefined) } : {}),
    rewrap: () => Effect.die("not used"),
    named: () => Effect.die("not used"),
    shred: () => Effect.die("not used")
  })
  return { loaded, layer: Layer.succeed(DataKeys, service), useKey: (key: DataKey) => (encryptWith = key) }
}

/** How an item of a generated page is written. */
interface Written {
  readonly op: "put" | "delete" | "expire"
  readonly key: number
  readonly value: Uint8Array
  readonly dataKey: 0 | 1
  /** How the stored item is edited after it was written, if at all. */
  readonly edit: "none" | "value byte" | "revision" | "unknown data key" | "no value" | "seq"
}

const writtenArb: fc.Arbitrary<Written> = fc.record({
  op: fc.constantFrom("put" as const, "put" as const, "delete" as const, "expire" as const),
  key: fc.integer({ min: 0, max: 20 }),
  value: fc.uint8Array({ minLength: 0, maxLength: 64 }),
  dataKey: fc.constantFrom(0 as const, 1 as const),
  edit: fc.oneof(
    { weight: 12, arbitrary: fc.constant("none" as const) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "value byte" as const,
        "revision" as const,
        "unknown data key" as const,
        "no value" as const,
        "seq" as const
      )
    }
  )
})

const edited = (item: AttributeMap, edit: Written["edit"]): AttributeMap => {
  const { Attr } = EventRecord
  const value = item[Attr.value]?.B
  switch (edit) {
    case "none":
      return item
    case "value byte": {
      const bytes = new Uint8Array(value!)
      bytes[bytes.length - 1]! ^= 1
      return { ...item, [Attr.value]: { B: bytes } }
    }
    case "revision":
      return { ...item, [Attr.revision]: { S: "another-event" } }
    case "unknown data key": {
      // The key id's last byte changed: a data key nobody has.
      const bytes = new Uint8Array(value!)
      bytes[1 + bytes[1]!]! ^= 1
      return { ...item, [Attr.value]: { B: bytes } }
    }
    case "no value": {
      const { [Attr.value]: _, ...rest } = item
      return rest
    }
    case "seq":
      return { ...item, [Attr.seq]: { N: "999" } }
  }
}

/** The stored items of a page of written events, each encrypted under its data key, then edited. */
const pageOf = (written: ReadonlyArray<Written>) =>
  Effect.gen(function*() {
    const writer = dataKeys(new Set())
    const items: Array<StoredItem> = []
    for (const [index, each] of written.entries()) {
      writer.useKey(keys[each.dataKey]!)
      const event: Event = {
        key: `/page/${String(each.key).padStart(3, "0")}`,
        seq: index + 1,
        revision: `rev-${index}`,
        op: each.op,
        timestamp: 1_700_000_000_000 + index,
        expires: undefined,
        valueRevision: undefined,
        value: each.op === "put" ? each.value : undefined
      }
      const item = yield* EventRecord.encode(location, event).pipe(Effect.provide(writer.layer))
      items.push(edited(item, each.edit))
    }
    return items
  })

/** What decoding each item one after the other gives. */
const oneByOne = (items: ReadonlyArray<StoredItem>) =>
  Effect.forEach(items, (item) => EventRecord.decode(location, item))

describe("EventPage.decodeAll", () => {
  it.effect("gives what decoding each item in turn gives: the same events or the same first failure", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(writtenArb, { minLength: 1, maxLength: 30 }),
          fc.subarray(["dk-a", "dk-b"]),
          fc.boolean(),
          async (written, atHand, withCached) => {
            const items = await Effect.runPromise(pageOf(written))
            const expected = await Effect.runPromise(
              Effect.exit(oneByOne(items)).pipe(Effect.provide(dataKeys(new Set(atHand), { withCached }).layer))
            )
            const actual = await Effect.runPromise(
              Effect.exit(EventPage.decodeAll(location, items)).pipe(
                Effect.provide(dataKeys(new Set(atHand), { withCached }).layer)
              )
            )
            expect(actual).toStrictEqual(expected)
          }
        ),
        params
      )
    ))

  it.effect("decodeOne gives what EventRecord.decode gives for each item: the same event or the same failure", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(writtenArb, { minLength: 1, maxLength: 10 }),
          fc.subarray(["dk-a", "dk-b"]),
          fc.boolean(),
          async (written, atHand, withCached) => {
            const items = await Effect.runPromise(pageOf(written))
            const each = (decode: (item: StoredItem) => Effect.Effect<Event, unknown, DataKeys>) =>
              Effect.runPromise(
                Effect.forEach(items, (item) => Effect.exit(decode(item))).pipe(
                  Effect.provide(dataKeys(new Set(atHand), { withCached }).layer)
                )
              )
            expect(await each((item) => EventPage.decodeOne(location, item))).toStrictEqual(
              await each((item) => EventRecord.decode(location, item))
            )
          }
        ),
        params
      )
    ))

  it.effect("decrypts a page under data keys at hand without loading any; others are loaded", () =>
    Effect.gen(function*() {
      const items = yield* pageOf(
        Array.from({ length: 10 }, (_, i): Written => ({
          op: i % 4 === 3 ? "delete" : "put",
          key: i,
          value: new Uint8Array([i]),
          dataKey: i < 5 ? 0 : 1,
          edit: "none"
        }))
      )
      const keysAtHand = dataKeys(new Set(["dk-a"]))
      const events = yield* EventPage.decodeAll(location, items).pipe(Effect.provide(keysAtHand.layer))
      expect(events.map((event) => event.key)).toEqual(items.map((_, i) => `/page/${String(i).padStart(3, "0")}`))
      expect(events.map((event) => event.value?.[0])).toEqual([0, 1, 2, undefined, 4, 5, 6, undefined, 8, 9])
      // Only the items under the key not at hand went through `forDecryption`.
      expect(keysAtHand.loaded).toEqual(["dk-b", "dk-b", "dk-b", "dk-b", "dk-b"])
    }))

  it.effect("fails with the first failing item's error, as one by one", () =>
    Effect.gen(function*() {
      const written = (edit: Written["edit"], key: number): Written => ({
        op: "put",
        key,
        value: new Uint8Array([key]),
        dataKey: 0,
        edit
      })
      const items = yield* pageOf([written("none", 0), written("value byte", 1), written("revision", 2)])
      const exit = yield* Effect.exit(EventPage.decodeAll(location, items)).pipe(
        Effect.provide(dataKeys(new Set(["dk-a"])).layer)
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const error = yield* Effect.flip(EventPage.decodeAll(location, items)).pipe(
        Effect.provide(dataKeys(new Set(["dk-a"])).layer)
      )
      expect(error).toMatchObject({ _tag: "DecryptionFailed", key: "/page/001", seq: 2 })
    }))
})
