/**
 * The MAC of sealed key segments (see `SealedKeys`): HMAC-SHA256 under a key derived by HKDF from a named data key
 * of the store's own, wrapped by the keyring like every data key. Nothing in the table alone reveals it; re-wrapping
 * re-wraps it, and shredding the whole namespace destroys it.
 */
import { Context, Effect, Layer, Redacted, Result } from "effect"
import { createHmac, createSecretKey, hkdfSync } from "node:crypto"
import type { KeyObject } from "node:crypto"
import { BadParameter, StorageFailure } from "../../domain/Errors.ts"
import * as Key from "../../domain/Key.ts"
import * as SealedKeys from "../../domain/SealedKeys.ts"
import type { SealedPrefix } from "../../domain/SealedKeys.ts"
import { DataKeys } from "./DataKeys.ts"
import type { DataKey, DataKeyError } from "./DataKeys.ts"
import { quietly } from "./QuietCrypto.ts"

/** The id of the named data key sealed segments are keyed by (its scope is `named:<id>`). */
export const sealingKeyId = "key-sealing"

/** Failures of sealing a key: a key whose sealed form would not fit, or the sealing key unavailable. */
export type SealError = BadParameter | DataKeyError

/** Seals keys under the configured prefixes. */
export class KeySealer extends Context.Service<KeySealer, {
  readonly prefixes: ReadonlyArray<SealedPrefix>
  /** The stored form of a key: itself when it lies under no sealed prefix or is a stored key already. */
  readonly seal: (key: string, field?: string) => Effect.Effect<string, SealError>
}>()("dynastate/KeySealer") {
  /** A sealer for these prefixes (checked: `BadParameter` names the bad one), keyed by the store's data keys. */
  static readonly layer = (
    prefixes: ReadonlyArray<SealedPrefix>
  ): Layer.Layer<KeySealer, BadParameter, DataKeys> =>
    Layer.effect(KeySealer, Effect.flatMap(DataKeys, (dataKeys) => make(dataKeys, prefixes)))
}

// Derived once per unwrapped data key, kept while it is (the data keys' cache decides how long that is).
const macKeys = new WeakMap<DataKey, KeyObject>()
const macKeyOf = (key: DataKey): KeyObject => {
  let derived = macKeys.get(key)
  if (derived === undefined) {
    const okm = quietly(() =>
      Buffer.from(hkdfSync("sha256", Redacted.value(key.material), Buffer.alloc(0), "dynastate/v1/key-sealing", 32))
    )
    derived = quietly(() => createSecretKey(okm))
    macKeys.set(key, derived)
  }
  return derived
}

/** The MAC of a secret part under a sealed prefix: the prefix is in it, so one secret seals differently per prefix. */
export const macOf = (key: DataKey, prefix: string, secret: string): string =>
  quietly(() =>
    createHmac("sha256", macKeyOf(key)).update(prefix, "utf8").update("\u0000").update(secret, "utf8").digest(
      "base64url"
    )
  )

/** A sealer over `dataKeys`; fails with `BadParameter` when the prefixes are not a valid configuration. */
export const make = (
  dataKeys: DataKeys["Service"],
  prefixes: ReadonlyArray<SealedPrefix>
): Effect.Effect<KeySealer["Service"], BadParameter> => {
  const checked = SealedKeys.validate(prefixes)
  if (Result.isFailure(checked)) return Effect.fail(checked.failure)
  const sealingKey = dataKeys.named(sealingKeyId).pipe(
    Effect.catchTag(["DataKeyNotFound", "DataKeyShredded"], (error) =>
      Effect.fail(
        new StorageFailure({
          operation: "seal key",
          reason: `the key sealing key cannot be used (${error._tag}): was the whole namespace shredded?`
        })
      ))
  )
  const seal = (key: string, field = "key"): Effect.Effect<string, SealError> => {
    const placement = SealedKeys.place(prefixes, key)
    if (placement._tag !== "Seal") return Effect.succeed(key)
    return Effect.flatMap(sealingKey, (dataKey) => {
      const stored = SealedKeys.storedKey(placement, macOf(dataKey, placement.sealed.prefix, placement.secret))
      const bytes = Key.toBytes(stored).length
      return bytes > Key.maxKeyBytes
        ? Effect.fail(
          new BadParameter({
            field,
            reason: `sealed, this key would have ${bytes} UTF-8 bytes; a stored key may have at most ${Key.maxKeyBytes}`
          })
        )
        : Effect.succeed(stored)
    })
  }
  return Effect.succeed(KeySealer.of({ prefixes, seal }))
}
