/**
 * Sealing a prefix that already holds keys in clear would hide them: `get` and writes go to the sealed form, so the
 * clear keys could no longer be read or deleted and a write would make a sealed twin. Until a migration exists, a
 * store refuses to open with such a prefix sealed, and says why without naming the keys (they may be the secrets).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import { openStore, tablePerFile } from "../support/TestStore.ts"

const { client, freshLocation } = tablePerFile("sealclear")
const bytes = (value: string) => new TextEncoder().encode(value)
const sealed: ReadonlyArray<SealedPrefix> = [{ prefix: "/tokens/", seal: "rest" }]

describe("a sealed prefix over keys written in clear", () => {
  it.live("is refused when the store opens, without naming the clear keys", () =>
    Effect.gen(function*() {
      const location = freshLocation()
      const clear = yield* openStore(location, { client })
      yield* clear.put({ key: "/tokens/join-secret-1234", value: bytes("node") })
      // Keys beside the prefix, and the prefix itself, are not under it.
      yield* clear.put({ key: "/tokens", value: bytes("x") })
      yield* clear.put({ key: "/tokenz/a", value: bytes("x") })

      const refused = yield* Effect.exit(Effect.scoped(openStore(location, { client, storeOptions: { sealed } })))
      expect(Exit.isFailure(refused)).toBe(true)
      const message = Exit.isFailure(refused) ? Cause.pretty(refused.cause) : ""
      expect(message).toContain("/tokens/")
      expect(message).toContain("in clear")
      expect(message).not.toContain("join-secret-1234")

      // Once they are gone (deleted, or moved elsewhere), the prefix can be sealed.
      yield* clear.delete("/tokens/join-secret-1234")
      const store = yield* openStore(location, { client, storeOptions: { sealed } })
      yield* store.put({ key: "/tokens/join-secret-5678", value: bytes("node") })
      expect(new TextDecoder().decode((yield* store.get("/tokens/join-secret-5678")).value)).toBe("node")
      // A second opening finds only sealed keys under the prefix.
      yield* openStore(location, { client, storeOptions: { sealed } })
    }), 30_000)
})
