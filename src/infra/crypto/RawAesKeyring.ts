/**
 * The local keyring: AES-256 master keys held by the application (a key file
 * or an environment variable), for the embedded default and for users without
 * KMS. Data keys are wrapped with AES-256-GCM, the encryption context
 * authenticated as associated data.
 *
 * A key file holds one key per line as `id:base64`; the first key wraps new
 * data keys, the others still unwrap (rotation).
 */
import { Effect, Layer, Redacted } from "effect"
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Keyring, KeyringError } from "./Keyring.ts"
import type { EncryptionContext, KeyringFailure, WrappedKey } from "./Keyring.ts"

/** A local master key. */
export interface RawKey {
  readonly id: string
  readonly material: Redacted.Redacted<Uint8Array>
}

/** The provider name in wrapped keys this keyring made. */
export const provider = "raw-aes"

const fail = (failure: typeof KeyringFailure.Type, reason: string) =>
  new KeyringError({ keyring: provider, failure, reason })

/** A key's id when none is given: a fingerprint that reveals nothing of the key. */
export const fingerprint = (material: Uint8Array): string =>
  "raw-" + createHash("sha256").update("dynastate/key-id").update(material).digest("hex").slice(0, 16)

const base64Key = /^[A-Za-z0-9+/]{43}=$/
const keyIdPattern = /^[A-Za-z0-9._-]{1,64}$/

/** A key from its base64 form, checked to be exactly 256 bits. */
export const keyFromBase64 = (encoded: Redacted.Redacted<string>, id?: string): Effect.Effect<RawKey, KeyringError> =>
  Effect.suspend(() => {
    const text = Redacted.value(encoded).trim()
    if (!base64Key.test(text)) {
      return Effect.fail(fail("invalid-key-material", "a raw AES key must be 32 bytes in base64 (44 characters)"))
    }
    if (id !== undefined && !keyIdPattern.test(id)) {
      return Effect.fail(fail("invalid-key-material", "a key id must be 1 to 64 of A-Z a-z 0-9 . _ -"))
    }
    const material = new Uint8Array(Buffer.from(text, "base64"))
    return Effect.succeed({ id: id ?? fingerprint(material), material: Redacted.make(material) })
  })

/** Parses a key file's text; the first key is the current one. */
export const parseKeyFile = (text: Redacted.Redacted<string>): Effect.Effect<ReadonlyArray<RawKey>, KeyringError> =>
  Effect.gen(function*() {
    const keys: Array<RawKey> = []
    for (const [index, raw] of Redacted.value(text).split("\n").entries()) {
      const line = raw.trim()
      if (line === "" || line.startsWith("#")) continue
      const colon = line.indexOf(":")
      if (colon <= 0) return yield* fail("invalid-key-material", `line ${index + 1} of the key file is not id:base64`)
      const key = yield* keyFromBase64(Redacted.make(line.slice(colon + 1)), line.slice(0, colon)).pipe(
        Effect.mapError((error) => fail("invalid-key-material", `line ${index + 1} of the key file: ${error.reason}`))
      )
      if (keys.some((known) => known.id === key.id)) {
        return yield* fail("invalid-key-material", `line ${index + 1} repeats the key id ${key.id}`)
      }
      keys.push(key)
    }
    if (keys.length === 0) return yield* fail("invalid-key-material", "the key file holds no key")
    return keys
  })

/**
 * Reads a key file, creating it with a fresh key and 0600 permissions when it
 * does not exist (the embedded default's first start).
 */
export const loadOrCreateKeyFile = (file: string): Effect.Effect<ReadonlyArray<RawKey>, KeyringError> =>
  Effect.gen(function*() {
    const created = yield* Effect.try({
      try: () => {
        if (fs.existsSync(file)) return false
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
        const material = randomBytes(32)
        const line = `${fingerprint(material)}:${material.toString("base64")}\n`
        try {
          fs.writeFileSync(file, "# dynastate raw AES keyring: id:base64, the first key wraps new data keys\n" + line, {
            mode: 0o600,
            flag: "wx"
          })
        } catch (error) {
          // Another process created it first: read theirs.
          if ((error as NodeJS.ErrnoException).code === "EEXIST") return false
          throw error
        }
        return true
      },
      catch: (cause) => fail("unavailable", `cannot create key file ${file}: ${(cause as Error).message}`)
    })
    if (created) yield* Effect.logInfo(`created a new raw AES key file at ${file} (mode 0600)`)
    const text = yield* Effect.try({
      try: () => Redacted.make(fs.readFileSync(file, "utf8")),
      catch: (cause) => fail("unavailable", `cannot read key file ${file}: ${(cause as Error).message}`)
    })
    return yield* parseKeyFile(text)
  })

const associatedData = (keyId: string, context: EncryptionContext) =>
  Buffer.from(
    JSON.stringify(["dynastate/raw-aes/v1", keyId, Object.entries(context).sort(([a], [b]) => (a < b ? -1 : 1))])
  )

const wrapWith = (key: RawKey, plaintext: Uint8Array, context: EncryptionContext): WrappedKey => {
  const iv = randomBytes(12)
  const cipher = createCipheriv("aes-256-gcm", Redacted.value(key.material), iv)
  cipher.setAAD(associatedData(key.id, context))
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  return { provider, keyId: key.id, ciphertext: new Uint8Array(Buffer.concat([iv, body])) }
}

const unwrapWith = (key: RawKey, wrapped: WrappedKey, context: EncryptionContext): Uint8Array | undefined => {
  const bytes = wrapped.ciphertext
  if (bytes.length < 12 + 16) return undefined
  try {
    const decipher = createDecipheriv("aes-256-gcm", Redacted.value(key.material), bytes.subarray(0, 12))
    decipher.setAAD(associatedData(key.id, context))
    decipher.setAuthTag(bytes.subarray(bytes.length - 16))
    return new Uint8Array(Buffer.concat([decipher.update(bytes.subarray(12, bytes.length - 16)), decipher.final()]))
  } catch {
    return undefined
  }
}

/** A keyring over local keys; the first wraps new data keys, all unwrap. */
export const make = (keys: ReadonlyArray<RawKey>): Keyring["Service"] => {
  const byId = new Map(keys.map((key) => [key.id, key] as const))
  const current = keys[0]
  const wrap = (plaintext: Redacted.Redacted<Uint8Array>, context: EncryptionContext) =>
    current
      ? Effect.sync(() => [wrapWith(current, Redacted.value(plaintext), context)])
      : Effect.fail(fail("invalid-key-material", "the keyring has no key"))
  return Keyring.of({
    name: `${provider}:${current?.id ?? "empty"}`,
    generate: (context) =>
      Effect.gen(function*() {
        const plaintext = Redacted.make(new Uint8Array(randomBytes(32)))
        return { plaintext, wrapped: yield* wrap(plaintext, context) }
      }),
    wrap,
    unwrap: (wrapped, context) =>
      Effect.suspend(() => {
        const candidates = wrapped.filter((copy) => copy.provider === provider && byId.has(copy.keyId))
        if (candidates.length === 0) {
          return Effect.fail(fail("no-matching-key", "no copy of the data key is wrapped under a key of this keyring"))
        }
        for (const copy of candidates) {
          const plaintext = unwrapWith(byId.get(copy.keyId)!, copy, context)
          if (plaintext) return Effect.succeed(Redacted.make(plaintext))
        }
        return Effect.fail(
          fail("invalid-ciphertext", "the wrapped data key does not authenticate under its key and context")
        )
      })
  })
}

/** The keyring as a layer, from keys. */
export const layer = (keys: ReadonlyArray<RawKey>): Layer.Layer<Keyring> => Layer.succeed(Keyring, make(keys))

/** The keyring as a layer, from a key file created on first use. */
export const layerFromFile = (file: string): Layer.Layer<Keyring, KeyringError> =>
  Layer.effect(Keyring, Effect.map(loadOrCreateKeyFile(file), make))

/** A keyring with one fresh random key, for tests and throwaway stores. */
export const layerEphemeral: Layer.Layer<Keyring> = Layer.effect(
  Keyring,
  Effect.sync(() => {
    const material = new Uint8Array(randomBytes(32))
    return make([{ id: fingerprint(material), material: Redacted.make(material) }])
  })
)
