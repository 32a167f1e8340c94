/**
 * Node's crypto calls at the cost their work takes. Given a `Buffer` for a key, `createCipheriv`, `hkdfSync` and
 * `createHmac` first ask whether it is a `KeyObject` or a `CryptoKey` by a brand check that throws and catches a
 * `TypeError`; each throw captures a stack trace, which under an Effect fiber's deep stack costs more than the
 * cryptography (a 256-byte value's HKDF and AES-GCM took about 50 µs that way, 15 µs without the traces).
 */
import { createSecretKey } from "node:crypto"
import type { KeyObject } from "node:crypto"

const descriptor = Object.getOwnPropertyDescriptor(Error, "stackTraceLimit")
// Frozen intrinsics (SES, --frozen-intrinsics) keep the limit as it is; the calls are then merely slower.
const writable = descriptor === undefined
  ? Object.isExtensible(Error)
  : Object.hasOwn(descriptor, "writable")
  ? descriptor.writable === true
  : descriptor.set !== undefined

/**
 * Runs synchronous crypto code with stack traces off, restoring the limit after; errors it throws carry no
 * stack, so `run` must turn them into values or messages of its own rather than let them reach a log.
 */
export const quietly = <A>(run: () => A): A => {
  if (!writable) return run()
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return run()
  } finally {
    Error.stackTraceLimit = limit
  }
}

const secretKeys = new WeakMap<object, KeyObject>()

/**
 * A `KeyObject` of `material`, made once per `owner` (a data key, a keyring key) and kept while the owner lives,
 * so the secret is copied into a key object once instead of per call.
 */
export const secretKeyOf = (owner: object, material: Uint8Array): KeyObject => {
  let key = secretKeys.get(owner)
  if (key === undefined) {
    key = quietly(() => createSecretKey(material))
    secretKeys.set(owner, key)
  }
  return key
}
