/**
 * Value encryption: AES-256-GCM under a per-value key derived by HKDF from a
 * data key, with a key commitment, and associated data that binds the
 * ciphertext to where it belongs (table, namespace, key, seq, event id,
 * operation, expiry, kept revision, timestamp), so a ciphertext moved to another key,
 * seq or event fails to decrypt.
 *
 * Layout (version 1):
 *   version (1) | data-key-id length (1) | data key id | salt (32) | commitment (32) | iv (12) | ciphertext | tag (16)
 */
import { Effect, Redacted, Result } from "effect"
import { createCipheriv, createDecipheriv, hkdfSync, timingSafeEqual } from "node:crypto"
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
}

const version = 1
const saltBytes = 32
const commitmentBytes = 32
const ivBytes = 12
const tagBytes = 16
const hkdfInfo = Buffer.from("dynastate/v1/value-key")

/** The longest data key id a ciphertext header can name. */
export const maxKeyIdBytes = 255

/** Bytes a ciphertext adds to its plaintext for a key id of this length. */
export const overheadBytes = (keyIdLength: number): number =>
  2 + keyIdLength + saltBytes + commitmentBytes + ivBytes + tagBytes

const associatedData = (header: Uint8Array, binding: ValueBinding): Buffer =>
  Buffer.concat([
    header,
    Buffer.from(
      JSON.stringify([
        binding.table,
        binding.namespace,
        binding.key,
        binding.seq,
        binding.eventId,
        binding.op,
        binding.expires ?? null,
        binding.valueRevision ?? null,
        binding.timestamp
      ])
    )
  ])

// Called inside `quietly`; the data key's KeyObject is made once per data key.
const deriveKeys = (key: DataKey, salt: Uint8Array) => {
  const okm = Buffer.from(hkdfSync("sha256", secretKeyOf(key, Redacted.value(key.material)), salt, hkdfInfo, 64))
  return { encryption: okm.subarray(0, 32), commitment: okm.subarray(32, 64) }
}

/** Encrypts a value under a data key, bound to `binding`. */
export const encryptWith = (key: DataKey, plaintext: Uint8Array, binding: ValueBinding): Uint8Array => {
  const keyId = Buffer.from(key.id, "utf8")
  if (keyId.length === 0 || keyId.length > maxKeyIdBytes) {
    throw new RangeError(`key id must be 1 to ${maxKeyIdBytes} bytes`)
  }
  const random = randomBytes(saltBytes + ivBytes)
  const salt = random.subarray(0, saltBytes)
  const iv = random.subarray(saltBytes)
  return quietly(() => {
    const derived = deriveKeys(key, salt)
    const header = Buffer.concat([Buffer.from([version, keyId.length]), keyId, salt, derived.commitment, iv])
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

/** The data key id a ciphertext names, or why it cannot be read. */
export const keyIdOf = (ciphertext: Uint8Array): Result.Result<string, string> => {
  if (ciphertext.length < 2) return Result.fail("ciphertext is truncated")
  if (ciphertext[0] !== version) return Result.fail(`unknown ciphertext version ${ciphertext[0]}`)
  const length = ciphertext[1]!
  if (length === 0) return Result.fail("ciphertext names no data key")
  if (ciphertext.length < overheadBytes(length)) return Result.fail("ciphertext is truncated")
  return Result.succeed(Buffer.from(ciphertext.subarray(2, 2 + length)).toString("utf8"))
}

/** Decrypts with a known data key, or says why not. Never returns unauthenticated bytes. */
export const decryptWith = (
  key: DataKey,
  ciphertext: Uint8Array,
  binding: ValueBinding
): Result.Result<Uint8Array, string> => {
  const id = keyIdOf(ciphertext)
  if (Result.isFailure(id)) return Result.fail(id.failure)
  let offset = 2 + ciphertext[1]!
  const take = (n: number) => {
    const part = ciphertext.subarray(offset, offset + n)
    offset += n
    return part
  }
  const salt = take(saltBytes)
  const commitment = take(commitmentBytes)
  const iv = take(ivBytes)
  const header = ciphertext.subarray(0, offset)
  const body = ciphertext.subarray(offset, ciphertext.length - tagBytes)
  const tag = ciphertext.subarray(ciphertext.length - tagBytes)
  return quietly(() => {
    const derived = deriveKeys(key, salt)
    if (!timingSafeEqual(derived.commitment, commitment)) return Result.fail("key commitment does not match")
    try {
      const decipher = createDecipheriv("aes-256-gcm", derived.encryption, iv)
      decipher.setAAD(associatedData(header, binding))
      decipher.setAuthTag(tag)
      return Result.succeed(new Uint8Array(Buffer.concat([decipher.update(body), decipher.final()])))
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

/** Decrypts a stored value, failing with `DecryptionFailed` (or `Shredded`) naming the key and seq. */
export const decrypt = Effect.fnUntraced(function*(
  ciphertext: Uint8Array,
  binding: ValueBinding
): Effect.fn.Return<Uint8Array, DecryptionFailed | Shredded | KeyringError | Throttled | StorageFailure, DataKeys> {
  const failed = (reason: string) => new DecryptionFailed({ key: binding.key, seq: binding.seq, reason })
  const keyId = keyIdOf(ciphertext)
  if (Result.isFailure(keyId)) return yield* failed(keyId.failure)
  const dataKeys = yield* DataKeys
  const key = yield* dataKeys.forDecryption(keyId.success).pipe(
    Effect.catchTags({
      DataKeyNotFound: (error) => Effect.fail(failed(`data key ${error.dataKey} does not exist`)),
      DataKeyShredded: (error) => Effect.fail(new Shredded({ key: binding.key, seq: binding.seq, scope: error.scope })),
      KeyringError: (error) => Effect.fail(undecryptable.has(error.failure) ? failed(error.message) : error)
    })
  )
  const plaintext = decryptWith(key, ciphertext, binding)
  if (Result.isFailure(plaintext)) return yield* failed(plaintext.failure)
  return plaintext.success
})
