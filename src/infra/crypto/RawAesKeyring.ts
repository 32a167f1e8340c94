/**
 * The local keyring: AES-256 keys held by the application (a key file or an
 * environment variable), for the embedded default and for users without KMS.
 *
 * A key file holds one key per line as `id:base64`; the first line is the key
 * new values are encrypted under, the others still decrypt (rotation).
 */
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Layer, Redacted } from "effect"
import { Keyring, KeyringError } from "./Keyring.ts"
import type { WrappingKey } from "./Keyring.ts"

const keyringName = "raw-aes"

const fail = (reason: string) => new KeyringError({ keyring: keyringName, reason })

/** A key's id when none is given: a fingerprint that reveals nothing of the key. */
export const fingerprint = (material: Uint8Array): string =>
  "raw-" + createHash("sha256").update("dynastate/key-id").update(material).digest("hex").slice(0, 16)

const base64Key = /^[A-Za-z0-9+/]{43}=$/
const keyIdPattern = /^[A-Za-z0-9._-]{1,64}$/

/** A key from its base64 form, checked to be exactly 256 bits. */
export const keyFromBase64 = (encoded: Redacted.Redacted<string>, id?: string): Effect.Effect<WrappingKey, KeyringError> =>
  Effect.suspend(() => {
    const text = Redacted.value(encoded).trim()
    if (!base64Key.test(text)) return Effect.fail(fail("a raw AES key must be 32 bytes in base64 (44 characters)"))
    if (id !== undefined && !keyIdPattern.test(id)) {
      return Effect.fail(fail("a key id must be 1 to 64 of A-Z a-z 0-9 . _ -"))
    }
    const material = new Uint8Array(Buffer.from(text, "base64"))
    return Effect.succeed({ id: id ?? fingerprint(material), material: Redacted.make(material) })
  })

/** Parses a key file's text; the first key is the current one. */
export const parseKeyFile = (text: Redacted.Redacted<string>): Effect.Effect<ReadonlyArray<WrappingKey>, KeyringError> =>
  Effect.gen(function*() {
    const keys: Array<WrappingKey> = []
    for (const [index, raw] of Redacted.value(text).split("\n").entries()) {
      const line = raw.trim()
      if (line === "" || line.startsWith("#")) continue
      const colon = line.indexOf(":")
      if (colon <= 0) return yield* fail(`line ${index + 1} of the key file is not id:base64`)
      const key = yield* keyFromBase64(Redacted.make(line.slice(colon + 1)), line.slice(0, colon)).pipe(
        Effect.mapError((error) => fail(`line ${index + 1} of the key file: ${error.reason}`))
      )
      if (keys.some((known) => known.id === key.id)) return yield* fail(`line ${index + 1} repeats the key id ${key.id}`)
      keys.push(key)
    }
    if (keys.length === 0) return yield* fail("the key file holds no key")
    return keys
  })

/**
 * Reads a key file, creating it with a fresh key and 0600 permissions when it
 * does not exist (the embedded default's first start).
 */
export const loadOrCreateKeyFile = (file: string): Effect.Effect<ReadonlyArray<WrappingKey>, KeyringError> =>
  Effect.gen(function*() {
    const created = yield* Effect.try({
      try: () => {
        if (fs.existsSync(file)) return false
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
        const material = randomBytes(32)
        const line = `${fingerprint(material)}:${material.toString("base64")}\n`
        try {
          fs.writeFileSync(file, "# dynastate raw AES keyring: id:base64, the first key encrypts\n" + line, { mode: 0o600, flag: "wx" })
        } catch (error) {
          // Another process created it first: read theirs.
          if ((error as NodeJS.ErrnoException).code === "EEXIST") return false
          throw error
        }
        return true
      },
      catch: (cause) => fail(`cannot create key file ${file}: ${(cause as Error).message}`)
    })
    if (created) yield* Effect.logInfo(`created a new raw AES key file at ${file} (mode 0600)`)
    const text = yield* Effect.try({
      try: () => Redacted.make(fs.readFileSync(file, "utf8")),
      catch: (cause) => fail(`cannot read key file ${file}: ${(cause as Error).message}`)
    })
    return yield* parseKeyFile(text)
  })

/** A keyring over the given keys; the first encrypts. */
export const make = (keys: ReadonlyArray<WrappingKey>): Keyring["Service"] => {
  const byId = new Map(keys.map((key) => [key.id, key] as const))
  const current = keys[0]
  return Keyring.of({
    name: keyringName,
    current: current ? Effect.succeed(current) : Effect.fail(fail("no keys")),
    byId: (id) => {
      const key = byId.get(id)
      return key ? Effect.succeed(key) : Effect.fail(fail(`no key with id ${id} in this keyring`))
    }
  })
}

/** The keyring as a layer, from keys. */
export const layer = (keys: ReadonlyArray<WrappingKey>): Layer.Layer<Keyring> => Layer.succeed(Keyring, make(keys))

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
