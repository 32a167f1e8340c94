import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted, Result } from "effect"
import fc from "fast-check"
import { randomBytes } from "node:crypto"
import { DecryptionFailed, Shredded, StorageFailure } from "../../src/domain/Errors.ts"
import { DataKeyNotFound, DataKeys, DataKeyShredded } from "../../src/infra/crypto/DataKeys.ts"
import type { DataKey, DataKeyError } from "../../src/infra/crypto/DataKeys.ts"
import { Keyring, KeyringError } from "../../src/infra/crypto/Keyring.ts"
import type { KeyringFailure } from "../../src/infra/crypto/Keyring.ts"
import * as RawAesKeyring from "../../src/infra/crypto/RawAesKeyring.ts"
import * as ValueCipher from "../../src/infra/crypto/ValueCipher.ts"
import type { ValueBinding } from "../../src/infra/crypto/ValueCipher.ts"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import { makeClient, provisionTable, testKeyring } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261125), numRuns: Number(process.env.FC_RUNS ?? 200) }

const makeKey = (id: string, material: Uint8Array = new Uint8Array(randomBytes(32))): DataKey => ({
  id,
  material: Redacted.make(material)
})
const key = makeKey("key-1")
const binding: ValueBinding = {
  table: "dynastate",
  namespace: "default",
  key: "/users/alice",
  seq: 7,
  eventId: "01JEVENTID",
  op: "put",
  expires: 1_750_000_000_000,
  valueRevision: undefined,
  timestamp: 1_750_000_000_000
}
const plaintext = new TextEncoder().encode("hello, world")

const decrypted = (result: Result.Result<Uint8Array, string>): Uint8Array => {
  if (Result.isFailure(result)) throw new Error(`expected decryption to succeed, got: ${result.failure}`)
  return result.success
}
const reasonOf = (result: Result.Result<Uint8Array, string>): string => {
  if (Result.isSuccess(result)) throw new Error(`expected decryption to fail, got ${result.success.length} bytes`)
  expect(typeof result.failure).toBe("string")
  expect(result.failure.length).toBeGreaterThan(0)
  return result.failure
}
const same = (a: Uint8Array, b: Uint8Array) => expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true)

describe("ValueCipher.encryptWith / decryptWith", () => {
  it("round-trips arbitrary values (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (value) => {
        const ciphertext = ValueCipher.encryptWith(key, value, binding)
        same(decrypted(ValueCipher.decryptWith(key, ciphertext, binding)), value)
      }),
      params
    )
  })

  it("round-trips the empty value and a 64 KiB value", () => {
    for (const value of [new Uint8Array(0), new Uint8Array(randomBytes(64 * 1024))]) {
      const ciphertext = ValueCipher.encryptWith(key, value, binding)
      expect(ciphertext.length).toBe(value.length + ValueCipher.overheadBytes(key.id.length))
      same(decrypted(ValueCipher.decryptWith(key, ciphertext, binding)), value)
    }
  })

  it("round-trips under every binding (property)", () => {
    const bindingArb: fc.Arbitrary<ValueBinding> = fc.record({
      table: fc.string(),
      namespace: fc.string(),
      key: fc.string({ unit: "binary", minLength: 1 }),
      seq: fc.nat(),
      eventId: fc.string(),
      op: fc.constantFrom("put", "delete", "expire", "keep-alive"),
      expires: fc.option(fc.nat(), { nil: undefined }),
      valueRevision: fc.option(fc.string(), { nil: undefined }),
      timestamp: fc.nat()
    })
    fc.assert(
      fc.property(bindingArb, fc.uint8Array({ maxLength: 64 }), (b, value) => {
        same(decrypted(ValueCipher.decryptWith(key, ValueCipher.encryptWith(key, value, b), b)), value)
      }),
      params
    )
  })

  it("uses a fresh iv: the same value encrypts differently each time", () => {
    const a = ValueCipher.encryptWith(key, plaintext, binding)
    const b = ValueCipher.encryptWith(key, plaintext, binding)
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false)
    same(decrypted(ValueCipher.decryptWith(key, a, binding)), decrypted(ValueCipher.decryptWith(key, b, binding)))
  })

  it("does not contain the plaintext or the key material", () => {
    const secret = new TextEncoder().encode("a very recognisable secret value")
    const ciphertext = Buffer.from(ValueCipher.encryptWith(key, secret, binding))
    expect(ciphertext.includes(Buffer.from(secret))).toBe(false)
    expect(ciphertext.includes(Buffer.from(Redacted.value(key.material)))).toBe(false)
  })

  it("lays out version 2, key id length and key id first", () => {
    const ciphertext = ValueCipher.encryptWith(makeKey("kid"), plaintext, binding)
    expect(ciphertext[0]).toBe(2)
    expect(ciphertext[1]).toBe(3)
    expect(Buffer.from(ciphertext.subarray(2, 5)).toString("utf8")).toBe("kid")
    expect(ValueCipher.overheadBytes(3)).toBe(2 + 3 + 32 + 12 + 16)
    expect(ValueCipher.overheadBytes(3, 1)).toBe(2 + 3 + 32 + 32 + 12 + 16)
    expect(ciphertext.length).toBe(plaintext.length + ValueCipher.overheadBytes(3))
  })

  it("values under one data key share its commitment, each with its own iv", () => {
    const [a, b] = [0, 1].map(() => ValueCipher.encryptWith(key, plaintext, binding))
    const commitment = (c: Uint8Array) => Buffer.from(c.subarray(2 + key.id.length, 2 + key.id.length + 32))
    const iv = (c: Uint8Array) => Buffer.from(c.subarray(2 + key.id.length + 32, 2 + key.id.length + 44))
    expect(commitment(a!).equals(commitment(b!))).toBe(true)
    expect(iv(a!).equals(iv(b!))).toBe(false)
    const other = ValueCipher.encryptWith(makeKey(key.id), plaintext, binding)
    expect(commitment(a!).equals(commitment(other))).toBe(false)
  })

  describe("changing any binding field makes decryption fail", () => {
    const changes: ReadonlyArray<readonly [string, Partial<ValueBinding>]> = [
      ["table", { table: "dynastate2" }],
      ["namespace", { namespace: "other" }],
      ["key", { key: "/users/alicf" }],
      ["key (prefix)", { key: "/users/alic" }],
      ["seq", { seq: 8 }],
      ["eventId", { eventId: "01JEVENTIE" }],
      ["op", { op: "keep-alive" }],
      ["op (delete)", { op: "delete" }],
      ["expires", { expires: 1_750_000_000_001 }],
      ["expires removed", { expires: undefined }],
      ["valueRevision added", { valueRevision: "rev-1" }],
      ["valueRevision empty", { valueRevision: "" }],
      ["timestamp", { timestamp: 1 }]
    ]
    for (const [name, change] of changes) {
      it(name, () => {
        const ciphertext = ValueCipher.encryptWith(key, plaintext, binding)
        const reason = reasonOf(ValueCipher.decryptWith(key, ciphertext, { ...binding, ...change }))
        expect(reason).toMatch(/authentication failed/)
      })
    }

    it("valueRevision removed, and the field boundaries cannot be shifted", () => {
      const withRevision: ValueBinding = { ...binding, op: "keep-alive", valueRevision: "rev-1" }
      const ciphertext = ValueCipher.encryptWith(key, plaintext, withRevision)
      reasonOf(ValueCipher.decryptWith(key, ciphertext, { ...withRevision, valueRevision: undefined }))
      // Moving characters between adjacent fields keeps their concatenation but must still fail.
      const shifted = ValueCipher.encryptWith(key, plaintext, { ...binding, table: "ab", namespace: "c" })
      reasonOf(ValueCipher.decryptWith(key, shifted, { ...binding, table: "a", namespace: "bc" }))
    })

    it("any two different bindings (property)", () => {
      const small = <A>(...values: ReadonlyArray<A>) => fc.constantFrom(...values)
      const bindingArb: fc.Arbitrary<ValueBinding> = fc.record({
        table: small("t", "u"),
        namespace: small("n", "m"),
        key: small("/a", "/b"),
        seq: small(1, 2),
        eventId: small("e1", "e2"),
        op: small("put", "keep-alive"),
        expires: small(undefined, 0, 1),
        valueRevision: small(undefined, "", "r"),
        timestamp: small(1, 2)
      })
      fc.assert(
        fc.property(bindingArb, bindingArb, (a, b) => {
          const ciphertext = ValueCipher.encryptWith(key, plaintext, a)
          const result = ValueCipher.decryptWith(key, ciphertext, b)
          const equal = (Object.keys(a) as Array<keyof ValueBinding>).every((k) => a[k] === b[k])
          expect(Result.isSuccess(result)).toBe(equal)
        }),
        params
      )
    })
  })

  it("flipping any single bit fails with a reason and never returns bytes (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(), (value, n) => {
        const ciphertext = ValueCipher.encryptWith(key, value, binding)
        const bit = n % (ciphertext.length * 8)
        const tampered = new Uint8Array(ciphertext)
        tampered[bit >> 3]! ^= 1 << (bit & 7)
        reasonOf(ValueCipher.decryptWith(key, tampered, binding))
      }),
      params
    )
  })

  it("flipping each bit of the header fails (exhaustive)", () => {
    const ciphertext = ValueCipher.encryptWith(key, plaintext, binding)
    const headerBits = (2 + key.id.length + 32 + 12) * 8
    for (let bit = 0; bit < headerBits; bit++) {
      const tampered = new Uint8Array(ciphertext)
      tampered[bit >> 3]! ^= 1 << (bit & 7)
      reasonOf(ValueCipher.decryptWith(key, tampered, binding))
    }
  })

  it("a different key with the same id fails on the key commitment", () => {
    const ciphertext = ValueCipher.encryptWith(key, plaintext, binding)
    const impostor = makeKey(key.id)
    expect(reasonOf(ValueCipher.decryptWith(impostor, ciphertext, binding))).toMatch(/commitment/)
  })

  describe("a value read again (decrypted values are kept per data key)", () => {
    it("gives the same plaintext, a copy each time: changing one does not change the next", () => {
      const ciphertext = ValueCipher.encryptWith(key, plaintext, binding)
      const first = decrypted(ValueCipher.decryptWith(key, ciphertext, binding))
      first.fill(0)
      same(decrypted(ValueCipher.decryptWith(key, ciphertext, binding)), plaintext)
      const again = decrypted(ValueCipher.decryptWith(key, ciphertext, binding))
      again.fill(1)
      same(decrypted(ValueCipher.decryptWith(key, ciphertext, binding)), plaintext)
    })

    it("fails when any bit changed since it was read (property)", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(), (value, n) => {
          const ciphertext = ValueCipher.encryptWith(key, value, binding)
          same(decrypted(ValueCipher.decryptWith(key, ciphertext, binding)), value)
          const bit = n % (ciphertext.length * 8)
          const tampered = new Uint8Array(ciphertext)
          tampered[bit >> 3]! ^= 1 << (bit & 7)
          reasonOf(ValueCipher.decryptWith(key, tampered, binding))
          // A shorter or longer ciphertext than the one read is not it either.
          reasonOf(ValueCipher.decryptWith(key, ciphertext.subarray(0, ciphertext.length - 1), binding))
          reasonOf(ValueCipher.decryptWith(key, new Uint8Array([...ciphertext, 0]), binding))
        }),
        params
      )
    })

    it("fails when the very array it was read from is changed in place: what it keeps is its own copy", () => {
      const ciphertext = ValueCipher.encryptWith(key, plaintext, binding)
      same(decrypted(ValueCipher.decryptWith(key, ciphertext, binding)), plaintext)
      ciphertext[ciphertext.length - 1]! ^= 1
      reasonOf(ValueCipher.decryptWith(key, ciphertext, binding))
    })

    it("fails when any binding field differs from the one it was read with (property)", () => {
      const fields: ReadonlyArray<Partial<ValueBinding>> = [
        { table: "other" },
        { namespace: "other" },
        { key: "/users/alicf" },
        { seq: 8 },
        { op: "keep-alive" },
        { expires: undefined },
        { valueRevision: "rev-1" },
        { timestamp: 1 },
        { part: "key" }
      ]
      fc.assert(
        fc.property(fc.constantFrom(...fields), (change) => {
          const ciphertext = ValueCipher.encryptWith(key, plaintext, binding)
          same(decrypted(ValueCipher.decryptWith(key, ciphertext, binding)), plaintext)
          reasonOf(ValueCipher.decryptWith(key, ciphertext, { ...binding, ...change }))
        }),
        params
      )
    })

    it("is not opened by another data key object, even one with the same id", () => {
      const ciphertext = ValueCipher.encryptWith(key, plaintext, binding)
      same(decrypted(ValueCipher.decryptWith(key, ciphertext, binding)), plaintext)
      expect(reasonOf(ValueCipher.decryptWith(makeKey(key.id), ciphertext, binding))).toMatch(/commitment/)
      // The same material under a new object (a data key loaded again) decrypts it on its own.
      const reloaded: DataKey = { id: key.id, material: Redacted.make(new Uint8Array(Redacted.value(key.material))) }
      same(decrypted(ValueCipher.decryptWith(reloaded, ciphertext, binding)), plaintext)
    })

    it("keeps a value of up to 4 KiB, and decrypts a longer one each time", () => {
      for (const length of [4096, 4097, 65536]) {
        const value = new Uint8Array(randomBytes(length))
        const ciphertext = ValueCipher.encryptWith(key, value, binding)
        same(decrypted(ValueCipher.decryptWith(key, ciphertext, binding)), value)
        same(decrypted(ValueCipher.decryptWith(key, ciphertext, binding)), value)
        const tampered = new Uint8Array(ciphertext)
        tampered[tampered.length - 1]! ^= 1
        reasonOf(ValueCipher.decryptWith(key, tampered, binding))
      }
    })
  })

  it("a different key fails even if the header names it", () => {
    const other = makeKey("key-2")
    const ciphertext = ValueCipher.encryptWith(key, plaintext, binding)
    expect(reasonOf(ValueCipher.decryptWith(other, ciphertext, binding))).toMatch(/commitment/)
  })

  it("a truncated ciphertext fails at every length, without throwing", () => {
    for (const value of [new Uint8Array(0), plaintext]) {
      const ciphertext = ValueCipher.encryptWith(key, value, binding)
      for (let length = 0; length < ciphertext.length; length++) {
        const reason = reasonOf(ValueCipher.decryptWith(key, ciphertext.slice(0, length), binding))
        if (length < ValueCipher.overheadBytes(key.id.length)) expect(reason).toMatch(/truncated/)
      }
    }
  })

  it("extra trailing bytes fail", () => {
    const ciphertext = ValueCipher.encryptWith(key, plaintext, binding)
    const longer = new Uint8Array([...ciphertext, 0])
    reasonOf(ValueCipher.decryptWith(key, longer, binding))
  })

  it("an unknown version fails", () => {
    const ciphertext = ValueCipher.encryptWith(key, plaintext, binding)
    for (const version of [0, 3, 255]) {
      const tampered = new Uint8Array(ciphertext)
      tampered[0] = version
      expect(reasonOf(ValueCipher.decryptWith(key, tampered, binding))).toBe(`unknown ciphertext version ${version}`)
    }
  })

  // Regression (found in src/infra/crypto/ValueCipher.ts:69): the key id's length is written as one byte, so a key id
  // of 256+ UTF-8 bytes used to wrap (256 → 0) into a ciphertext naming the wrong key. It is refused now, and so is
  // an empty id (a header naming no key).
  it("a key id of 1 to 255 bytes round-trips; an empty one or one of 256+ bytes is refused at encryption", () => {
    for (const id of ["k", "x".repeat(255), "é".repeat(127)]) {
      const idKey = makeKey(id)
      const ciphertext = ValueCipher.encryptWith(idKey, plaintext, binding)
      expect(ValueCipher.keyIdOf(ciphertext)).toEqual(Result.succeed(id))
      same(decrypted(ValueCipher.decryptWith(idKey, ciphertext, binding)), plaintext)
    }
    for (const id of ["", "x".repeat(256), "é".repeat(128)]) {
      expect(() => ValueCipher.encryptWith(makeKey(id), plaintext, binding)).toThrow(RangeError)
    }
  })

  // Regression (found in src/infra/crypto/ValueCipher.ts:93 and :102): decryptWith finds the salt by re-encoding the decoded key
  // id (`Buffer.byteLength(id, "utf8")`) instead of using the length byte. Key-id bytes that are not valid
  // UTF-8 decode to U+FFFD (3 bytes each), the offsets shift past the end, the commitment slice is shorter than
  // 32 bytes and `timingSafeEqual` throws RangeError — so a tampered ciphertext makes decryptWith throw (and
  // `decrypt` die with a defect) instead of returning a failure.
  it("a tampered key id that is not valid UTF-8 fails with a reason instead of throwing", () => {
    const ciphertext = ValueCipher.encryptWith(makeKey("k".repeat(20)), new Uint8Array(0), binding)
    const tampered = new Uint8Array(ciphertext)
    tampered.fill(0x80, 2, 22)
    let result: Result.Result<Uint8Array, string> | undefined
    expect(() => {
      result = ValueCipher.decryptWith(makeKey("k".repeat(20)), tampered, binding)
    }).not.toThrow()
    reasonOf(result!)
  })
})

/**
 * Tables in the wild hold values written in version 1 (a key derived per value from a salt): they must keep
 * reading. This one was written by version 1's `encryptWith` under a fixed key.
 */
describe("ValueCipher.decryptWith on version 1 values", () => {
  const v1Key = makeKey(
    "key-1",
    new Uint8Array(Buffer.from("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "hex"))
  )
  const v1 = new Uint8Array(Buffer.from(
    "01056b65792d3113cf37d603e69f8e441ec12cbdbb93b4cc4a9ed81753acfdd247472c4d1064a7f6843f0bd7494812ffead066f0b21901" +
      "a62f6445154cc0e003ac886574eaa11f12947583ea19f84b6ce539fa8caf5e55a1e4cb5c3499c0e3b9e98de304f0164291055745f66d9830",
    "hex"
  ))

  it("decrypts a version 1 value and names its data key", () => {
    expect(v1[0]).toBe(1)
    expect(ValueCipher.keyIdOf(v1)).toEqual(Result.succeed("key-1"))
    expect(v1.length).toBe(plaintext.length + ValueCipher.overheadBytes(5, 1))
    same(decrypted(ValueCipher.decryptWith(v1Key, v1, binding)), plaintext)
  })

  it("fails under another binding, another key with its id, or any flipped bit", () => {
    reasonOf(ValueCipher.decryptWith(v1Key, v1, { ...binding, seq: 8 }))
    expect(reasonOf(ValueCipher.decryptWith(makeKey("key-1"), v1, binding))).toMatch(/commitment/)
    for (let bit = 0; bit < v1.length * 8; bit++) {
      const tampered = new Uint8Array(v1)
      tampered[bit >> 3]! ^= 1 << (bit & 7)
      reasonOf(ValueCipher.decryptWith(v1Key, tampered, binding))
    }
  })

  it("a truncated version 1 value fails at every length", () => {
    for (let length = 0; length < v1.length; length++) {
      const reason = reasonOf(ValueCipher.decryptWith(v1Key, v1.slice(0, length), binding))
      if (length < ValueCipher.overheadBytes(5, 1)) expect(reason).toMatch(/truncated/)
    }
  })
})

describe("ValueCipher.keyIdOf", () => {
  it("reads the key id, including multi-byte ids", () => {
    for (const id of ["key-1", "clé-🔑", "raw-0123456789abcdef", "x".repeat(255)]) {
      const ciphertext = ValueCipher.encryptWith(makeKey(id), plaintext, binding)
      expect(ValueCipher.keyIdOf(ciphertext)).toEqual(Result.succeed(id))
    }
  })

  it("reads each value's own id when ids of one length alternate (the last id read is remembered by its bytes)", () => {
    const ids = ["key-a", "key-b", "kéy-", "key-a"]
    const ciphertexts = ids.map((id) => ValueCipher.encryptWith(makeKey(id), plaintext, binding))
    for (let round = 0; round < 3; round++) {
      ciphertexts.forEach((ciphertext, i) => expect(ValueCipher.keyIdOf(ciphertext)).toEqual(Result.succeed(ids[i])))
    }
    // The id is read from the ciphertext, not from the buffer it was first read from: editing that buffer later
    // changes nothing.
    const edited = ValueCipher.encryptWith(makeKey("key-c"), plaintext, binding)
    expect(ValueCipher.keyIdOf(edited)).toEqual(Result.succeed("key-c"))
    edited[2 + 4] = "d".charCodeAt(0)
    expect(ValueCipher.keyIdOf(edited)).toEqual(Result.succeed("key-d"))
  })

  it("fails on short, truncated or unknown-version input", () => {
    const reason = (bytes: Uint8Array) => {
      const result = ValueCipher.keyIdOf(bytes)
      if (Result.isSuccess(result)) throw new Error(`expected failure, got id ${result.success}`)
      return result.failure
    }
    expect(reason(new Uint8Array(0))).toMatch(/truncated/)
    expect(reason(new Uint8Array([1]))).toMatch(/truncated/)
    expect(reason(new Uint8Array([1, 3, 0x6b]))).toMatch(/truncated/)
    expect(reason(new Uint8Array(ValueCipher.overheadBytes(3) - 1).fill(3, 1, 2).fill(2, 0, 1))).toMatch(/truncated/)
    expect(reason(new Uint8Array(ValueCipher.overheadBytes(3, 1) - 1).fill(3, 1, 2).fill(1, 0, 1))).toMatch(/truncated/)
    expect(reason(new Uint8Array([3, 0, ...new Uint8Array(200)]))).toMatch(/unknown ciphertext version 3/)
  })
})

/** The failures an in-test `DataKeys` can be told to give. */
type Refusal = DataKeyError | DataKeyNotFound | DataKeyShredded

/** An in-memory `DataKeys` over fixed keys that records what it was asked; `refuse` makes lookups fail instead. */
const memoryDataKeys = (keys: ReadonlyArray<DataKey>, refuse?: Refusal) => {
  const asked = { encryption: [] as Array<readonly [string, number]>, decryption: [] as Array<string> }
  const byId = new Map(keys.map((k) => [k.id, k] as const))
  const service = DataKeys.of({
    scopeOf: (k) => `scope-of:${k}`,
    forEncryption: (scope, bytes) =>
      Effect.suspend(() => {
        asked.encryption.push([scope, bytes])
        return refuse && refuse._tag !== "DataKeyNotFound" && refuse._tag !== "DataKeyShredded"
          ? Effect.fail(refuse)
          : Effect.succeed(keys[0]!)
      }),
    forDecryption: (id) =>
      Effect.suspend(() => {
        asked.decryption.push(id)
        if (refuse) return Effect.fail(refuse)
        const found = byId.get(id)
        return found ? Effect.succeed(found) : Effect.fail(new DataKeyNotFound({ dataKey: id }))
      }),
    rewrap: () => Effect.die("not used"),
    named: () => Effect.die("not used"),
    shred: () => Effect.die("not used")
  })
  return { asked, layer: Layer.succeed(DataKeys, service) }
}

/** The error as a `DecryptionFailed` naming the binding's key and seq. */
const expectDecryptionFailed = (error: unknown, b: ValueBinding = binding): DecryptionFailed => {
  expect(error).toBeInstanceOf(DecryptionFailed)
  expect(error).toMatchObject({ _tag: "DecryptionFailed", key: b.key, seq: b.seq })
  return error as DecryptionFailed
}

describe("ValueCipher.encrypt / decrypt through DataKeys", () => {
  const old = makeKey("dk-old")
  const current = makeKey("dk-current")

  it.effect("encrypts under the data key of the key's scope, asking for the value's size, and decrypts", () => {
    const dataKeys = memoryDataKeys([current, old])
    return Effect.gen(function*() {
      const ciphertext = yield* ValueCipher.encrypt(plaintext, binding)
      expect(dataKeys.asked.encryption).toEqual([[`scope-of:${binding.key}`, plaintext.length]])
      expect(ValueCipher.keyIdOf(ciphertext)).toEqual(Result.succeed("dk-current"))
      expect(ciphertext.length).toBe(plaintext.length + ValueCipher.overheadBytes("dk-current".length))
      same(yield* ValueCipher.decrypt(ciphertext, binding), plaintext)
      expect(dataKeys.asked.decryption).toEqual(["dk-current"])
    }).pipe(Effect.provide(dataKeys.layer))
  })

  it.effect("decrypts a value under an older data key: the header says which one", () => {
    const dataKeys = memoryDataKeys([current, old])
    return Effect.gen(function*() {
      const earlier = ValueCipher.encryptWith(old, plaintext, binding)
      same(yield* ValueCipher.decrypt(earlier, binding), plaintext)
      expect(dataKeys.asked.decryption).toEqual(["dk-old"])
    }).pipe(Effect.provide(dataKeys.layer))
  })

  it.effect("fails with DecryptionFailed naming key and seq when the binding differs", () =>
    Effect.gen(function*() {
      const ciphertext = yield* ValueCipher.encrypt(plaintext, binding)
      const moved: ValueBinding = { ...binding, key: "/users/bob", seq: 3 }
      const error = expectDecryptionFailed(yield* Effect.flip(ValueCipher.decrypt(ciphertext, moved)), moved)
      expect(error.reason).toMatch(/authentication failed/)
      expect(error.message).toContain("/users/bob")
      expect(error.message).toContain("seq 3")
    }).pipe(Effect.provide(memoryDataKeys([current]).layer)))

  it.effect("fails with DecryptionFailed naming the data key when it does not exist", () =>
    Effect.gen(function*() {
      const ciphertext = ValueCipher.encryptWith(makeKey("retired-key"), plaintext, binding)
      const error = expectDecryptionFailed(yield* Effect.flip(ValueCipher.decrypt(ciphertext, binding)))
      expect(error.reason).toContain("retired-key")
    }).pipe(Effect.provide(memoryDataKeys([current]).layer)))

  it.effect("fails with DecryptionFailed on the key commitment for an impostor key with a known id", () =>
    Effect.gen(function*() {
      const ciphertext = ValueCipher.encryptWith(makeKey("dk-current"), plaintext, binding)
      const error = expectDecryptionFailed(yield* Effect.flip(ValueCipher.decrypt(ciphertext, binding)))
      expect(error.reason).toMatch(/commitment/)
    }).pipe(Effect.provide(memoryDataKeys([current]).layer)))

  it.effect("fails with DecryptionFailed for truncated or unknown-version input, before asking for a data key", () => {
    const dataKeys = memoryDataKeys([current])
    return Effect.gen(function*() {
      expect(expectDecryptionFailed(yield* Effect.flip(ValueCipher.decrypt(new Uint8Array([1]), binding))).reason)
        .toMatch(/truncated/)
      const unknownVersion = ValueCipher.encryptWith(current, plaintext, binding)
      unknownVersion[0] = 9
      expect(expectDecryptionFailed(yield* Effect.flip(ValueCipher.decrypt(unknownVersion, binding))).reason).toMatch(
        /version 9/
      )
      expect(dataKeys.asked.decryption).toEqual([])
    }).pipe(Effect.provide(dataKeys.layer))
  })

  it.effect("fails with DecryptionFailed for any flipped bit of the body or tag", () =>
    Effect.gen(function*() {
      const ciphertext = yield* ValueCipher.encrypt(plaintext, binding)
      const bodyStart = ValueCipher.overheadBytes("dk-current".length) - 16
      for (let index = bodyStart; index < ciphertext.length; index++) {
        const tampered = new Uint8Array(ciphertext)
        tampered[index]! ^= 0x10
        expectDecryptionFailed(yield* Effect.flip(ValueCipher.decrypt(tampered, binding)))
      }
    }).pipe(Effect.provide(memoryDataKeys([current]).layer)))

  it.effect("a shredded data key gives Shredded with key, seq and scope", () =>
    Effect.gen(function*() {
      const ciphertext = ValueCipher.encryptWith(current, plaintext, binding)
      const error = yield* Effect.flip(ValueCipher.decrypt(ciphertext, binding))
      expect(error).toBeInstanceOf(Shredded)
      expect(error).toMatchObject({ _tag: "Shredded", key: binding.key, seq: binding.seq, scope: "/users/alice" })
    }).pipe(
      Effect.provide(
        memoryDataKeys([current], new DataKeyShredded({ dataKey: "dk-current", scope: "/users/alice" })).layer
      )
    ))

  const keyringError = (failure: typeof KeyringFailure.Type) =>
    new KeyringError({ keyring: "test", failure, reason: `said ${failure}` })

  it.effect("a keyring that cannot open the data key means DecryptionFailed; one that refuses or is down keeps its KeyringError", () =>
    Effect.gen(function*() {
      const ciphertext = ValueCipher.encryptWith(current, plaintext, binding)
      for (const failure of ["invalid-ciphertext", "wrong-key", "no-matching-key"] as const) {
        const error = yield* Effect.flip(
          ValueCipher.decrypt(ciphertext, binding).pipe(
            Effect.provide(memoryDataKeys([current], keyringError(failure)).layer)
          )
        )
        expect(expectDecryptionFailed(error).reason).toContain(`said ${failure}`)
      }
      for (
        const failure of [
          "access-denied",
          "key-disabled",
          "key-pending-deletion",
          "key-not-found",
          "throttled",
          "unavailable"
        ] as const
      ) {
        const error = yield* Effect.flip(
          ValueCipher.decrypt(ciphertext, binding).pipe(
            Effect.provide(memoryDataKeys([current], keyringError(failure)).layer)
          )
        )
        expect(error).toBeInstanceOf(KeyringError)
        expect(error).toMatchObject({ _tag: "KeyringError", failure })
      }
      // a storage failure looking the data key up is not a decryption failure either
      const storage = new StorageFailure({ operation: "GetItem", reason: "down" })
      expect(
        yield* Effect.flip(
          ValueCipher.decrypt(ciphertext, binding).pipe(Effect.provide(memoryDataKeys([current], storage).layer))
        )
      ).toBe(storage)
    }))

  it.effect("encrypt fails with the data keys' error and produces nothing", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        ValueCipher.encrypt(plaintext, binding).pipe(
          Effect.provide(memoryDataKeys([current], keyringError("access-denied")).layer)
        )
      )
      expect(error).toMatchObject({ _tag: "KeyringError", failure: "access-denied" })
    }))
})

describe("ValueCipher through DataKeys.layer on DynamoDB Local", () => {
  let client: DynamoDBClient
  let location: TestTable
  beforeAll(async () => {
    client = makeClient()
    location = await Effect.runPromise(provisionTable(client))
  })
  afterAll(() => client.destroy())

  const instance = (keyring: Keyring["Service"]) =>
    DataKeys.layer(location).pipe(
      Layer.provide(Layer.mergeAll(Layer.succeed(Keyring, keyring), Layer.succeed(Dynamo, Dynamo.fromClient(client))))
    )

  it.live("a value encrypted by one instance decrypts in another (cold cache); a keyring without the master key cannot", () =>
    Effect.gen(function*() {
      const at = { ...binding, table: location.table, namespace: location.namespace }
      const ciphertext = yield* ValueCipher.encrypt(plaintext, at).pipe(Effect.provide(instance(testKeyring)))
      same(yield* ValueCipher.decrypt(ciphertext, at).pipe(Effect.provide(instance(testKeyring))), plaintext)
      const stranger = RawAesKeyring.make([{
        id: "stranger",
        material: Redacted.make(new Uint8Array(randomBytes(32)))
      }])
      const error = expectDecryptionFailed(
        yield* Effect.flip(ValueCipher.decrypt(ciphertext, at).pipe(Effect.provide(instance(stranger)))),
        at
      )
      expect(error.reason).toContain("no-matching-key")
    }))
})
