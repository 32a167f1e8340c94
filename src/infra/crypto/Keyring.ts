/**
 * The seam between value encryption and where key material lives: a keyring
 * hands out the key to encrypt new values under and finds the key a stored
 * value names. The raw-AES keyring is the embedded default; KMS keyrings plug
 * in behind the same service.
 */
import { Context, Schema } from "effect"
import type { Effect, Redacted } from "effect"

/** A 256-bit key and the id stored next to every value encrypted under it. */
export interface WrappingKey {
  readonly id: string
  readonly material: Redacted.Redacted<Uint8Array>
}

/** The keyring could not produce a key (unknown id, unreadable key material, KMS refusal). */
export class KeyringError extends Schema.TaggedError<KeyringError>()("KeyringError", {
  keyring: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `keyring ${this.keyring}: ${this.reason}`
  }
}

/** Where value keys come from. */
export class Keyring extends Context.Service<Keyring, {
  /** A name for logs and errors, never key material. */
  readonly name: string
  /** The key new values are encrypted under. */
  readonly current: Effect.Effect<WrappingKey, KeyringError>
  /** The key with this id, to decrypt a stored value. */
  readonly byId: (id: string) => Effect.Effect<WrappingKey, KeyringError>
}>()("dynastate/Keyring") {}
