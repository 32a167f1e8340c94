/**
 * The seam between value encryption and where master keys live. A keyring
 * makes data keys and wraps them under its master keys (AWS KMS keys, or
 * local AES keys), and unwraps them again; the data keys themselves encrypt
 * values (see `DataKeys.ts`). Keyrings never see values.
 */
import { Context, Schema } from "effect"
import type { Effect, Redacted } from "effect"

/**
 * What a wrapped data key is bound to: KMS checks it (and IAM policies can
 * require it); the raw AES keyring authenticates it as associated data.
 */
export type EncryptionContext = Readonly<Record<string, string>>

/** One copy of a data key, wrapped under one master key. */
export interface WrappedKey {
  /** Which kind of keyring can unwrap it: `aws-kms` or `raw-aes`. */
  readonly provider: string
  /** The master key: a KMS key ARN, or a raw key's id. */
  readonly keyId: string
  readonly ciphertext: Uint8Array
}

/** A fresh data key: its plaintext and its wrapped copies. */
export interface GeneratedKey {
  readonly plaintext: Redacted.Redacted<Uint8Array>
  readonly wrapped: ReadonlyArray<WrappedKey>
}

/** Why a keyring failed; each kind calls for a different action by an operator. */
export const KeyringFailure = Schema.Literals([
  "access-denied",
  "key-disabled",
  "key-pending-deletion",
  "key-not-found",
  "wrong-key",
  "invalid-ciphertext",
  "no-matching-key",
  "throttled",
  "unavailable",
  "invalid-key-material"
])

/** The keyring could not make, wrap or unwrap a data key. Never carries key material. */
export class KeyringError extends Schema.TaggedError<KeyringError>()("KeyringError", {
  keyring: Schema.String,
  failure: KeyringFailure,
  reason: Schema.String
}) {
  override get message() {
    return `keyring ${this.keyring} (${this.failure}): ${this.reason}`
  }
}

/** Where data keys come from and how they are protected at rest. */
export class Keyring extends Context.Service<Keyring, {
  /** A name for logs and errors, never key material. */
  readonly name: string
  /** Makes a 256-bit data key, wrapped under every master key of the keyring. */
  readonly generate: (context: EncryptionContext) => Effect.Effect<GeneratedKey, KeyringError>
  /** Wraps an existing data key under every master key of the keyring (multi-keyrings, re-wrapping). */
  readonly wrap: (
    plaintext: Redacted.Redacted<Uint8Array>,
    context: EncryptionContext
  ) => Effect.Effect<ReadonlyArray<WrappedKey>, KeyringError>
  /** Unwraps the first copy this keyring has a master key for. */
  readonly unwrap: (
    wrapped: ReadonlyArray<WrappedKey>,
    context: EncryptionContext
  ) => Effect.Effect<Redacted.Redacted<Uint8Array>, KeyringError>
}>()("dynastate/Keyring") {}
