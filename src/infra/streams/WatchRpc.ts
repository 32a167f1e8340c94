/**
 * The protocol by which a worker serves watches to application processes (Effect RPC over a TCP socket, newline
 * delimited JSON): one streaming call, `Watch`, that relays the worker's one reading of the table's stream. What
 * travels is the stored items as the stream brings them (values encrypted, as in the table), never a plaintext
 * value: each process decrypts with its own keyring, and the worker needs no right to read values.
 */
import { NodeSocket } from "@effect/platform-node"
import { Effect, Layer, Schema } from "effect"
import { Rpc, RpcClient, RpcGroup, RpcSerialization } from "effect/rpc"
import type { AttributeMap } from "../Dynamo.ts"
import type { RelayAddress } from "./RelayAddress.ts"
import * as RelayTls from "./RelayTls.ts"
import type { StreamRecord } from "./StreamsApi.ts"

/** Per shard of `arn`, the last record accounted for. */
export const Positions = Schema.Struct({
  arn: Schema.String,
  shards: Schema.Record(Schema.String, Schema.String)
})

/** One stream record of the namespace's event items: its sequence number and its new image (see `encodeImage`). */
export const RelayedRecord = Schema.Struct({
  sequenceNumber: Schema.String,
  image: Schema.String
})

/**
 * What `Watch` streams: `Ready` first, once the worker's reader is live and this subscriber is registered (every
 * record it reads from then on is relayed; `positions` covers every record it read before), then the records of
 * each shard as read, in order, and `Trimmed` when the stream lost records before the worker read them.
 */
export const RelayMessage = Schema.Union([
  Schema.TaggedStruct("Ready", { positions: Positions }),
  Schema.TaggedStruct("Records", {
    arn: Schema.String,
    shardId: Schema.String,
    records: Schema.Array(RelayedRecord),
    ended: Schema.Boolean
  }),
  Schema.TaggedStruct("Trimmed", { arn: Schema.String, shardId: Schema.String })
])

/** A message of the `Watch` stream. */
export type RelayMessage = typeof RelayMessage.Type

/** The worker serves another namespace than the one asked for: its records would not be this store's. */
export class RelayRefused extends Schema.TaggedError<RelayRefused>()("RelayRefused", {
  reason: Schema.String
}) {
  override get message() {
    return `the worker does not serve this watch: ${this.reason}`
  }
}

/** The worker's watch service. */
export class WatchRpcs extends RpcGroup.make(
  Rpc.make("Watch", {
    payload: { table: Schema.String, namespace: Schema.String },
    success: RelayMessage,
    error: RelayRefused,
    stream: true
  })
) {}

/**
 * A stream record's new image as JSON text. Binary attributes (the sort key, the ciphertext) become
 * `{"$b": base64}`, so the image crosses as it was stored, byte for byte.
 */
export const encodeImage = (image: AttributeMap): string =>
  JSON.stringify(
    image,
    (_key, value: unknown) =>
      value instanceof Uint8Array
        ? { $b: Buffer.from(value.buffer, value.byteOffset, value.length).toString("base64") }
        : value
  )

/** The image `encodeImage` wrote. */
export const decodeImage = (text: string): AttributeMap =>
  JSON.parse(
    text,
    (_key, value: unknown) =>
      typeof value === "object" && value !== null && "$b" in value && typeof value.$b === "string"
        ? new Uint8Array(Buffer.from(value.$b, "base64"))
        : value
  ) as AttributeMap

/** A relayed record as the stream record the watch reads (only event items are relayed: inserts with an image). */
export const toStreamRecord = (relayed: typeof RelayedRecord.Type): StreamRecord => {
  const image = decodeImage(relayed.image)
  return {
    eventName: "INSERT",
    sequenceNumber: relayed.sequenceNumber,
    keys: image,
    newImage: image,
    principal: undefined,
    approximateCreation: undefined
  }
}

/** Ndjson framing: one message a line over the byte stream of a socket. */
export const serialization: Layer.Layer<RpcSerialization.RpcSerialization> = RpcSerialization.layerNdjson

/**
 * A client of a worker's watch service, connected for the scope: over TLS when `tls` is given (the worker's
 * certificate checked, this process's presented; see `RelayTls`), plain TCP otherwise. A failed handshake or a lost
 * connection fails the call in flight with `RpcClientError`; there is no silent reconnection (the watch decides
 * where to read from then).
 */
export const client = (address: RelayAddress, tls?: RelayTls.RelayTls) =>
  Effect.gen(function*() {
    const openTimeout = "3 seconds"
    const socket = tls === undefined
      ? NodeSocket.layerNet({ host: address.host, port: address.port, openTimeout })
      : NodeSocket.layerTls({
        ...RelayTls.clientOptions(tls, address.host),
        host: address.host,
        port: address.port,
        openTimeout
      })
    // Built in the caller's scope: the connection lives as long as the client.
    const protocol = yield* Layer.build(
      RpcClient.layerProtocolSocket({ pingInterval: "2 seconds", pingTimeout: "6 seconds" }).pipe(
        Layer.provide([socket, serialization])
      )
    )
    return yield* RpcClient.make(WatchRpcs).pipe(Effect.provideContext(protocol))
  })
