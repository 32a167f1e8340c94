/**
 * Large values: a value too large for one event item is stored in chunk items, each encrypted like any value and
 * bound to its event (key, seq, event id, …), its index and the chunk count; the event item carries, in place of
 * the value, an encrypted manifest (codec, lengths, SHA-256 of the value) bound as the manifest of that many chunks.
 *
 * Chunks live in a partition of their own, `<namespace>\0chunks`, under `0x01 ‖ SHA-256(event sort key ‖ event id) ‖
 * index` (a digest: the event's sort key alone can take DynamoDB's whole 1,024 bytes), beside a small *marker* per
 * event under `0x00 ‖ the same digest`, written before the chunks and deleted after them, which names the event:
 * the collection of orphans reads the markers, not the chunks' megabytes. Range reads, compaction and burial
 * query the live range, the history area and the graves, never this partition,
 * and an event moved to the history area keeps its sort key and event id, so it still finds its chunks. Chunks are
 * written before the event item, which is appended with its usual condition: until it lands nobody reads them, and
 * chunks whose event never landed (or was removed since) are collected by the worker (`ChunkCollector`).
 */
import { Effect, Result } from "effect"
import { createHash } from "node:crypto"
import { gunzipSync, gzipSync } from "node:zlib"
import { DecryptionFailed } from "../domain/Errors.ts"
import type { StorageFailure, Throttled, ValueTooLarge } from "../domain/Errors.ts"
import type { Event } from "../domain/Event.ts"
import * as SortKey from "../domain/SortKey.ts"
import type { DataKeys } from "./crypto/DataKeys.ts"
import type { KeyringError } from "./crypto/Keyring.ts"
import * as ValueCipher from "./crypto/ValueCipher.ts"
import type { AttributeMap } from "./Dynamo.ts"
import * as EventRecord from "./EventRecord.ts"
import type { DecodeError, Location } from "./EventRecord.ts"
import { areaPartition, keyArea } from "./PartitionKeys.ts"

/** The largest value the store takes, in bytes (16 MiB); a larger one is `ValueTooLarge` before any I/O. */
export const maxValueBytes = 16 * 1024 * 1024

/** Plaintext bytes per chunk: with the key, the ciphertext overhead and the attributes, well under 400 KB. */
export const chunkBytes = 384 * 1024

/** How values stored in chunks are compressed before encryption (`none` by default: see the README on lengths). */
export type Compression = "none" | "gzip"

/** Attribute names of a chunk item (the value one shares `val` with event items). */
export const ChunkAttr = {
  partition: EventRecord.Attr.partition,
  sort: EventRecord.Attr.sort,
  /** The sort key of the event the chunk belongs to. */
  event: "ek",
  revision: EventRecord.Attr.revision,
  index: "ix",
  /** The event's timestamp: how old the chunk is, for the collection of orphans. */
  timestamp: EventRecord.Attr.timestamp,
  value: EventRecord.Attr.value
} as const

/**
 * The partition holding the chunks of a namespace's default partition; each partition of a partitioned key space
 * has its own beside it (see `PartitionKeys`). NUL never occurs in a namespace.
 */
export const chunkPartition = (location: Location): string => areaPartition(location.namespace, "chunks")

/**
 * The largest value an event item holds whole under `key` at `location`; for a sealed key, `key` is its stored form
 * and `realKey` the key itself, which the item carries encrypted too (see `SealedKeys`).
 */
export const largestWholeValue = (location: Location, key: string, realKey?: string | undefined): number =>
  EventRecord.itemLimitBytes -
  (realKey === undefined
    ? EventRecord.maxItemBytes(location, key, 0)
    : EventRecord.maxItemBytes(location, realKey, 0, Buffer.byteLength(key, "utf8")))

/** Whether a value of this many bytes is stored in chunks rather than in its event item. */
export const isLarge = (location: Location, key: string, valueBytes: number, realKey?: string | undefined): boolean =>
  valueBytes > largestWholeValue(location, key, realKey)

type Owned = Pick<Event, "key" | "seq" | "revision">

/** A digest of an event's sort key and event id: what its marker and chunks are filed under. */
const digestOfOwner = (event: Owned): Buffer =>
  createHash("sha256").update(SortKey.encode(event.key, event.seq)).update(Buffer.from([0])).update(
    event.revision,
    "utf8"
  ).digest()

const markerTag = 0
const chunkTag = 1

/** The sort key of an event's marker. */
export const markerSortKey = (event: Owned): Uint8Array =>
  Buffer.concat([Buffer.from([markerTag]), digestOfOwner(event)])

/** The sort key of chunk `index` of an event. */
export const chunkSortKey = (event: Owned, index: number): Uint8Array => {
  const indexBytes = Buffer.alloc(2)
  indexBytes.writeUInt16BE(index)
  return Buffer.concat([Buffer.from([chunkTag]), digestOfOwner(event), indexBytes])
}

/** The inclusive sort-key bounds of one event's chunks (its marker left out). */
export const chunkRange = (event: Owned): { readonly lower: Uint8Array; readonly upper: Uint8Array } => ({
  lower: chunkSortKey(event, 0),
  upper: chunkSortKey(event, 0xffff)
})

/** The inclusive sort-key bounds of every marker of the partition. */
export const markerRange: { readonly lower: Uint8Array; readonly upper: Uint8Array } = {
  lower: Buffer.from([markerTag]),
  upper: Buffer.concat([Buffer.from([markerTag]), Buffer.alloc(32, 0xff)])
}

const chunkPart = (index: number, count: number) => `chunk ${index}/${count}`

const manifestVersion = 1
const codecs: ReadonlyArray<Compression> = ["none", "gzip"]
const digestBytes = 32
const manifestBytes = 1 + 1 + 4 + 4 + digestBytes

interface Manifest {
  readonly compression: Compression
  /** Bytes of the value. */
  readonly length: number
  /** Bytes stored across the chunks (the compressed value when compressed). */
  readonly stored: number
  readonly digest: Uint8Array
}

const digestOf = (value: Uint8Array): Buffer => createHash("sha256").update(value).digest()

const encodeManifest = (manifest: Manifest): Uint8Array => {
  const out = Buffer.alloc(manifestBytes)
  out[0] = manifestVersion
  out[1] = codecs.indexOf(manifest.compression)
  out.writeUInt32BE(manifest.length, 2)
  out.writeUInt32BE(manifest.stored, 6)
  out.set(manifest.digest, 10)
  return out
}

const decodeManifest = (bytes: Uint8Array): Result.Result<Manifest, string> => {
  if (bytes.length !== manifestBytes || bytes[0] !== manifestVersion) return Result.fail("unknown chunk manifest")
  const compression = codecs[bytes[1]!]
  if (compression === undefined) return Result.fail(`unknown compression ${bytes[1]}`)
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const length = view.readUInt32BE(2)
  const stored = view.readUInt32BE(6)
  if (length > maxValueBytes || stored > maxValueBytes + 1024) return Result.fail("chunk manifest is out of bounds")
  return Result.succeed({ compression, length, stored, digest: bytes.subarray(10) })
}

/** A large value's event item, its marker and chunk items, to be written marker first, then chunks, then event. */
export interface Split {
  readonly item: AttributeMap
  readonly marker: AttributeMap
  readonly chunks: ReadonlyArray<AttributeMap>
}

/** Splits an event carrying a large value into encrypted chunk items and the event item naming them. */
export const split = Effect.fnUntraced(function*(
  location: Location,
  event: Event,
  compression: Compression
): Effect.fn.Return<Split, ValueTooLarge | KeyringError | Throttled | StorageFailure, DataKeys> {
  const value = event.value ?? new Uint8Array(0)
  const packed = compression === "gzip" ? gzipSync(value) : undefined
  // Compression that does not shrink the value only costs the reader a decompression.
  const stored = packed !== undefined && packed.length < value.length ? packed : value
  const manifest: Manifest = {
    compression: stored === value ? "none" : compression,
    length: value.length,
    stored: stored.length,
    digest: digestOf(value)
  }
  const count = Math.max(1, Math.ceil(stored.length / chunkBytes))
  const binding = EventRecord.bindingOf(location, event)
  const partition = keyArea(location, event.key, "chunks")
  const eventSortKey = SortKey.encode(event.key, event.seq)
  const owner = {
    [ChunkAttr.partition]: { S: partition },
    [ChunkAttr.event]: { B: eventSortKey },
    [ChunkAttr.revision]: { S: event.revision },
    [ChunkAttr.timestamp]: { N: String(event.timestamp) }
  }
  const marker = { ...owner, [ChunkAttr.sort]: { B: markerSortKey(event) } }
  const chunks: Array<AttributeMap> = []
  for (let index = 0; index < count; index++) {
    const plaintext = stored.subarray(index * chunkBytes, (index + 1) * chunkBytes)
    chunks.push({
      ...owner,
      [ChunkAttr.sort]: { B: chunkSortKey(event, index) },
      [ChunkAttr.index]: { N: String(index) },
      [ChunkAttr.value]: { B: yield* ValueCipher.encrypt(plaintext, { ...binding, part: chunkPart(index, count) }) }
    })
  }
  const item = yield* EventRecord.encodeManifest(location, event, encodeManifest(manifest), count)
  return { item, marker, chunks }
})

/**
 * Checks a large event's decrypted manifest without reading its chunks, for readers that do not need the value: the
 * manifest decrypted (which authenticates the event item, as decrypting a value held whole does) and well formed.
 */
export const checkManifest = (event: Event, manifestPlaintext: Uint8Array): Effect.Effect<void, DecryptionFailed> => {
  const manifest = decodeManifest(manifestPlaintext)
  return Result.isFailure(manifest)
    ? Effect.fail(new DecryptionFailed({ key: event.key, seq: event.seq, reason: manifest.failure }))
    : Effect.void
}

/**
 * The value of a large event from its decrypted manifest and the chunk items read for it: every chunk decrypted
 * (bound to the event, its index and the count), put together, decompressed and checked against the manifest's
 * lengths and digest.
 */
export const assemble = (
  location: Location,
  event: Event,
  manifestPlaintext: Uint8Array,
  count: number,
  items: ReadonlyArray<AttributeMap>
): Effect.Effect<Uint8Array, DecodeError, DataKeys> => {
  const failed = (reason: string) => Effect.fail(new DecryptionFailed({ key: event.key, seq: event.seq, reason }))
  const manifest = decodeManifest(manifestPlaintext)
  if (Result.isFailure(manifest)) return failed(manifest.failure)
  const byIndex = new Map<number, Uint8Array>()
  for (const item of items) {
    if (item[ChunkAttr.revision]?.S !== event.revision) return failed("a chunk names another event")
    const index = Number(item[ChunkAttr.index]?.N)
    const ciphertext = item[ChunkAttr.value]?.B
    if (!Number.isSafeInteger(index) || ciphertext === undefined) return failed("a chunk item is malformed")
    byIndex.set(index, ciphertext)
  }
  if (byIndex.size !== count) {
    return failed(`${count - byIndex.size} of the value's ${count} chunks are missing`)
  }
  const binding = EventRecord.bindingOf(location, event)
  return Effect.forEach(
    Array.from({ length: count }, (_, index) => index),
    (index) => {
      const ciphertext = byIndex.get(index)
      return ciphertext === undefined
        ? failed(`chunk ${index} of ${count} is missing`)
        : ValueCipher.decrypt(ciphertext, { ...binding, part: chunkPart(index, count) })
    }
  ).pipe(
    Effect.flatMap((parts) => {
      const stored = Buffer.concat(parts)
      if (stored.length !== manifest.success.stored) return failed("the chunks do not add up to the stored length")
      let value: Uint8Array = stored
      if (manifest.success.compression === "gzip") {
        try {
          value = gunzipSync(stored, { maxOutputLength: Math.max(1, manifest.success.length) })
        } catch {
          return failed("the value does not decompress")
        }
      }
      if (value.length !== manifest.success.length) return failed("the value's length does not match its manifest")
      if (!digestOf(value).equals(manifest.success.digest)) return failed("the value's digest does not match")
      // A plain Uint8Array, as a value held whole decrypts to (a Buffer compares unequal to one).
      return Effect.succeed(new Uint8Array(value.buffer, value.byteOffset, value.byteLength))
    })
  )
}

/** The event a chunk item belongs to, read from its clear attributes, for the collection of orphans. */
export interface ChunkOwner {
  readonly key: string
  readonly seq: number
  readonly revision: string
  /** The event's timestamp, epoch milliseconds. */
  readonly timestamp: number
}

/** The owner a marker (or chunk) item names, or why it names none. */
export const ownerOf = (item: AttributeMap): Result.Result<ChunkOwner, string> => {
  const eventSortKey = item[ChunkAttr.event]?.B
  const revision = item[ChunkAttr.revision]?.S
  const timestamp = Number(item[ChunkAttr.timestamp]?.N)
  if (eventSortKey === undefined || revision === undefined || !Number.isFinite(timestamp)) {
    return Result.fail("a chunk item names no event")
  }
  try {
    return Result.succeed({ ...SortKey.decode(eventSortKey), revision, timestamp })
  } catch {
    return Result.fail("a chunk item's event sort key is malformed")
  }
}
