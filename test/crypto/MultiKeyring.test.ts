/**
 * The multi-keyring: one generator makes each data key and every other keyring
 * wraps a copy, so any one of them alone can unwrap it; when none can, the most
 * telling failure is reported.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { Keyring, KeyringError } from "../../src/infra/crypto/Keyring.ts"
import type { EncryptionContext, KeyringFailure } from "../../src/infra/crypto/Keyring.ts"
import * as MultiKeyring from "../../src/infra/crypto/MultiKeyring.ts"
import * as RawAesKeyring from "../../src/infra/crypto/RawAesKeyring.ts"
import { counting } from "../support/CountingKeyring.ts"

const context: EncryptionContext = {
  "dynastate:table": "t",
  "dynastate:namespace": "n",
  "dynastate:data-key": "dk",
  "dynastate:scope": ""
}

const raw = (id: string) => RawAesKeyring.make([{ id, material: Redacted.make(new Uint8Array(randomBytes(32))) }])
const plain = (secret: Redacted.Redacted<Uint8Array>) => Buffer.from(Redacted.value(secret))

/** A keyring that fails every call with this kind (an IAM denial, a disabled KMS key, an outage). */
const refusing = (failure: typeof KeyringFailure.Type, name = `refusing-${failure}`) => {
  const error = new KeyringError({ keyring: name, failure, reason: `${name} says ${failure}` })
  return Keyring.of({
    name,
    generate: () => Effect.fail(error),
    wrap: () => Effect.fail(error),
    unwrap: () => Effect.fail(error)
  })
}

const failureOf = <A>(effect: Effect.Effect<A, KeyringError>) =>
  Effect.map(Effect.flip(effect), (error) => {
    expect(error).toBeInstanceOf(KeyringError)
    return error
  })

describe("MultiKeyring", () => {
  it.effect("generate asks the generator once and wraps 3 copies: the generator's, then each other keyring's", () =>
    Effect.gen(function*() {
      const generator = counting(raw("g"))
      const [east, west] = [counting(raw("east")), counting(raw("west"))]
      const multi = MultiKeyring.make(generator.keyring, [east.keyring, west.keyring])
      expect(multi.name).toBe("multi(raw-aes:g, raw-aes:east, raw-aes:west)")
      const generated = yield* multi.generate(context)
      expect(generated.wrapped.map((copy) => [copy.provider, copy.keyId])).toEqual([["raw-aes", "g"], [
        "raw-aes",
        "east"
      ], ["raw-aes", "west"]])
      expect(plain(generated.plaintext)).toHaveLength(32)
      expect([generator.calls, east.calls, west.calls]).toEqual([
        { generate: 1, wrap: 0, unwrap: 0 },
        { generate: 0, wrap: 1, unwrap: 0 },
        { generate: 0, wrap: 1, unwrap: 0 }
      ])
      // three different ciphertexts of one data key
      expect(new Set(generated.wrapped.map((copy) => Buffer.from(copy.ciphertext).toString("hex"))).size).toBe(3)
    }))

  it.effect("each keyring alone unwraps the data key, and so does the multi-keyring", () =>
    Effect.gen(function*() {
      const keyrings = [raw("g"), raw("east"), raw("west")] as const
      const multi = MultiKeyring.make(keyrings[0], [keyrings[1], keyrings[2]])
      const generated = yield* multi.generate(context)
      for (const single of [...keyrings, multi]) {
        expect(plain(yield* single.unwrap(generated.wrapped, context)).equals(plain(generated.plaintext))).toBe(true)
      }
      // each alone, even when only its own copy is left
      for (const [index, single] of keyrings.entries()) {
        const own = [generated.wrapped[index]!]
        expect(plain(yield* single.unwrap(own, context)).equals(plain(generated.plaintext))).toBe(true)
        expect(plain(yield* multi.unwrap(own, context)).equals(plain(generated.plaintext))).toBe(true)
      }
    }))

  it.effect("wrap wraps an existing data key under every keyring", () =>
    Effect.gen(function*() {
      const keyrings = [raw("g"), raw("east"), raw("west")] as const
      const multi = MultiKeyring.make(keyrings[0], [keyrings[1], keyrings[2]])
      const dataKey = Redacted.make(new Uint8Array(randomBytes(32)))
      const wrapped = yield* multi.wrap(dataKey, context)
      expect(wrapped.map((copy) => copy.keyId)).toEqual(["g", "east", "west"])
      for (const single of keyrings) {
        expect(plain(yield* single.unwrap(wrapped, context)).equals(plain(dataKey))).toBe(true)
      }
    }))

  it.effect("unwrap asks the generator first and stops at the first keyring that succeeds", () =>
    Effect.gen(function*() {
      const [generator, east, west] = [counting(raw("g")), counting(raw("east")), counting(raw("west"))]
      const multi = MultiKeyring.make(generator.keyring, [east.keyring, west.keyring])
      const generated = yield* multi.generate(context)
      yield* multi.unwrap(generated.wrapped, context)
      expect([generator.calls.unwrap, east.calls.unwrap, west.calls.unwrap]).toEqual([1, 0, 0])
      // only the west copy left: the generator and east are asked (and find nothing) before west
      yield* multi.unwrap([generated.wrapped[2]!], context)
      expect([generator.calls.unwrap, east.calls.unwrap, west.calls.unwrap]).toEqual([2, 1, 1])
    }))

  it.effect("a keyring with none of the keys fails with no-matching-key, alone or as a multi-keyring", () =>
    Effect.gen(function*() {
      const generated = yield* MultiKeyring.make(raw("g"), [raw("east"), raw("west")]).generate(context)
      expect((yield* failureOf(raw("stranger").unwrap(generated.wrapped, context))).failure).toBe("no-matching-key")
      const strangers = MultiKeyring.make(raw("s1"), [raw("s2")])
      const error = yield* failureOf(strangers.unwrap(generated.wrapped, context))
      expect(error).toMatchObject({ _tag: "KeyringError", keyring: "multi", failure: "no-matching-key" })
      // the reason names every keyring that was asked
      expect(error.reason).toContain("raw-aes: ")
      expect(error.reason.split("; ")).toHaveLength(2)
    }))

  it.effect("a refusing keyring's failure kind is reported over no-matching-key, wherever it stands", () =>
    Effect.gen(function*() {
      const generated = yield* raw("g").generate(context)
      for (const failure of ["access-denied", "key-disabled", "throttled", "unavailable"] as const) {
        for (
          const multi of [
            MultiKeyring.make(refusing(failure), [raw("s1")]),
            MultiKeyring.make(raw("s1"), [refusing(failure)]),
            MultiKeyring.make(raw("s1"), [raw("s2"), refusing(failure)])
          ]
        ) {
          const error = yield* failureOf(multi.unwrap(generated.wrapped, context))
          expect(error).toMatchObject({ keyring: "multi", failure })
          expect(error.reason).toContain(`says ${failure}`)
          expect(error.reason).toContain("no copy of the data key")
        }
      }
      // a copy that does not authenticate also says more than "no key of mine"
      const bytes = new Uint8Array(generated.wrapped[0]!.ciphertext)
      bytes[20]! ^= 0x01
      const tampered = { ...generated.wrapped[0]!, ciphertext: bytes }
      const multi = MultiKeyring.make(raw("s1"), [
        RawAesKeyring.make([{ id: "g", material: Redacted.make(new Uint8Array(32)) }])
      ])
      expect((yield* failureOf(multi.unwrap([tampered], context))).failure).toBe("invalid-ciphertext")
    }))

  it.effect("a refusing keyring does not stop another from unwrapping", () =>
    Effect.gen(function*() {
      const west = raw("west")
      const generated = yield* west.generate(context)
      const multi = MultiKeyring.make(refusing("access-denied"), [refusing("unavailable"), west])
      expect(plain(yield* multi.unwrap(generated.wrapped, context)).equals(plain(generated.plaintext))).toBe(true)
    }))

  it.effect("generate fails, with nothing returned, if the generator or any other keyring cannot wrap", () =>
    Effect.gen(function*() {
      const byGenerator = yield* failureOf(
        MultiKeyring.make(refusing("access-denied"), [raw("east")]).generate(context)
      )
      expect(byGenerator.failure).toBe("access-denied")
      const byOther = yield* failureOf(
        MultiKeyring.make(raw("g"), [raw("east"), refusing("key-disabled")]).generate(context)
      )
      expect(byOther.failure).toBe("key-disabled")
      const wrapError = yield* failureOf(
        MultiKeyring.make(raw("g"), [refusing("unavailable")]).wrap(Redacted.make(new Uint8Array(32)), context)
      )
      expect(wrapError.failure).toBe("unavailable")
    }))

  it.effect("the copies are bound to the context: another context fails for every keyring", () =>
    Effect.gen(function*() {
      const keyrings = [raw("g"), raw("east")] as const
      const multi = MultiKeyring.make(keyrings[0], [keyrings[1]])
      const generated = yield* multi.generate(context)
      const other = { ...context, "dynastate:scope": "/users/alice" }
      for (const single of keyrings) {
        expect((yield* failureOf(single.unwrap(generated.wrapped, other))).failure).toBe("invalid-ciphertext")
      }
      expect((yield* failureOf(multi.unwrap(generated.wrapped, other))).failure).toBe("invalid-ciphertext")
    }))
})
