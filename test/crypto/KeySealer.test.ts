/**
 * The MAC of sealed keys, over an in-memory `DataKeys`: deterministic under one sealing key and different under
 * another, separated per prefix, recognising stored keys, refusing a key whose stored form would not fit, and
 * failing with a typed error when the sealing key is gone (a namespace shredded whole).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted, Result } from "effect"
import { BadParameter } from "../../src/domain/Errors.ts"
import * as Key from "../../src/domain/Key.ts"
import * as SealedKeys from "../../src/domain/SealedKeys.ts"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import { DataKeys, DataKeyShredded } from "../../src/infra/crypto/DataKeys.ts"
import type { DataKey } from "../../src/infra/crypto/DataKeys.ts"
import * as KeySealer from "../../src/infra/crypto/KeySealer.ts"

const prefixes: ReadonlyArray<SealedPrefix> = [
  { prefix: "/tokens/", seal: "rest" },
  { prefix: "/users/", seal: "segment" }
]

/** A `DataKeys` whose only named key is `key` (or, with none, one that was shredded); nothing else is used. */
const dataKeysWith = (key: DataKey | undefined) => {
  const service = DataKeys.of({
    scopeOf: () => "",
    forEncryption: () => Effect.die("not used"),
    forDecryption: () => Effect.die("not used"),
    rewrap: () => Effect.die("not used"),
    shred: () => Effect.die("not used"),
    named: (id) =>
      key === undefined
        ? Effect.fail(new DataKeyShredded({ dataKey: id, scope: `named:${id}` }))
        : Effect.succeed(key)
  })
  return { service }
}

const dataKey = (byte: number): DataKey => ({ id: `k${byte}`, material: Redacted.make(new Uint8Array(32).fill(byte)) })

const sealerOf = (key: DataKey | undefined) => KeySealer.make(dataKeysWith(key).service, prefixes)

describe("KeySealer", () => {
  it.effect("seals deterministically, per sealing key and per prefix, keeping keys outside in clear", () =>
    Effect.gen(function*() {
      const one = yield* sealerOf(dataKey(1))
      const other = yield* sealerOf(dataKey(2))
      const token = yield* one.seal("/tokens/abc")
      expect(token.startsWith(`/tokens/${SealedKeys.marker}`)).toBe(true)
      expect(token.slice("/tokens/".length + 1)).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(yield* one.seal("/tokens/abc")).toBe(token)
      expect(yield* other.seal("/tokens/abc")).not.toBe(token)
      expect(yield* one.seal("/tokens/abd")).not.toBe(token)
      // The same secret under another prefix seals differently: nothing links the two.
      const user = yield* one.seal("/users/abc")
      expect(user.slice("/users/".length)).not.toBe(token.slice("/tokens/".length))
      expect(yield* one.seal("/users/abc/profile")).toBe(`${user}/profile`)
      for (const key of ["/other/abc", "/tokens/", "/users/"]) expect(yield* one.seal(key)).toBe(key)
      // A stored key handed back is itself.
      expect(yield* one.seal(token)).toBe(token)
      expect(yield* one.seal(`${user}/profile`)).toBe(`${user}/profile`)
      expect(SealedKeys.storedBytes(prefixes, "/users/abc/profile")).toBe(Key.toBytes(`${user}/profile`).length)
    }))

  it.effect("a key whose stored form would pass 1015 bytes is BadParameter naming the field", () =>
    Effect.gen(function*() {
      const sealer = yield* sealerOf(dataKey(1))
      const long = `/users/a/${"x".repeat(Key.maxKeyBytes - "/users/a/".length)}`
      expect(Result.isSuccess(Key.validate(long))).toBe(true)
      const error = yield* Effect.flip(sealer.seal(long, "start"))
      expect(error).toBeInstanceOf(BadParameter)
      expect(error).toMatchObject({ field: "start" })
      expect((error as BadParameter).reason).toContain("at most 1015")
    }))

  it.effect("invalid prefixes are refused; a shredded sealing key is a typed StorageFailure, not a defect", () =>
    Effect.gen(function*() {
      const refused = yield* Effect.flip(
        KeySealer.make(dataKeysWith(dataKey(1)).service, [{ prefix: "/a", seal: "rest" }])
      )
      expect(refused).toMatchObject({ _tag: "BadParameter", field: "sealed[0].prefix" })
      const gone = yield* sealerOf(undefined)
      expect(yield* gone.seal("/other/x")).toBe("/other/x")
      const error = yield* Effect.flip(gone.seal("/tokens/abc"))
      expect(error).toMatchObject({ _tag: "StorageFailure", operation: "seal key" })
    }))
})
