import { afterAll, describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Redacted } from "effect"
import fc from "fast-check"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as util from "node:util"
import { Keyring, KeyringError } from "../../src/infra/crypto/Keyring.ts"
import type { EncryptionContext, WrappedKey } from "../../src/infra/crypto/Keyring.ts"
import * as RawAesKeyring from "../../src/infra/crypto/RawAesKeyring.ts"
import type { RawKey } from "../../src/infra/crypto/RawAesKeyring.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261125), numRuns: Number(process.env.FC_RUNS ?? 200) }

const secret = (bytes = 32): Buffer => randomBytes(bytes)
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64")
const materialOf = (key: RawKey): Buffer => Buffer.from(Redacted.value(key.material))
const plain = (secret: Redacted.Redacted<Uint8Array>): Buffer => Buffer.from(Redacted.value(secret))
const rawKey = (id: string, material: Uint8Array = secret()): RawKey => ({
  id,
  material: Redacted.make(new Uint8Array(material))
})
const context: EncryptionContext = {
  "dynastate:table": "t",
  "dynastate:namespace": "n",
  "dynastate:data-key": "dk-1",
  "dynastate:scope": ""
}

/** Runs an effect that must fail and returns its typed error. */
const failure = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<E, A> => Effect.flip(effect)

/** Every way a value might be shown in a log or error, joined. */
const renderings = (value: unknown): string =>
  [String(value), JSON.stringify(value), util.inspect(value, { depth: 10, showHidden: true }), `${value}`].join("\n")

/** Forms of the key material someone might find in a leak. */
const forms = (material: Uint8Array): ReadonlyArray<string> => {
  const buf = Buffer.from(material)
  return [
    buf.toString("base64"),
    buf.toString("base64").slice(0, 16),
    buf.toString("hex"),
    buf.toString("hex").slice(0, 16),
    buf.toString("base64url")
  ]
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
      expect(keyring.name).toBe("raw-aes:new")
      // the first key wraps new data keys; the older ones still unwrap
      const generated = yield* keyring.generate(context)
      expect(generated.wrapped.map((copy) => copy.keyId)).toEqual(["new"])
      const underOlder = yield* RawAesKeyring.make([keys[2]!]).generate(context)
      expect(plain(yield* keyring.unwrap(underOlder.wrapped, context)).equals(plain(underOlder.plaintext))).toBe(true)
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

  // Regression (found in src/infra/crypto/RawAesKeyring.ts:34-45 with make at :73-75): duplicate ids used to be accepted;
  // the keyring wrapped under the first key but looked ids up to the last, so it could not unwrap what it had just
  // wrapped. Expected: parseKeyFile rejects duplicate ids (or the keyring round-trips).
  it.effect("a key file with a duplicate id is rejected, or its keyring still unwraps what it wraps", () =>
    Effect.gen(function*() {
      const text = `dup:${b64(secret())}\ndup:${b64(secret())}\n`
      const parsed = yield* Effect.exit(RawAesKeyring.parseKeyFile(Redacted.make(text)))
      if (Exit.isFailure(parsed)) {
        expect(Cause.pretty(parsed.cause)).toContain("repeats the key id dup")
        return
      }
      const keyring = RawAesKeyring.make(parsed.value)
      const exit = yield* Effect.exit(
        Effect.flatMap(keyring.generate(context), (generated) => keyring.unwrap(generated.wrapped, context))
      )
      expect(Exit.isSuccess(exit) ? "ok" : Cause.pretty(exit.cause)).toBe("ok")
    }))
})

/** Flips one bit of a wrapped copy's ciphertext. */
const flipped = (copy: WrappedKey, index: number): WrappedKey => {
  const ciphertext = new Uint8Array(copy.ciphertext)
  ciphertext[index]! ^= 0x01
  return { ...copy, ciphertext }
}

/** The failure kind of a keyring call that must fail. */
const kindOf = <A>(effect: Effect.Effect<A, KeyringError>) =>
  Effect.map(failure(effect), (error) => {
    expect(error).toBeInstanceOf(KeyringError)
    expect(error.keyring).toBe("raw-aes")
    return error.failure
  })

describe("RawAesKeyring.make: generate, wrap, unwrap", () => {
  it.effect("generate makes a fresh 256-bit data key wrapped once under the current key, and unwrap gets it back", () =>
    Effect.gen(function*() {
      const keyring = RawAesKeyring.make([rawKey("a")])
      const one = yield* keyring.generate(context)
      const two = yield* keyring.generate(context)
      expect(plain(one.plaintext)).toHaveLength(32)
      expect(plain(one.plaintext).equals(plain(two.plaintext))).toBe(false)
      expect(one.wrapped).toHaveLength(1)
      expect(one.wrapped[0]).toMatchObject({ provider: "raw-aes", keyId: "a" })
      // iv (12) + encrypted key (32) + tag (16); the plaintext key is not in it
      expect(one.wrapped[0]!.ciphertext).toHaveLength(12 + 32 + 16)
      expect(Buffer.from(one.wrapped[0]!.ciphertext).includes(plain(one.plaintext))).toBe(false)
      expect(plain(yield* keyring.unwrap(one.wrapped, context)).equals(plain(one.plaintext))).toBe(true)
      expect(plain(yield* keyring.unwrap(two.wrapped, context)).equals(plain(two.plaintext))).toBe(true)
    }))

  it("wrap then unwrap round-trips any data key under any context; wrapping twice differs (property)", async () => {
    const keyring = RawAesKeyring.make([rawKey("a")])
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.dictionary(fc.string(), fc.string()),
        async (material, ctx) => {
          const secretKey = Redacted.make(material)
          const [one, two] = await Effect.runPromise(
            Effect.all([keyring.wrap(secretKey, ctx), keyring.wrap(secretKey, ctx)])
          )
          expect(Buffer.from(one![0]!.ciphertext).equals(Buffer.from(two![0]!.ciphertext))).toBe(false)
          const back = await Effect.runPromise(keyring.unwrap(one!, ctx))
          expect(plain(back).equals(Buffer.from(material))).toBe(true)
        }
      ),
      params
    )
  })

  it.effect("a wrapped key is bound to its context: any other context fails with invalid-ciphertext", () =>
    Effect.gen(function*() {
      const keyring = RawAesKeyring.make([rawKey("a")])
      const ctx: EncryptionContext = { a: "b:c", d: "e" }
      const { plaintext, wrapped } = yield* keyring.generate(ctx)
      // the same entries in another order are the same context
      expect(plain(yield* keyring.unwrap(wrapped, { d: "e", a: "b:c" })).equals(plain(plaintext))).toBe(true)
      for (
        const other of [{}, { a: "b:c" }, { a: "b:c", d: "f" }, { a: "b:c", d: "e", x: "" }, { "a:b": "c", d: "e" }, {
          a: "b",
          d: "e"
        }]
      ) {
        expect(yield* kindOf(keyring.unwrap(wrapped, other))).toBe("invalid-ciphertext")
      }
      // any two small contexts: unwrapping works exactly when they are equal (property)
      const ctxArb = fc.dictionary(fc.constantFrom("scope", "id", "x"), fc.constantFrom("", "1", "2"))
      const pairs = fc.sample(fc.tuple(ctxArb, ctxArb), { seed: params.seed, numRuns: 100 })
      const canonical = (ctx: EncryptionContext) => JSON.stringify(Object.entries(ctx).sort())
      for (const [a, b] of pairs) {
        const { wrapped } = yield* keyring.generate(a)
        const exit = yield* Effect.exit(keyring.unwrap(wrapped, b))
        expect(Exit.isSuccess(exit)).toBe(canonical(a) === canonical(b))
      }
    }))

  it.effect("a flipped bit anywhere in the wrapped key, or a truncated one, fails with invalid-ciphertext", () =>
    Effect.gen(function*() {
      const keyring = RawAesKeyring.make([rawKey("a")])
      const [copy] = (yield* keyring.generate(context)).wrapped
      for (let index = 0; index < copy!.ciphertext.length; index++) {
        expect(yield* kindOf(keyring.unwrap([flipped(copy!, index)], context))).toBe("invalid-ciphertext")
      }
      for (const length of [0, 1, 27, 28, 59]) {
        expect(yield* kindOf(keyring.unwrap([{ ...copy!, ciphertext: copy!.ciphertext.slice(0, length) }], context)))
          .toBe("invalid-ciphertext")
      }
    }))

  it.effect("unwrap only tries copies under its own key ids and provider: none means no-matching-key", () =>
    Effect.gen(function*() {
      const a = rawKey("a")
      const { wrapped } = yield* RawAesKeyring.make([a]).generate(context)
      expect(yield* kindOf(RawAesKeyring.make([rawKey("b")]).unwrap(wrapped, context))).toBe("no-matching-key")
      expect(yield* kindOf(RawAesKeyring.make([a]).unwrap([], context))).toBe("no-matching-key")
      expect(yield* kindOf(RawAesKeyring.make([a]).unwrap([{ ...wrapped[0]!, provider: "aws-kms" }], context))).toBe(
        "no-matching-key"
      )
      // the same id over other material is a match that does not authenticate
      expect(yield* kindOf(RawAesKeyring.make([rawKey("a")]).unwrap(wrapped, context))).toBe("invalid-ciphertext")
    }))

  it.effect("unwrap skips a copy that does not authenticate and uses the next one it holds a key for", () =>
    Effect.gen(function*() {
      const [a, b] = [rawKey("a"), rawKey("b")]
      const generated = yield* RawAesKeyring.make([a]).generate(context)
      const underB = yield* RawAesKeyring.make([b]).wrap(generated.plaintext, context)
      const copies = [
        { provider: "aws-kms", keyId: "arn:x", ciphertext: new Uint8Array(60) },
        flipped(generated.wrapped[0]!, 20),
        ...underB
      ]
      expect(plain(yield* RawAesKeyring.make([a, b]).unwrap(copies, context)).equals(plain(generated.plaintext))).toBe(
        true
      )
    }))

  it.effect("rotation: a keyring whose first key is new wraps under it and still unwraps data keys of older keys", () =>
    Effect.gen(function*() {
      const [older, newer] = [rawKey("k-2025"), rawKey("k-2026")]
      const before = yield* RawAesKeyring.make([older]).generate(context)
      const rotated = RawAesKeyring.make([newer, older])
      expect(rotated.name).toBe("raw-aes:k-2026")
      expect(plain(yield* rotated.unwrap(before.wrapped, context)).equals(plain(before.plaintext))).toBe(true)
      const after = yield* rotated.generate(context)
      expect(after.wrapped.map((copy) => copy.keyId)).toEqual(["k-2026"])
      expect((yield* rotated.wrap(before.plaintext, context)).map((copy) => copy.keyId)).toEqual(["k-2026"])
      // a process still on the old key alone cannot read what the new key wrapped
      expect(yield* kindOf(RawAesKeyring.make([older]).unwrap(after.wrapped, context))).toBe("no-matching-key")
    }))

  it.effect("an empty keyring cannot generate or wrap (invalid-key-material) and unwraps nothing", () =>
    Effect.gen(function*() {
      const empty = RawAesKeyring.make([])
      expect(empty.name).toBe("raw-aes:empty")
      const error = yield* failure(empty.generate(context))
      expect(error).toMatchObject({
        _tag: "KeyringError",
        failure: "invalid-key-material",
        reason: "the keyring has no key"
      })
      expect(yield* kindOf(empty.wrap(Redacted.make(new Uint8Array(32)), context))).toBe("invalid-key-material")
      const { wrapped } = yield* RawAesKeyring.make([rawKey("a")]).generate(context)
      expect(yield* kindOf(empty.unwrap(wrapped, context))).toBe("no-matching-key")
    }))

  it.effect("layerEphemeral gives a fresh fingerprinted key per build", () =>
    Effect.gen(function*() {
      const a = yield* Effect.service(Keyring).pipe(Effect.provide(RawAesKeyring.layerEphemeral))
      const b = yield* Effect.service(Keyring).pipe(Effect.provide(RawAesKeyring.layerEphemeral))
      expect(a.name).toMatch(/^raw-aes:raw-[0-9a-f]{16}$/)
      expect(a.name).not.toBe(b.name)
      const generated = yield* a.generate(context)
      expect(generated.wrapped[0]!.keyId).toBe(a.name.slice("raw-aes:".length))
      expect(plain(yield* a.unwrap(generated.wrapped, context)).equals(plain(generated.plaintext))).toBe(true)
      expect((yield* failure(b.unwrap(generated.wrapped, context))).failure).toBe("no-matching-key")
      // layer: the keyring of the given keys
      const fixed = rawKey("layered")
      const layered = yield* Effect.service(Keyring).pipe(Effect.provide(RawAesKeyring.layer([fixed])))
      expect(plain(yield* RawAesKeyring.make([fixed]).unwrap((yield* layered.generate(context)).wrapped, context)))
        .toHaveLength(32)
    }))

  it.effect("errors of wrap and unwrap never carry the data key or the master key", () =>
    Effect.gen(function*() {
      const a = rawKey("a")
      const generated = yield* RawAesKeyring.make([a]).generate(context)
      const errors = [
        yield* failure(RawAesKeyring.make([a]).unwrap([flipped(generated.wrapped[0]!, 30)], context)),
        yield* failure(RawAesKeyring.make([a]).unwrap(generated.wrapped, { other: "context" })),
        yield* failure(RawAesKeyring.make([rawKey("a")]).unwrap(generated.wrapped, context))
      ]
      const text = errors.map((error) => renderings(error) + error.message + Cause.pretty(Cause.fail(error))).join("\n")
      expectNoSecret(text, plain(generated.plaintext))
      expectNoSecret(text, materialOf(a))
      expectNoSecret(renderings(generated), plain(generated.plaintext))
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

  it.effect("layerFromFile provides a keyring whose data keys a restart (a second build from the file) unwraps", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "keys")
      const keyringOf = Effect.service(Keyring).pipe(Effect.provide(RawAesKeyring.layerFromFile(file)))
      const generated = yield* Effect.flatMap(keyringOf, (keyring) => keyring.generate(context))
      const back = yield* Effect.flatMap(keyringOf, (keyring) => keyring.unwrap(generated.wrapped, context))
      expect(plain(back).equals(plain(generated.plaintext))).toBe(true)
      // and a keyring from another file cannot
      const other = yield* Effect.service(Keyring).pipe(
        Effect.provide(RawAesKeyring.layerFromFile(path.join(tempDir(), "keys")))
      )
      expect((yield* failure(other.unwrap(generated.wrapped, context))).failure).toBe("no-matching-key")
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
