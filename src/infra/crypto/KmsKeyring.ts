/**
 * The AWS KMS keyring: data keys are made by `GenerateDataKey` under one KMS
 * key and unwrapped by `Decrypt`, so the master key never leaves KMS and every
 * unwrap is authorized by IAM (and logged by CloudTrail) with the encryption
 * context bound in.
 */
import {
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  KMSClient
} from "@aws-sdk/client-kms"
import type { KMSClientConfig } from "@aws-sdk/client-kms"
import { Effect, Layer, Redacted } from "effect"
import { Keyring, KeyringError } from "./Keyring.ts"
import type { EncryptionContext, KeyringFailure, WrappedKey } from "./Keyring.ts"
import { SigningSha256 } from "./SigningHash.ts"

/** The provider name in wrapped keys this keyring made. */
export const provider = "aws-kms"

/** Which KMS key the keyring uses. */
export interface KmsKeyringOptions {
  /** The KMS key: key id, key ARN, alias name (`alias/teleport`) or alias ARN. */
  readonly keyId: string
  /**
   * Also unwrap copies made under other KMS keys (as far as IAM allows), for
   * moving between keys. Each `Decrypt` is still pinned to the key the copy
   * names, and new keys are still made under `keyId` only.
   */
  readonly discovery?: boolean
}

/** Where the keyring's own KMS client connects (`layer`); the SDK's defaults fill the rest. */
export interface KmsKeyringLayerOptions extends KmsKeyringOptions {
  readonly region?: string | undefined
  readonly endpoint?: string | undefined
  readonly credentials?: KMSClientConfig["credentials"] | undefined
  readonly maxAttempts?: number | undefined
}

type Failure = typeof KeyringFailure.Type

// A wrapped copy must name a key by ARN: an alias could be re-pointed by whoever can edit aliases.
const keyArnPattern = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/

const failureOf = (name: string, message: string): Failure => {
  switch (name) {
    case "AccessDeniedException":
      return "access-denied"
    case "DisabledException":
      return "key-disabled"
    case "KMSInvalidStateException":
      // KMS reports every unusable key state with this one exception; only the message tells them apart.
      return /pending\s*(replica\s*)?deletion/i.test(message) ? "key-pending-deletion" : "key-disabled"
    case "NotFoundException":
      return "key-not-found"
    case "IncorrectKeyException":
    case "InvalidKeyUsageException":
      return "wrong-key"
    case "InvalidCiphertextException":
      return "invalid-ciphertext"
    case "ThrottlingException":
    case "LimitExceededException":
      return "throttled"
    default:
      return "unavailable"
  }
}

// Signature errors echo the canonical request, which carries the session token: never pass those messages on.
const echoesRequest = new Set([
  "InvalidSignatureException",
  "IncompleteSignatureException",
  "UnrecognizedClientException"
])

/** The error's name and the first line of its message; never the error object, whose `$response` may hold key material. */
const describe = (cause: unknown): { readonly name: string; readonly message: string } => {
  if (!(cause instanceof Error)) return { name: "UnknownError", message: "" }
  if (echoesRequest.has(cause.name)) return { name: cause.name, message: "check the credentials and the clock" }
  const message = cause.message === "UnknownError" ? "" : (cause.message.split("\n")[0] ?? "").slice(0, 300)
  return { name: cause.name, message }
}

const fromKms = (keyring: string, operation: string) => (cause: unknown): KeyringError => {
  const { message, name } = describe(cause)
  return new KeyringError({
    keyring,
    failure: failureOf(name, message),
    reason: `KMS ${operation} failed with ${name}${message === "" ? "" : `: ${message}`}`
  })
}

/** Resolves a key id, ARN or alias to the key ARN, refusing keys that cannot make and unwrap data keys. */
const resolveKey = Effect.fn("KmsKeyring.resolveKey")(function*(client: KMSClient, keyId: string) {
  const keyring = `${provider}:${keyId}`
  const fail = (failure: Failure, reason: string) => new KeyringError({ keyring, failure, reason })
  const { KeyMetadata: key } = yield* Effect.tryPromise({
    try: (abortSignal) => client.send(new DescribeKeyCommand({ KeyId: keyId }), { abortSignal }),
    catch: fromKms(keyring, "DescribeKey")
  })
  if (key?.Arn === undefined || !keyArnPattern.test(key.Arn)) {
    return yield* fail("unavailable", "KMS DescribeKey returned no key ARN")
  }
  const state = key.KeyState ?? (key.Enabled === false ? "Disabled" : "Enabled")
  switch (state) {
    case "Enabled":
      break
    case "Disabled":
      return yield* fail("key-disabled", `${key.Arn} is disabled`)
    case "PendingDeletion":
    case "PendingReplicaDeletion":
      return yield* fail("key-pending-deletion", `${key.Arn} is pending deletion`)
    default:
      return yield* fail("unavailable", `${key.Arn} is in state ${state}`)
  }
  if (
    (key.KeyUsage ?? "ENCRYPT_DECRYPT") !== "ENCRYPT_DECRYPT" ||
    (key.KeySpec ?? "SYMMETRIC_DEFAULT") !== "SYMMETRIC_DEFAULT"
  ) {
    return yield* fail("wrong-key", `${key.Arn} is not a symmetric encryption key (${key.KeySpec}, ${key.KeyUsage})`)
  }
  return key.Arn
})

/**
 * A KMS keyring over a client the caller owns. Resolves the key once (aliases
 * to their key ARN) and fails here, not on first use, if it is missing,
 * disabled or pending deletion.
 */
export const make = Effect.fn("KmsKeyring.make")(function*(
  client: KMSClient,
  options: KmsKeyringOptions
): Effect.fn.Return<Keyring["Service"], KeyringError> {
  const keyArn = yield* resolveKey(client, options.keyId)
  const name = `${provider}:${keyArn}`
  const fail = (failure: Failure, reason: string) => new KeyringError({ keyring: name, failure, reason })
  // A fresh object: the SDK's types want a mutable record, and the caller's stays untouched.
  const contextFor = (context: EncryptionContext): Record<string, string> => ({ ...context })

  const generate = Effect.fn("KmsKeyring.generate")(function*(context: EncryptionContext) {
    const out = yield* Effect.tryPromise({
      try: (abortSignal) =>
        client.send(
          new GenerateDataKeyCommand({ KeyId: keyArn, KeySpec: "AES_256", EncryptionContext: contextFor(context) }),
          { abortSignal }
        ),
      catch: fromKms(name, "GenerateDataKey")
    })
    if (out.KeyId !== keyArn) return yield* fail("wrong-key", `KMS GenerateDataKey used ${out.KeyId}, not ${keyArn}`)
    if (out.Plaintext?.length !== 32 || out.CiphertextBlob === undefined) {
      return yield* fail("unavailable", "KMS GenerateDataKey returned no 256-bit data key")
    }
    const wrapped: WrappedKey = { provider, keyId: keyArn, ciphertext: out.CiphertextBlob }
    return { plaintext: Redacted.make(out.Plaintext), wrapped: [wrapped] }
  })

  const wrap = Effect.fn("KmsKeyring.wrap")(
    function*(plaintext: Redacted.Redacted<Uint8Array>, context: EncryptionContext) {
      const out = yield* Effect.tryPromise({
        try: (abortSignal) =>
          client.send(
            new EncryptCommand({
              KeyId: keyArn,
              Plaintext: Redacted.value(plaintext),
              EncryptionContext: contextFor(context)
            }),
            { abortSignal }
          ),
        catch: fromKms(name, "Encrypt")
      })
      if (out.KeyId !== keyArn) return yield* fail("wrong-key", `KMS Encrypt used ${out.KeyId}, not ${keyArn}`)
      if (out.CiphertextBlob === undefined) return yield* fail("unavailable", "KMS Encrypt returned no ciphertext")
      const wrapped: ReadonlyArray<WrappedKey> = [{ provider, keyId: keyArn, ciphertext: out.CiphertextBlob }]
      return wrapped
    }
  )

  const decrypt = Effect.fn("KmsKeyring.decrypt")(function*(copy: WrappedKey, context: EncryptionContext) {
    const out = yield* Effect.tryPromise({
      try: (abortSignal) =>
        client.send(
          // Pinned to the key the copy names, so KMS refuses a ciphertext made under any other key.
          new DecryptCommand({
            KeyId: copy.keyId,
            CiphertextBlob: copy.ciphertext,
            EncryptionContext: contextFor(context)
          }),
          { abortSignal }
        ),
      catch: fromKms(name, "Decrypt")
    })
    if (out.KeyId !== copy.keyId) return yield* fail("wrong-key", `KMS Decrypt used ${out.KeyId}, not ${copy.keyId}`)
    if (out.Plaintext?.length !== 32) return yield* fail("invalid-ciphertext", "the unwrapped data key is not 256 bits")
    return Redacted.make(out.Plaintext)
  })

  const unwrap = Effect.fn("KmsKeyring.unwrap")(
    function*(wrapped: ReadonlyArray<WrappedKey>, context: EncryptionContext) {
      const candidates = wrapped.filter((copy) =>
        copy.provider === provider &&
        (options.discovery === true ? keyArnPattern.test(copy.keyId) : copy.keyId === keyArn)
      )
      if (candidates.length === 0) {
        return yield* fail(
          "no-matching-key",
          `no copy of the data key is wrapped under ${options.discovery === true ? "a KMS key" : keyArn}`
        )
      }
      const failures: Array<KeyringError> = []
      for (const copy of candidates) {
        const result = yield* Effect.result(decrypt(copy, context))
        if (result._tag === "Success") return result.success
        failures.push(result.failure)
      }
      // A passing failure first: the caller may retry it, whereas a refusal would only repeat.
      const telling = failures.find((error) => error.failure === "throttled" || error.failure === "unavailable") ??
        failures.at(-1)!
      if (failures.length === 1) return yield* telling
      return yield* fail(
        telling.failure,
        `all ${failures.length} KMS copies failed: ${failures.map((error) => error.reason).join("; ")}`
      )
    }
  )

  return Keyring.of({ name, generate, wrap, unwrap })
})

/** The keyring as a layer over a client the caller owns (and destroys). */
export const layerFromClient = (client: KMSClient, options: KmsKeyringOptions): Layer.Layer<Keyring, KeyringError> =>
  Layer.effect(Keyring, make(client, options))

/** The keyring with a KMS client of its own, destroyed when the scope closes. */
export const scoped = (options: KmsKeyringLayerOptions) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new KMSClient({
        sha256: SigningSha256,
        ...(options.region === undefined ? {} : { region: options.region }),
        ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
        ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
        ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts })
      })
    ),
    (client) => Effect.sync(() => client.destroy())
  ).pipe(Effect.flatMap((client) => make(client, options)))

/** The keyring as a layer with its own KMS client, destroyed when the layer is released. */
export const layer = (options: KmsKeyringLayerOptions): Layer.Layer<Keyring, KeyringError> =>
  Layer.effect(Keyring, scoped(options))
