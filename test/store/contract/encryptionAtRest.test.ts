/**
 * Contract of encryption at rest: no write path puts a value's plaintext in
 * any attribute of any item, and a ciphertext moved to another key (or an
 * edited attribute it is bound to) fails to decrypt, naming the key and seq.
 */
import { DeleteItemCommand, DescribeTableCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand
} from "@aws-sdk/client-dynamodb-streams"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Stream } from "effect"
import { randomBytes, randomUUID } from "node:crypto"
import { Action, Condition } from "../../../src/domain/AtomicWrite.ts"
import { DecryptionFailed } from "../../../src/domain/Errors.ts"
import * as Key from "../../../src/domain/Key.ts"
import * as SortKey from "../../../src/domain/SortKey.ts"
import { Attr } from "../../../src/infra/EventRecord.ts"
import * as ValueChunks from "../../../src/infra/ValueChunks.ts"
import { openCompaction, streamsConfig } from "../../support/TestStore.ts"
import { bytes, rawEvents, scanAll, text, uniquePrefix, useTable } from "./harness.ts"
import type { RawItem } from "./harness.ts"

const t = useTable("contract-encryption")

/** Every string and byte string inside an attribute value, however deeply nested. */
const leaves = (value: AttributeValue): Array<string | Uint8Array> => {
  if (value.S !== undefined) return [value.S]
  if (value.N !== undefined) return [value.N]
  if (value.B !== undefined) return [value.B]
  if (value.SS !== undefined) return [...value.SS]
  if (value.NS !== undefined) return [...value.NS]
  if (value.BS !== undefined) return [...value.BS]
  if (value.L !== undefined) return value.L.flatMap(leaves)
  if (value.M !== undefined) return Object.entries(value.M).flatMap(([name, inner]) => [name, ...leaves(inner)])
  return []
}

/** The places in an item where any of the needles occur (as UTF-8 bytes, in strings, and in bytes decoded as text). */
const findings = (item: RawItem, needles: ReadonlyArray<string>): Array<string> => {
  const found: Array<string> = []
  for (const [name, value] of Object.entries(item)) {
    for (const leaf of [name, ...leaves(value)]) {
      const raw = typeof leaf === "string" ? Buffer.from(leaf, "utf8") : Buffer.from(leaf)
      const asText = raw.toString("latin1")
      for (const needle of needles) {
        if (raw.includes(Buffer.from(needle, "utf8")) || asText.includes(needle)) {
          found.push(`${name} contains ${needle}`)
        }
      }
    }
  }
  return found
}

describe("values never reach the table in plaintext", () => {
  it.effect("through every write path, no attribute of any item holds the plaintext", () =>
    Effect.gen(function*() {
      const store = yield* t.open()
      const marker = `M4RK3R-${randomUUID()}`
      const p = uniquePrefix("paths")
      const value = (path: string) => bytes(`{"path":"${path}","secret":"${marker}"}`)
      const now = yield* Clock.currentTimeMillis

      const created = yield* store.create({ key: `${p}create`, value: value("create"), expires: now + 3_600_000 })
      yield* store.put({ key: `${p}put`, value: value("put") })
      yield* store.put({ key: `${p}update`, value: bytes("plain") })
      yield* store.update({ key: `${p}update`, value: value("update") })
      yield* store.put({ key: `${p}cas`, value: bytes("before") })
      yield* store.compareAndSwap({ key: `${p}cas`, value: bytes("before") }, { key: `${p}cas`, value: value("cas") })
      const conditional = yield* store.put({ key: `${p}conditional`, value: bytes("before") })
      yield* store.conditionalUpdate({
        key: `${p}conditional`,
        value: value("conditionalUpdate"),
        revision: conditional.revision
      })
      yield* store.keepAlive(created, now + 7_200_000) // re-encrypts the created value in a keep-alive event
      yield* store.atomicWrite([
        { key: `${p}atomic-a`, condition: Condition.notExists, action: Action.put(value("atomic-a")) },
        { key: `${p}atomic-b`, condition: Condition.whatever, action: Action.put(value("atomic-b"), now + 3_600_000) }
      ])
      // a big value made of nothing but the marker, and one that is the marker alone
      yield* store.put({ key: `${p}big`, value: bytes(marker.repeat(4_000)) })
      yield* store.put({ key: `${p}bare`, value: bytes(marker) })
      // values above what one item holds, stored in chunk items: written alone and in an atomic write
      yield* store.put({ key: `${p}chunked`, value: bytes(marker.repeat(20_000)) })
      yield* store.atomicWrite([
        { key: `${p}chunked-atomic`, condition: Condition.notExists, action: Action.put(value("x".repeat(900_000))) }
      ])

      // the store really holds the marker: every value reads back
      const items = yield* store.getRange(p, Key.rangeEnd(p))
      expect(items.map((item) => item.key)).toEqual(
        [
          "atomic-a",
          "atomic-b",
          "bare",
          "big",
          "cas",
          "chunked",
          "chunked-atomic",
          "conditional",
          "create",
          "put",
          "update"
        ].map((name) => p + name)
      )
      for (const item of items) expect(text(item.value)).toContain(marker)
      expect(yield* store.get(`${p}create`)).toMatchObject({ revision: created.revision, expires: now + 7_200_000 })

      const raw = yield* scanAll(t.client, t.location.table)
      const events = raw.filter((item) => item[Attr.partition]?.S === t.location.namespace)
      const withValues = events.filter((item) => item[Attr.value]?.B !== undefined)
      // put/keep-alive events of this test: 12 (each carries a ciphertext at least as long as its value)
      expect(withValues.length).toBeGreaterThanOrEqual(14)
      expect(withValues.some((item) => item[Attr.op]?.S === "keep-alive")).toBe(true)
      expect(Math.max(...withValues.map((item) => item[Attr.value]!.B!.length))).toBeGreaterThan(marker.length * 4_000)
      // the marker, its hex and base64 forms, and the whole JSON values appear nowhere, in no item at all
      const needles = [
        marker,
        Buffer.from(marker).toString("hex"),
        Buffer.from(marker).toString("base64").slice(0, 40),
        `"secret":"${marker}"`
      ]
      // the detector itself finds a marker hidden anywhere (positive control)
      expect(findings({ x: { L: [{ M: { y: { B: bytes(`..${marker}..`) } } }] } }, needles)).toEqual([
        "x contains " + marker
      ])
      expect(findings({ x: { S: Buffer.from(marker).toString("hex") } }, needles)).toHaveLength(1)
      const leaks = raw.flatMap((item) => findings(item, needles))
      expect(leaks).toEqual([])
      // the scan covered more than events: the wrapped data keys stored beside them were checked too, and the
      // chunk items of the large values (900 KB and more each: three chunks or more)
      expect(raw.filter((item) => item[Attr.partition]?.S !== t.location.namespace).length).toBeGreaterThan(0)
      const chunks = raw.filter((item) => item[Attr.partition]?.S === ValueChunks.chunkPartition(t.location))
      expect(chunks.length).toBeGreaterThanOrEqual(6)
    }))

  it.effect("the same value written twice is stored as two different ciphertexts", () =>
    Effect.gen(function*() {
      const store = yield* t.open()
      const p = uniquePrefix("fresh")
      const same = bytes("the same value")
      yield* store.put({ key: `${p}a`, value: same })
      yield* store.put({ key: `${p}a`, value: same })
      const [newer, older] = yield* rawEvents(t.client, t.location, `${p}a`)
      const a = Buffer.from(newer![Attr.value]!.B!)
      const b = Buffer.from(older![Attr.value]!.B!)
      expect(a.equals(b)).toBe(false)
      expect(a.includes(Buffer.from(same))).toBe(false)
    }))
})

const setAttribute = (item: RawItem, name: string, value: AttributeValue) =>
  Effect.promise(() =>
    t.client.send(
      new UpdateItemCommand({
        TableName: t.location.table,
        Key: { [Attr.partition]: item[Attr.partition]!, [Attr.sort]: item[Attr.sort]! },
        UpdateExpression: "SET #a = :v",
        ExpressionAttributeNames: { "#a": name },
        ExpressionAttributeValues: { ":v": value }
      })
    )
  )

const seqOf = (item: RawItem) => Number(item[Attr.seq]!.N)

describe("ciphertexts are bound to their place", () => {
  it.effect("a val swapped in from another key fails with DecryptionFailed naming the key and seq", () =>
    Effect.gen(function*() {
      const store = yield* t.open()
      const p = uniquePrefix("swap")
      const [alice, bob, carol] = [`${p}alice`, `${p}bob`, `${p}carol`]
      yield* store.put({ key: alice, value: bytes("alice v1") })
      yield* store.put({ key: alice, value: bytes("alice v2") })
      yield* store.put({ key: bob, value: bytes("bob v1") })
      yield* store.put({ key: carol, value: bytes("carol v1") })
      const [aliceLatest] = yield* rawEvents(t.client, t.location, alice)
      const [bobLatest] = yield* rawEvents(t.client, t.location, bob)
      yield* setAttribute(aliceLatest!, Attr.value, bobLatest![Attr.value]!)

      // a fresh instance, so no cached state can hide the edit
      const fresh = yield* t.open()
      const error = yield* Effect.flip(fresh.get(alice))
      expect(error).toBeInstanceOf(DecryptionFailed)
      expect(error).toMatchObject({ _tag: "DecryptionFailed", key: alice, seq: seqOf(aliceLatest!) })
      expect(seqOf(aliceLatest!)).toBe(2)
      expect(error.message).toContain(alice)
      expect(error.message).toContain("seq 2")
      // the range read meets the bad item too, and says which one
      const rangeError = yield* Effect.flip(fresh.getRange(p, Key.rangeEnd(p)))
      expect(rangeError).toMatchObject({ _tag: "DecryptionFailed", key: alice, seq: 2 })
      // the other keys are unaffected
      expect(text((yield* fresh.get(bob)).value)).toBe("bob v1")
      expect(text((yield* store.get(carol)).value)).toBe("carol v1")
    }))

  it.effect("a val moved from an older event of the same key fails with DecryptionFailed", () =>
    Effect.gen(function*() {
      const store = yield* t.open()
      const key = `${uniquePrefix("rollback")}k`
      yield* store.put({ key, value: bytes("old") })
      yield* store.put({ key, value: bytes("new") })
      const [latest, older] = yield* rawEvents(t.client, t.location, key)
      yield* setAttribute(latest!, Attr.value, older![Attr.value]!)
      const error = yield* Effect.flip((yield* t.open()).get(key))
      expect(error).toMatchObject({ _tag: "DecryptionFailed", key, seq: 2 })
    }))

  it.effect("editing the expiry or the seq attribute of an event fails with DecryptionFailed", () =>
    Effect.gen(function*() {
      const store = yield* t.open()
      const p = uniquePrefix("edit")
      const now = yield* Clock.currentTimeMillis
      yield* store.put({ key: `${p}exp`, value: bytes("short-lived"), expires: now + 60_000 })
      yield* store.put({ key: `${p}seq`, value: bytes("v") })
      const [expItem] = yield* rawEvents(t.client, t.location, `${p}exp`)
      yield* setAttribute(expItem!, Attr.expires, { N: String(now + 10 * 365 * 86_400_000) })
      const [seqItem] = yield* rawEvents(t.client, t.location, `${p}seq`)
      yield* setAttribute(seqItem!, Attr.seq, { N: "7" })
      const fresh = yield* t.open()
      expect(yield* Effect.flip(fresh.get(`${p}exp`))).toMatchObject({
        _tag: "DecryptionFailed",
        key: `${p}exp`,
        seq: 1
      })
      expect(yield* Effect.flip(fresh.get(`${p}seq`))).toMatchObject({
        _tag: "DecryptionFailed",
        key: `${p}seq`,
        seq: 1
      })
    }))

  it.effect("a large value's chunk swapped in from another value, a missing chunk or a dropped chunk count fail", () =>
    Effect.gen(function*() {
      const store = yield* t.open()
      const p = uniquePrefix("chunks")
      const large = (name: string) => randomBytes(500_000 + name.length) // two chunks each
      for (const name of ["a", "b", "c", "d"]) yield* store.put({ key: `${p}${name}`, value: large(name) })
      const raw = yield* scanAll(t.client, t.location.table)
      const chunkOf = (key: string, index: number) =>
        raw.find((item) =>
          item[Attr.partition]?.S === ValueChunks.chunkPartition(t.location) &&
          SortKey.decode(item[ValueChunks.ChunkAttr.event]!.B!).key === key &&
          item[ValueChunks.ChunkAttr.index]?.N === String(index)
        )!
      yield* setAttribute(chunkOf(`${p}a`, 0), Attr.value, chunkOf(`${p}b`, 0)[Attr.value]!)
      yield* Effect.promise(() =>
        t.client.send(
          new DeleteItemCommand({
            TableName: t.location.table,
            Key: {
              [Attr.partition]: chunkOf(`${p}c`, 1)[Attr.partition]!,
              [Attr.sort]: chunkOf(`${p}c`, 1)[Attr.sort]!
            }
          })
        )
      )
      const [event] = yield* rawEvents(t.client, t.location, `${p}d`)
      yield* Effect.promise(() =>
        t.client.send(
          new UpdateItemCommand({
            TableName: t.location.table,
            Key: { [Attr.partition]: event![Attr.partition]!, [Attr.sort]: event![Attr.sort]! },
            UpdateExpression: "REMOVE #ch",
            ExpressionAttributeNames: { "#ch": Attr.chunks }
          })
        )
      )
      const fresh = yield* t.open()
      for (const name of ["a", "c", "d"]) {
        const error = yield* Effect.flip(fresh.get(`${p}${name}`))
        expect(error, name).toBeInstanceOf(DecryptionFailed)
        expect(error, name).toMatchObject({ key: `${p}${name}`, seq: 1 })
      }
      expect(((yield* Effect.flip(fresh.get(`${p}c`))) as DecryptionFailed).reason).toContain("missing")
      expect((yield* fresh.get(`${p}b`)).value.length).toBe(500_001)
    }))
})

/** Every image and key of every record of the table's stream, from its oldest, as raw attribute maps. */
const streamImages = (table: string): Effect.Effect<Array<RawItem>> =>
  Effect.promise(async () => {
    const arn = (await t.client.send(new DescribeTableCommand({ TableName: table }))).Table?.LatestStreamArn
    if (arn === undefined) throw new Error("the test table has no stream")
    const streams = new DynamoDBStreamsClient(streamsConfig())
    const images: Array<RawItem> = []
    try {
      const shards = (await streams.send(new DescribeStreamCommand({ StreamArn: arn }))).StreamDescription?.Shards ?? []
      for (const shard of shards) {
        let iterator = (await streams.send(
          new GetShardIteratorCommand({ StreamArn: arn, ShardId: shard.ShardId!, ShardIteratorType: "TRIM_HORIZON" })
        )).ShardIterator
        // An open shard always answers with a next iterator: stop at the first empty page.
        while (iterator !== undefined) {
          const page = await streams.send(new GetRecordsCommand({ ShardIterator: iterator }))
          const records = page.Records ?? []
          for (const record of records) {
            const { Keys, NewImage, OldImage } = record.dynamodb ?? {}
            for (const image of [Keys, NewImage, OldImage]) if (image !== undefined) images.push(image as RawItem)
          }
          iterator = records.length === 0 ? undefined : page.NextShardIterator
        }
      }
    } finally {
      streams.destroy()
    }
    return images
  })

describe("sealed keys never reach the table, its history, graves or stream in clear", () => {
  it.effect("no item, history copy, grave or stream record holds a sealed key or its sealed segment", () =>
    Effect.gen(function*() {
      const sealed = [{ prefix: "/tokens/", seal: "rest" as const }, { prefix: "/users/", seal: "segment" as const }]
      const store = yield* t.open({ storeOptions: { sealed } })
      const token = `T0K3N${randomUUID().replaceAll("-", "")}`
      const email = `alice.${randomUUID().slice(0, 8)}@example.com`
      const tokenKey = `/tokens/${token}`
      const profile = `/users/${email}/profile`
      const session = `/users/${email}/sessions/s1`
      const now = yield* Clock.currentTimeMillis

      // Every write path: create, update, compare-and-swap, conditional update, keep-alive, atomic write, deletes.
      const created = yield* store.create({ key: tokenKey, value: bytes("join"), expires: now + 3_600_000 })
      yield* store.update({ key: tokenKey, value: bytes("join v2"), expires: now + 3_600_000 })
      yield* store.compareAndSwap({ key: tokenKey, value: bytes("join v2") }, { key: tokenKey, value: bytes("v3") })
      const current = yield* store.get(tokenKey)
      const updated = yield* store.conditionalUpdate({ ...current, value: bytes("v4") })
      yield* store.keepAlive(updated, now + 7_200_000)
      yield* store.atomicWrite([
        { key: profile, condition: Condition.notExists, action: Action.put(bytes("profile")) },
        { key: session, condition: Condition.whatever, action: Action.put(bytes("session")) }
      ])
      yield* store.delete(session)
      yield* store.put({ key: session, value: bytes("session again") })
      yield* store.conditionalDelete(session, (yield* store.get(session)).revision)
      expect(created.key).toBe(tokenKey)

      // Reads answer with the real keys: get, ranges over and into the sealed prefixes, history, getAt.
      expect(yield* store.get(tokenKey)).toMatchObject({ key: tokenKey, value: bytes("v4"), expires: now + 7_200_000 })
      expect((yield* store.getRange("/tokens/", Key.rangeEnd("/tokens/"))).map((item) => item.key)).toContain(tokenKey)
      expect((yield* store.getRange(`/users/${email}/`, Key.rangeEnd(`/users/${email}/`))).map((item) => item.key))
        .toEqual([profile])
      const history = yield* Stream.runCollect(store.history(tokenKey))
      expect(history.map((event) => [event.key, event.op])).toEqual([
        [tokenKey, "put"],
        [tokenKey, "put"],
        [tokenKey, "put"],
        [tokenKey, "put"],
        [tokenKey, "keep-alive"]
      ])
      expect(yield* store.getAt(tokenKey, { _tag: "Revision", revision: created.revision })).toMatchObject({
        key: tokenKey,
        value: bytes("join")
      })

      // Compaction moves superseded events into the history area and buries the session's tombstone in a grave.
      const compaction = yield* openCompaction(t.location, t.client)
      yield* compaction.all(() => Effect.void, { settleMillis: 0 })
      expect(yield* Stream.runCollect(store.history(tokenKey))).toHaveLength(5)

      const raw = yield* scanAll(t.client, t.location.table)
      const partitions = new Set(raw.map((item) => item[Attr.partition]?.S))
      expect(partitions.has(`${t.location.namespace}\u0000history`)).toBe(true)
      expect(partitions.has(`${t.location.namespace}\u0000graves`)).toBe(true)
      const images = yield* streamImages(t.location.table)
      expect(images.length).toBeGreaterThanOrEqual(10)

      // The secrets in any form: as written, hex, base64, and the sealed segment alone.
      const needles = [token, email, Buffer.from(token).toString("hex"), Buffer.from(email).toString("base64")]
      // Positive control: the secrets are found where they are.
      expect(findings({ k: { B: Key.toBytes(`${tokenKey}\u0000x`) } }, needles)).toEqual([`k contains ${token}`])
      expect(raw.flatMap((item) => findings(item, needles))).toEqual([])
      expect(images.flatMap((item) => findings(item, needles))).toEqual([])
      // Each sealed key's events still name it: by its sealed form, not in clear.
      const sealedKeys = raw.flatMap((item) => {
        const sortKey = item[Attr.sort]?.B
        return sortKey === undefined ? [] : [Buffer.from(sortKey).toString("latin1")]
      }).filter((text) => text.startsWith("/tokens/\u0001") || text.startsWith("/users/\u0001"))
      expect(sealedKeys.length).toBeGreaterThan(5)
    }))
})
