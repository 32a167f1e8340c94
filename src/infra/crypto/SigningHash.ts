/**
 * The SHA-256 the AWS SDK clients of the store's layers sign requests with (their `sha256` option): the SDK's own,
 * but with each HMAC key made into a `KeyObject` once. The SDK's hash hands `createHmac` a fresh `Buffer` of the
 * cached signing key on every request, and Node then brand-checks that buffer as a `KeyObject` and as a
 * `CryptoKey`, each check a native exception: on some CPUs 10 µs a request, where the HMAC itself takes 2.
 */
import { createHash, createHmac, createSecretKey } from "node:crypto"
import type { Hash as NodeHash, Hmac, KeyObject } from "node:crypto"

/** What the SDK hashes and keys its HMACs with (its `SourceData`). */
export type SourceData = string | ArrayBuffer | ArrayBufferView

const bytesOf = (data: Exclude<SourceData, string>): Buffer =>
  ArrayBuffer.isView(data) ? Buffer.from(data.buffer, data.byteOffset, data.byteLength) : Buffer.from(data)

// The signer keeps each day's signing key as one Uint8Array and hands that same object to every request's HMAC. The
// bytes are kept beside the key object and compared on each use, so a buffer changed in place is never signed with
// its old contents.
const keyObjects = new WeakMap<object, { readonly bytes: Buffer; readonly key: KeyObject }>()

// A string key (the secret access key, which the signer MACs every request with to name its cached signing key) is
// handed on as it is: a string costs Node no brand check.
const keyOf = (secret: SourceData): string | KeyObject => {
  if (typeof secret === "string") return secret
  const bytes = bytesOf(secret)
  let cached = keyObjects.get(secret)
  if (cached === undefined || !cached.bytes.equals(bytes)) {
    // A copy of its own (`Buffer.alloc`), not a slice of Node's shared pool that other buffers' `.buffer` reaches.
    const copy = Buffer.alloc(bytes.length)
    bytes.copy(copy)
    cached = { bytes: copy, key: createSecretKey(bytes) }
    keyObjects.set(secret, cached)
  }
  return cached.key
}

/**
 * SHA-256, or HMAC-SHA256 when constructed with a secret, with the SDK's `Hash` interface: `update` appends
 * (strings as UTF-8), `digest` resolves to the 32-byte result; an HMAC's digest ends it, a plain hash's does not.
 */
export class SigningSha256 {
  readonly digestLength = 32
  readonly #secret: SourceData | undefined
  #hash: NodeHash | Hmac
  #finished = false

  constructor(secret?: SourceData) {
    // As the SDK's own: an empty string is no secret (a plain hash); an empty buffer keys an HMAC.
    this.#secret = secret === "" ? undefined : secret
    this.#hash = this.#fresh()
  }

  #fresh(): NodeHash | Hmac {
    return this.#secret === undefined ? createHash("sha256") : createHmac("sha256", keyOf(this.#secret))
  }

  update(data: SourceData, encoding?: "utf8" | "ascii" | "latin1"): void {
    if (this.#finished) throw new Error("Attempted to update an already finished hash.")
    if (typeof data === "string") this.#hash.update(data, encoding ?? "utf8")
    else this.#hash.update(bytesOf(data))
  }

  digest(): Promise<Uint8Array> {
    let digest: Buffer
    if (this.#secret === undefined) {
      digest = (this.#hash as NodeHash).copy().digest()
    } else {
      this.#finished = true
      digest = this.#hash.digest()
    }
    return Promise.resolve(new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength))
  }

  reset(): void {
    this.#hash = this.#fresh()
    this.#finished = false
  }
}
