/**
 * Value encryption: AES-256-GCM under a key derived by HKDF from a data key, with a key commitment, and
 * associated data that binds the ciphertext to where it belongs (table, namespace, key, seq, event id, operation,
 * expiry, kept revision, timestamp), so a ciphertext moved to another key, seq or event fails to decrypt.
 *
 * Layouts (the first byte says which; values are written in version 2, both are read):
 *   version 2: version | data-key-id length (1) | data key id | commitment (32) | iv (12) | ciphertext | tag (16)
 *   version 1: version | data-key-id length (1) | data key id | salt (32) | commitment (32) | iv (12) | ciphertext | tag (16)
 *
 * Version 1 derived a key per value from a random salt: an HKDF per value written or read, the largest single
 * cost of a range read. Version 2 derives the value key and the commitment once per data key; each value has its
 * own random 96-bit IV, and a data key encrypts at most `DataKeys.maxValuesPerDataKey` values (2^32, the bound
 * NIST SP 800-38D sets for random IVs under one key), so IVs do not repeat. The commitment still ties every
 * ciphertext to the one data key that can open it.
 */
import { Effect, Redacted, Result } from "effect"
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, timingSafeEqual } from "node:crypto"
import type { KeyObject } from "node:crypto"
import { DecryptionFailed, Shredded } from "../../domain/Errors.ts"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import type { EventOp } from "../../domain/Event.ts"
import { randomBytes } from "../RandomPool.ts"
import { DataKeys } from "./DataKeys.ts"
import type { DataKey } from "./DataKeys.ts"
import type { KeyringError } from "./Keyring.ts"
import { quietly, secretKeyOf } from "./QuietCrypto.ts"

/** Everything a value is bound to; any change makes decryption fail. */
export interface ValueBinding {
  readonly table: string
  readonly namespace: string
  readonly key: string
  readonly seq: number
  readonly eventId: string
  readonly op: EventOp
  readonly expires: number | undefined
  readonly valueRevision: string | undefined
  readonly timestamp: number
  /**
   * What the ciphertext holds when not a value held whole: a large value's manifest or one of its chunks (see
   * `ValueChunks`), or `key` for a sealed key's real key (see `SealedKeys`), so none can be swapped with another
   * part bound to the same event. Absent for a value held whole, whose associated data it leaves unchanged.
   */
  readonly part?: string | undefined
}

/** The layout values are written in. */
export const currentVersion = 2
const saltBytes = 32
const commitmentBytes = 32
const ivBytes = 12
const tagBytes = 16
const hkdfInfoV1 = Buffer.from("dynastate/v1/value-key")
const hkdfInfoV2 = Buffer.from("dynastate/v2/value-key")
const noSalt = Buffer.alloc(0)

/** The longest data key id a ciphertext header can name. */
export const maxKeyIdBytes = 255

/** Bytes between the key id and the IV: version 1's salt and commitment, version 2's commitment. */
const keyMaterialBytes = (version: number) => (version === 1 ? saltBytes : 0) + commitmentBytes

/** Bytes a ciphertext of `version` (the current one by default) adds to its plaintext for a key id of this length. */
export const overheadBytes = (keyIdLength: number, version: number = currentVersion): number =>
  2 + keyIdLength + keyMaterialBytes(version) + ivBytes + tagBytes

// The header, then the binding as a JSON array, in one buffer (every value read and written builds one).
const associatedData = (header: Uint8Array, binding: ValueBinding): Buffer => {
  const fields: Array<string | number | null> = [
    binding.table,
    binding.namespace,
    binding.key,
    binding.seq,
    binding.eventId,
    binding.op,
    binding.expires ?? null,
    binding.valueRevision ?? null,
    binding.timestamp
  ]
  // Only when present: values keep the associated data they always had.
  if (binding.part !== undefined) fields.push(binding.part)
  const json = JSON.stringify(fields)
  const out = Buffer.allocUnsafe(header.length + Buffer.byteLength(json, "utf8"))
  out.set(header, 0)
  out.write(json, header.length, "utf8")
  return out
}

interface ValueKey {
  readonly encryption: KeyObject
  readonly commitment: Buffer
}

// The header of every value a data key encrypts in the current layout, up to its IV: made once per data key.
const headerPrefixes = new WeakMap<DataKey, Buffer>()
const headerPrefixOf = (key: DataKey, commitment: Buffer): Buffer => {
  let prefix = headerPrefixes.get(key)
  if (prefix === undefined) {
    const keyId = Buffer.from(key.id, "utf8")
    if (keyId.length === 0 || keyId.length > maxKeyIdBytes) {
      throw new RangeError(`key id must be 1 to ${maxKeyIdBytes} bytes`)
    }
    prefix = Buffer.concat([Buffer.from([currentVersion, keyId.length]), keyId, commitment])
    headerPrefixes.set(key, prefix)
  }
  return prefix
}

// Called inside `quietly`; the data key's KeyObject is made once per data key. The value key is handed to the
// cipher as a KeyObject: given a Buffer, `createCipheriv` first brand-checks it as a KeyObject and as a CryptoKey,
// each check a native exception, which costs more than making the KeyObject (`createSecretKey` skips the checks).
const derive = (key: DataKey, salt: Uint8Array, info: Buffer): ValueKey => {
  const okm = Buffer.from(hkdfSync("sha256", secretKeyOf(key, Redacted.value(key.material)), salt, info, 64))
  return { encryption: createSecretKey(okm.subarray(0, 32)), commitment: okm.subarray(32, 64) }
}

// Version 2's value key, derived once per data key and kept while the data key lives (as its KeyObject is).
const valueKeys = new WeakMap<DataKey, ValueKey>()
const valueKeyOf = (key: DataKey): ValueKey => {
  let derived = valueKeys.get(key)
  if (derived === undefined) {
    derived = derive(key, noSalt, hkdfInfoV2)
    valueKeys.set(key, derived)
  }
  return derived
}

/** Encrypts a value under a data key, bound to `binding`, in the current layout. */
export const encryptWith = (key: DataKey, plaintext: Uint8Array, binding: ValueBinding): Uint8Array => {
  const iv = randomBytes(ivBytes)
  return quietly(() => {
    const derived = valueKeyOf(key)
    const prefix = headerPrefixOf(key, derived.commitment)
    const header = Buffer.allocUnsafe(prefix.length + ivBytes)
    prefix.copy(header, 0)
    iv.copy(header, prefix.length)
    const cipher = createCipheriv("aes-256-gcm", derived.encryption, iv)
    cipher.setAAD(associatedData(header, binding))
    const body = cipher.update(plaintext)
    const final = cipher.final()
    const out = new Uint8Array(header.length + body.length + final.length + tagBytes)
    out.set(header, 0)
    out.set(body, header.length)
    out.set(final, header.length + body.length)
    out.set(cipher.getAuthTag(), header.length + body.length + final.length)
    return out
  })
}

/** Why a ciphertext's header cannot be read, if it cannot. */
const headerFault = (ciphertext: Uint8Array): string | undefined => {
  if (ciphertext.length < 2) return "ciphertext is truncated"
  const version = ciphertext[0]!
  if (version !== 1 && version !== 2) return `unknown ciphertext version ${version}`
  const length = ciphertext[1]!
  if (length === 0) return "ciphertext names no data key"
  if (ciphertext.length < overheadBytes(length, version)) return "ciphertext is truncated"
  return undefined
}

// The id last read, by its bytes: the values of a range nearly all name one data key, decoded once then.
let lastId: { readonly bytes: Uint8Array; readonly id: string } | undefined

/** The data key id a ciphertext names, or why it cannot be read. */
export const keyIdOf = (ciphertext: Uint8Array): Result.Result<string, string> => {
  const fault = headerFault(ciphertext)
  if (fault !== undefined) return Result.fail(fault)
  const bytes = ciphertext.subarray(2, 2 + ciphertext[1]!)
  const last = lastId
  if (last !== undefined && last.bytes.length === bytes.length) {
    let same = true
    for (let i = 0; same && i < bytes.length; i++) same = last.bytes[i] === bytes[i]
    if (same) return Result.succeed(last.id)
  }
  const id = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("utf8")
  lastId = { bytes: bytes.slice(), id }
  return Result.succeed(id)
}

/**
 * A value this process decrypted, kept so that reading the same stored bytes again (a range read of keys that did
 * not change, a get of an unchanged key) skips the cipher: Node spends about as long setting up an AES-GCM context
 * as the rest of a range item's decoding. A hit needs the same data key object, the same event and part, every
 * binding field equal and the ciphertext byte for byte equal: it is then the same authenticated input, whose
 * plaintext decryption would give again. Kept per data key object, so a value goes when its data key leaves the
 * data-key cache (and a shredded key's values with it).
 */
interface Opened {
  readonly ciphertext: Buffer
  readonly binding: ValueBinding
  readonly plaintext: Uint8Array
}

/** Values longer than this are decrypted every time: a large value's chunks would crowd out everything else. */
const maxOpenedBytes = 4096
/** Values kept per data key, the oldest dropped first: about 10 MiB of 256-byte values. */
const maxOpenedPerKey = 16_384

const openedValues = new WeakMap<DataKey, Map<string, Opened>>()

const sameBinding = (a: ValueBinding, b: ValueBinding): boolean =>
  a.table === b.table && a.namespace === b.namespace && a.key === b.key && a.seq === b.seq &&
  a.eventId === b.eventId && a.op === b.op && a.expires === b.expires && a.valueRevision === b.valueRevision &&
  a.timestamp === b.timestamp && a.part === b.part

const openedId = (binding: ValueBinding) =>
  binding.part === undefined ? binding.eventId : `${binding.eventId}\u0000${binding.part}`

/** Decrypts with a known data key, or says why not. Never returns unauthenticated bytes. */
export const decryptWith = (
  key: DataKey,
  ciphertext: Uint8Array,
  binding: ValueBinding
): Result.Result<Uint8Array, string> => {
  const values = openedValues.get(key)
  const id = openedId(binding)
  const opened = values?.get(id)
  // A copy: the caller owns what it is given, and may change it.
  if (opened !== undefined && sameBinding(opened.binding, binding) && opened.ciphertext.equals(ciphertext)) {
    return Result.succeed(opened.plaintext.slice())
  }
  const result = open(key, ciphertext, binding)
  if (Result.isSuccess(result) && result.success.length <= maxOpenedBytes) {
    let kept = values
    if (kept === undefined) {
      kept = new Map()
      openedValues.set(key, kept)
    }
    if (kept.size >= maxOpenedPerKey) kept.delete(kept.keys().next().value!)
    kept.set(id, {
      // Copies: a view would keep the whole response body it came in alive.
      ciphertext: Buffer.from(ciphertext),
      binding: { ...binding },
      plaintext: result.success.slice()
    })
  }
  return result
}

const open = (key: DataKey, ciphertext: Uint8Array, binding: ValueBinding): Result.Result<Uint8Array, string> => {
  const fault = headerFault(ciphertext)
  if (fault !== undefined) return Result.fail(fault)
  const version = ciphertext[0]!
  let offset = 2 + ciphertext[1]!
  const take = (n: number) => {
    const part = ciphertext.subarray(offset, offset + n)
    offset += n
    return part
  }
  const salt = version === 1 ? take(saltBytes) : undefined
  const commitment = take(commitmentBytes)
  const iv = take(ivBytes)
  const header = ciphertext.subarray(0, offset)
  const body = ciphertext.subarray(offset, ciphertext.length - tagBytes)
  const tag = ciphertext.subarray(ciphertext.length - tagBytes)
  return quietly(() => {
    const derived = salt === undefined ? valueKeyOf(key) : derive(key, salt, hkdfInfoV1)
    if (!timingSafeEqual(derived.commitment, commitment)) return Result.fail("key commitment does not match")
    try {
      const decipher = createDecipheriv("aes-256-gcm", derived.encryption, iv)
      decipher.setAAD(associatedData(header, binding))
      decipher.setAuthTag(tag)
      const plaintext = decipher.update(body)
      // GCM's final block is empty; it checks the tag (throwing when it does not match).
      decipher.final()
      // A view of the decipher's own buffer, which holds nothing else: no copy.
      return Result.succeed(new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.length))
    } catch {
      return Result.fail("authentication failed: the value or what it is bound to was changed")
    }
  })
}

/** Encrypts a value under the current data key of its key's scope. */
export const encrypt = Effect.fnUntraced(function*(
  plaintext: Uint8Array,
  binding: ValueBinding
): Effect.fn.Return<Uint8Array, KeyringError | Throttled | StorageFailure, DataKeys> {
  const dataKeys = yield* DataKeys
  const key = yield* dataKeys.forEncryption(dataKeys.scopeOf(binding.key), plaintext.length)
  return encryptWith(key, plaintext, binding)
})

// A keyring that cannot open a wrapped key means this value cannot be decrypted; an unavailable or
// refusing keyring is an operational failure the caller may retry, so it keeps its own type.
const undecryptable = new Set(["invalid-ciphertext", "wrong-key", "no-matching-key"])

const failedFor = (binding: ValueBinding) => (reason: string) =>
  new DecryptionFailed({ key: binding.key, seq: binding.seq, reason })

/**
 * Decrypts a stored value without an effect when `keyOf` has the data key it names (see `DataKeys.cached`), failing
 * as {@link decrypt} does; undefined when the key is not at hand, for {@link decrypt} to load it. What range reads
 * decrypt a page of values with, in one step.
 */
export const decryptKnown = (
  ciphertext: Uint8Array,
  binding: ValueBinding,
  keyOf: (id: string) => DataKey | undefined
): Result.Result<Uint8Array, DecryptionFailed> | undefined => {
  const keyId = keyIdOf(ciphertext)
  if (Result.isFailure(keyId)) return Result.fail(failedFor(binding)(keyId.failure))
  const key = keyOf(keyId.success)
  if (key === undefined) return undefined
  const plaintext = decryptWith(key, ciphertext, binding)
  return Result.isFailure(plaintext)
    ? Result.fail(failedFor(binding)(plaintext.failure))
    : Result.succeed(plaintext.success)
}

/** Decrypts a stored value, failing with `DecryptionFailed` (or `Shredded`) naming the key and seq. */
export const decrypt = (
  ciphertext: Uint8Array,
  binding: ValueBinding
): Effect.Effect<Uint8Array, DecryptionFailed | Shredded | KeyringError | Throttled | StorageFailure, DataKeys> => {
  // Not a generator: a get decrypts on every read, and the data key is nearly always cached.
  const failed = failedFor(binding)
  const keyId = keyIdOf(ciphertext)
  if (Result.isFailure(keyId)) return Effect.fail(failed(keyId.failure))
  return DataKeys.use((dataKeys) => dataKeys.forDecryption(keyId.success)).pipe(
    Effect.catchTags({
      DataKeyNotFound: (error) => Effect.fail(failed(`data key ${error.dataKey} does not exist`)),
      DataKeyShredded: (error) => Effect.fail(new Shredded({ key: binding.key, seq: binding.seq, scope: error.scope })),
      KeyringError: (error) => Effect.fail(undecryptable.has(error.failure) ? failed(error.message) : error)
    }),
    Effect.flatMap((key) => {
      const plaintext = decryptWith(key, ciphertext, binding)
      return Result.isFailure(plaintext) ? Effect.fail(failed(plaintext.failure)) : Effect.succeed(plaintext.success)
    })
  )
}
