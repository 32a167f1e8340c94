import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as util from "node:util"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Redacted } from "effect"
import fc from "fast-check"
import { Keyring, KeyringError } from "../../src/infra/crypto/Keyring.ts"
import type { WrappingKey } from "../../src/infra/crypto/Keyring.ts"
import * as RawAesKeyring from "../../src/infra/crypto/RawAesKeyring.ts"
import * as ValueCipher from "../../src/infra/crypto/ValueCipher.ts"
import type { ValueBinding } from "../../src/infra/crypto/ValueCipher.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261125), numRuns: Number(process.env.FC_RUNS ?? 200) }

const secret = (bytes = 32): Buffer => randomBytes(bytes)
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64")
const materialOf = (key: WrappingKey): Buffer => Buffer.from(Redacted.value(key.material))
const binding: ValueBinding = {
  table: "t",
  namespace: "n",
  key: "/k",
  seq: 1,
  eventId: "e",
  op: "put",
  expires: undefined,
  valueRevision: undefined
}

/** Runs an effect that must fail and returns its typed error. */
const failure = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<E, A> => Effect.flip(effect)

/** Every way a value might be shown in a log or error, joined. */
const renderings = (value: unknown): string =>
  [String(value), JSON.stringify(value), util.inspect(value, { depth: 10, showHidden: true }), `${value}`].join("\n")

/** Forms of the key material someone might find in a leak. */
const forms = (material: Uint8Array): ReadonlyArray<string> => {
  const buf = Buffer.from(material)
  return [buf.toString("base64"), buf.toString("base64").slice(0, 16), buf.toString("hex"), buf.toString("hex").slice(0, 16), buf.toString("base64url")]
}
const expectNoSecret = (text: string, material: Uint8Array) => {
  for (const form of forms(material)) expect(text).not.toContain(form)
  // Node prints Uint8Array contents as "<Buffer 12 34 ..>" or "[ 18, 52, ...]"
  expect(text).not.toContain(Array.from(material.subarray(0, 6)).join(", "))
}

const tempDirs: Array<string> = []
const tempDir = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-keyring-"))
  tempDirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
})

describe("RawAesKeyring.keyFromBase64", () => {
  it.effect("accepts 32 bytes and defaults the id to a fingerprint", () =>
    Effect.gen(function*() {
      const material = secret()
      const key = yield* RawAesKeyring.keyFromBase64(Redacted.make(b64(material)))
      expect(materialOf(key).equals(material)).toBe(true)
      expect(key.id).toBe(RawAesKeyring.fingerprint(material))
      expect(key.id).toMatch(/^raw-[0-9a-f]{16}$/)
    }))

  it.effect("uses the given id and ignores surrounding whitespace", () =>
    Effect.gen(function*() {
      const material = secret()
      const key = yield* RawAesKeyring.keyFromBase64(Redacted.make(`  ${b64(material)}\r\n`), "my-key")
      expect(key.id).toBe("my-key")
      expect(materialOf(key).equals(material)).toBe(true)
    }))

  it.effect("rejects every length other than 32 bytes, without echoing the input", () =>
    Effect.gen(function*() {
      for (const length of [0, 1, 16, 24, 31, 33, 48, 64]) {
        const material = secret(length)
        const error = yield* failure(RawAesKeyring.keyFromBase64(Redacted.make(b64(material))))
        expect(error).toBeInstanceOf(KeyringError)
        expect(error._tag).toBe("KeyringError")
        expect(error.keyring).toBe("raw-aes")
        expect(error.reason).toContain("32 bytes in base64")
        if (length >= 8) expectNoSecret(renderings(error) + error.message, material)
      }
    }))

  it("rejects every wrong length (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 80 }).filter((u) => u.length !== 32), async (material) => {
        const exit = await Effect.runPromise(Effect.exit(RawAesKeyring.keyFromBase64(Redacted.make(b64(material)))))
        expect(Exit.isFailure(exit)).toBe(true)
      }),
      params
    )
  })
})

describe("RawAesKeyring.fingerprint", () => {
  it("is deterministic, differs between keys, and reveals nothing of the key", () => {
    const a = secret()
    const b = secret()
    expect(RawAesKeyring.fingerprint(a)).toBe(RawAesKeyring.fingerprint(new Uint8Array(a)))
    expect(RawAesKeyring.fingerprint(a)).not.toBe(RawAesKeyring.fingerprint(b))
    expectNoSecret(RawAesKeyring.fingerprint(a), a)
  })
})

describe("RawAesKeyring.parseKeyFile", () => {
  it.effect("reads id:base64 lines, skipping comments and blank lines; the first key is current", () =>
    Effect.gen(function*() {
      const [m1, m2, m3] = [secret(), secret(), secret()]
      const text = [
        "# dynastate raw AES keyring",
        "",
        `  new:${b64(m1)}  `,
        "   # an indented comment",
        `old:${b64(m2)}\r`,
        `older:${b64(m3)}`,
        ""
      ].join("\n")
      const keys = yield* RawAesKeyring.parseKeyFile(Redacted.make(text))
      expect(keys.map((k) => k.id)).toEqual(["new", "old", "older"])
      expect(materialOf(keys[0]!).equals(m1)).toBe(true)
      expect(materialOf(keys[1]!).equals(m2)).toBe(true)
      expect(materialOf(keys[2]!).equals(m3)).toBe(true)
      const keyring = RawAesKeyring.make(keys)
      expect(keyring.name).toBe("raw-aes")
      expect((yield* keyring.current).id).toBe("new")
      expect(materialOf(yield* keyring.byId("older")).equals(m3)).toBe(true)
    }))

  it.effect("accepts a single key with no trailing newline", () =>
    Effect.gen(function*() {
      const keys = yield* RawAesKeyring.parseKeyFile(Redacted.make(`k:${b64(secret())}`))
      expect(keys).toHaveLength(1)
      expect(keys[0]!.id).toBe("k")
    }))

  it.effect("rejects a file with no key", () =>
    Effect.gen(function*() {
      for (const text of ["", "\n\n", "# only a comment\n  # and another\n"]) {
        const error = yield* failure(RawAesKeyring.parseKeyFile(Redacted.make(text)))
        expect(error).toBeInstanceOf(KeyringError)
        expect(error.reason).toMatch(/no key/)
      }
    }))

  it.effect("rejects a line without an id or colon, without echoing the line", () =>
    Effect.gen(function*() {
      const material = secret()
      for (const line of [b64(material), `:${b64(material)}`]) {
        const error = yield* failure(RawAesKeyring.parseKeyFile(Redacted.make(`${line}\n`)))
        expect(error.reason).toMatch(/not id:base64/)
        expectNoSecret(renderings(error) + error.message, material)
      }
    }))

  it.effect("rejects a key of the wrong length anywhere in the file, without echoing it", () =>
    Effect.gen(function*() {
      const short = secret(31)
      const error = yield* failure(RawAesKeyring.parseKeyFile(Redacted.make(`a:${b64(secret())}\nb:${b64(short)}\n`)))
      expect(error.reason).toMatch(/32 bytes/)
      expectNoSecret(renderings(error) + error.message, short)
    }))

  // Regression (found in src/infra/crypto/RawAesKeyring.ts:36-41): the line number in the error counts only non-comment,
  // non-blank lines, so with the header comment that loadOrCreateKeyFile itself writes, an error on the
  // file's 3rd line says "line 2". Expected: the line number in the file.
  it.effect("names the bad line by its line number in the file", () =>
    Effect.gen(function*() {
      const text = `# header\nk1:${b64(secret())}\nnot-a-key-line\n`
      const error = yield* failure(RawAesKeyring.parseKeyFile(Redacted.make(text)))
      expect(error.reason).toContain("line 3")
    }))

  // Regression (found in src/infra/crypto/RawAesKeyring.ts:34-45 with make at :73-75): duplicate ids are accepted; `make`
  // encrypts under the first key but its `byId` map keeps the last key with that id, so the keyring cannot
  // decrypt what it just encrypted ("key commitment does not match"). Expected: parseKeyFile rejects duplicate
  // ids (or the keyring round-trips).
  it.effect("a key file with a duplicate id is rejected, or its keyring still decrypts what it encrypts", () =>
    Effect.gen(function*() {
      const text = `dup:${b64(secret())}\ndup:${b64(secret())}\n`
      const parsed = yield* Effect.exit(RawAesKeyring.parseKeyFile(Redacted.make(text)))
      if (Exit.isFailure(parsed)) return
      const roundTrip = Effect.gen(function*() {
        const ciphertext = yield* ValueCipher.encrypt(new Uint8Array([1, 2, 3]), binding)
        return yield* ValueCipher.decrypt(ciphertext, binding)
      }).pipe(Effect.provide(RawAesKeyring.layer(parsed.value)))
      const exit = yield* Effect.exit(roundTrip)
      expect(Exit.isSuccess(exit) ? "ok" : Cause.pretty(exit.cause)).toBe("ok")
    }))
})

describe("RawAesKeyring.make / layer", () => {
  it.effect("byId fails with a KeyringError for an unknown id; an empty keyring has no current key", () =>
    Effect.gen(function*() {
      const keyring = RawAesKeyring.make([{ id: "a", material: Redacted.make(new Uint8Array(secret())) }])
      const error = yield* failure(keyring.byId("b"))
      expect(error).toMatchObject({ _tag: "KeyringError", keyring: "raw-aes" })
      expect(error.reason).toContain("b")
      const empty = RawAesKeyring.make([])
      expect((yield* failure(empty.current)).reason).toBe("no keys")
    }))

  it.effect("layerEphemeral gives a fresh fingerprinted key per build", () =>
    Effect.gen(function*() {
      const a = yield* Keyring.use((k) => k.current).pipe(Effect.provide(RawAesKeyring.layerEphemeral))
      const b = yield* Keyring.use((k) => k.current).pipe(Effect.provide(RawAesKeyring.layerEphemeral))
      expect(a.id).toBe(RawAesKeyring.fingerprint(Redacted.value(a.material)))
      expect(a.id).not.toBe(b.id)
      expect(Redacted.value(a.material)).toHaveLength(32)
    }))
})

describe("RawAesKeyring.loadOrCreateKeyFile", () => {
  it.effect("creates the file (and its directories) with mode 0600, and a second call reads the same key", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const file = path.join(dir, "nested", "deeper", "keys")
      expect(fs.existsSync(file)).toBe(false)
      const first = yield* RawAesKeyring.loadOrCreateKeyFile(file)
      expect(first).toHaveLength(1)
      const stat = fs.statSync(file)
      expect(stat.isFile()).toBe(true)
      expect(stat.mode & 0o777).toBe(0o600)
      expect(fs.statSync(path.dirname(file)).mode & 0o077).toBe(0)
      expect(first[0]!.id).toBe(RawAesKeyring.fingerprint(Redacted.value(first[0]!.material)))
      expect(Redacted.value(first[0]!.material)).toHaveLength(32)
      const text = fs.readFileSync(file, "utf8")
      expect(text.startsWith("#")).toBe(true)
      expect(text).toContain(`${first[0]!.id}:${b64(Redacted.value(first[0]!.material))}`)

      const second = yield* RawAesKeyring.loadOrCreateKeyFile(file)
      expect(second.map((k) => k.id)).toEqual(first.map((k) => k.id))
      expect(materialOf(second[0]!).equals(materialOf(first[0]!))).toBe(true)
      expect(fs.readFileSync(file, "utf8")).toBe(text)
    }))

  it.effect("two different files get different keys", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const [a] = yield* RawAesKeyring.loadOrCreateKeyFile(path.join(dir, "a"))
      const [b] = yield* RawAesKeyring.loadOrCreateKeyFile(path.join(dir, "b"))
      expect(a!.id).not.toBe(b!.id)
      expect(materialOf(a!).equals(materialOf(b!))).toBe(false)
    }))

  it.effect("reads an existing file without rewriting it", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "keys")
      const material = secret()
      fs.writeFileSync(file, `mine:${b64(material)}\n`, { mode: 0o600 })
      const keys = yield* RawAesKeyring.loadOrCreateKeyFile(file)
      expect(keys.map((k) => k.id)).toEqual(["mine"])
      expect(materialOf(keys[0]!).equals(material)).toBe(true)
      expect(fs.readFileSync(file, "utf8")).toBe(`mine:${b64(material)}\n`)
    }))

  it.effect("fails with a KeyringError, without secrets, for a bad existing file", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "keys")
      const material = secret(30)
      fs.writeFileSync(file, `bad:${b64(material)}\n`)
      const error = yield* failure(RawAesKeyring.loadOrCreateKeyFile(file))
      expect(error).toBeInstanceOf(KeyringError)
      expectNoSecret(renderings(error) + error.message, material)
    }))

  it.effect("fails with a KeyringError naming the file when it cannot be read", () =>
    Effect.gen(function*() {
      const dir = tempDir() // a directory exists at the path, so reading it fails
      const error = yield* failure(RawAesKeyring.loadOrCreateKeyFile(dir))
      expect(error).toBeInstanceOf(KeyringError)
      expect(error.reason).toContain("cannot read key file")
      expect(error.reason).toContain(dir)
    }))

  it.effect("fails with a KeyringError when the directory cannot be created", () =>
    Effect.gen(function*() {
      const blocker = path.join(tempDir(), "file")
      fs.writeFileSync(blocker, "")
      const error = yield* failure(RawAesKeyring.loadOrCreateKeyFile(path.join(blocker, "keys")))
      expect(error.reason).toContain("cannot create key file")
    }))

  it.effect("layerFromFile provides a keyring that round-trips values", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "keys")
      const value = new Uint8Array([9, 8, 7])
      const ciphertext = yield* ValueCipher.encrypt(value, binding).pipe(Effect.provide(RawAesKeyring.layerFromFile(file)))
      // A second layer built from the same file (a restart) decrypts it.
      const back = yield* ValueCipher.decrypt(ciphertext, binding).pipe(Effect.provide(RawAesKeyring.layerFromFile(file)))
      expect(Array.from(back)).toEqual([9, 8, 7])
    }))
})

describe("secrets stay redacted", () => {
  it.effect("String, JSON.stringify and util.inspect of a key show no key material", () =>
    Effect.gen(function*() {
      const material = secret()
      const key = yield* RawAesKeyring.keyFromBase64(Redacted.make(b64(material)), "k1")
      const text = renderings(key) + renderings(key.material) + renderings([key]) + renderings({ nested: { key } })
      expectNoSecret(text, material)
      expect(JSON.stringify(key)).toBe(`{"id":"k1","material":"<redacted>"}`)
      expect(String(key.material)).toBe("<redacted>")
      expect(util.inspect(key)).toContain("k1")
      // The material is still there for whoever asks explicitly.
      expect(materialOf(key).equals(material)).toBe(true)
    }))

  it.effect("keys from a parsed file and from a created file are redacted too", () =>
    Effect.gen(function*() {
      const material = secret()
      const [parsed] = yield* RawAesKeyring.parseKeyFile(Redacted.make(`p:${b64(material)}\n`))
      expectNoSecret(renderings(parsed), material)
      const [created] = yield* RawAesKeyring.loadOrCreateKeyFile(path.join(tempDir(), "keys"))
      expectNoSecret(renderings(created), materialOf(created!))
      const keyring = RawAesKeyring.make([parsed!, created!])
      expectNoSecret(renderings(keyring), material)
      expectNoSecret(renderings(keyring), materialOf(created!))
    }))

  it.effect("no KeyringError from a key file carries the key text", () =>
    Effect.gen(function*() {
      const material = secret()
      const texts = [
        `${b64(material)}`, // missing id
        `id:${b64(material).slice(0, 40)}`, // decodes to 30 bytes
        `id:${b64(Buffer.concat([material, material]))}`
      ]
      for (const text of texts) {
        const error = yield* failure(RawAesKeyring.parseKeyFile(Redacted.make(text)))
        expectNoSecret(renderings(error) + error.message + Cause.pretty(Cause.fail(error)), material)
      }
    }))
})
