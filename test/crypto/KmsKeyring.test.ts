/**
 * The KMS keyring through the real `@aws-sdk/client-kms` client (serialization,
 * retries, error classes) against FakeKms, a local KMS-protocol endpoint. The
 * last block checks FakeKms itself against what real KMS does, so the keyring
 * tests prove something.
 */
import {
  DecryptCommand,
  DescribeKeyCommand,
  DisabledException,
  EncryptCommand,
  GenerateDataKeyCommand,
  IncorrectKeyException,
  InvalidCiphertextException,
  KMSClient,
  KMSInvalidStateException,
  KMSServiceException,
  NotFoundException
} from "@aws-sdk/client-kms"
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Redacted } from "effect"
import * as util from "node:util"
import { Keyring, KeyringError } from "../../src/infra/crypto/Keyring.ts"
import type { EncryptionContext, WrappedKey } from "../../src/infra/crypto/Keyring.ts"
import * as KmsKeyring from "../../src/infra/crypto/KmsKeyring.ts"
import * as FakeKms from "../support/FakeKms.ts"

const credentials = { accessKeyId: "AKIAFAKEKMSTEST0001", secretAccessKey: "fake/Secret+NeverPrintThis0123456789abcd" }
const context: EncryptionContext = { table: "t", namespace: "n", scope: "s", id: "dk-1" }

const clientFor = (endpoint: string) =>
  Effect.acquireRelease(
    Effect.sync(() => new KMSClient({ endpoint, region: "us-east-1", credentials, maxAttempts: 2 })),
    (client) => Effect.sync(() => client.destroy())
  )

/** A fake KMS with one key (alias `teleport`) and a client for it, for the test's scope. */
const setup = Effect.gen(function*() {
  const kms = yield* FakeKms.scoped()
  const client = yield* clientFor(kms.endpoint)
  const key = kms.createKey({ alias: "teleport" })
  return { kms, client, key }
})

const bytes = (secret: Redacted.Redacted<Uint8Array>) => Buffer.from(Redacted.value(secret))

/** Every way an error might be shown in a log, joined. */
const renderings = (value: unknown): string =>
  [
    String(value),
    JSON.stringify(value),
    util.inspect(value, { depth: 10, showHidden: true }),
    value instanceof Error ? value.message : "",
    Cause.pretty(Cause.fail(value))
  ].join("\n")

const expectNoSecrets = (text: string, plaintext: Uint8Array) => {
  const buf = Buffer.from(plaintext)
  for (
    const form of [
      buf.toString("base64"),
      buf.toString("base64url"),
      buf.toString("hex"),
      buf.toString("hex").slice(0, 16)
    ]
  ) {
    expect(text).not.toContain(form)
  }
  expect(text).not.toContain(Array.from(plaintext.subarray(0, 6)).join(", "))
  expect(text).not.toContain(credentials.accessKeyId)
  expect(text).not.toContain(credentials.secretAccessKey)
}

const failureOf = <A>(effect: Effect.Effect<A, KeyringError>) =>
  Effect.map(Effect.flip(effect), (error) => {
    expect(error).toBeInstanceOf(KeyringError)
    return error
  })

describe("KmsKeyring", () => {
  it.live("generate makes a 256-bit key wrapped under the key ARN, and unwrap gets it back", () =>
    Effect.gen(function*() {
      const { client, key, kms } = yield* setup
      const keyring = yield* KmsKeyring.make(client, { keyId: key.arn })
      expect(keyring.name).toBe(`aws-kms:${key.arn}`)
      const generated = yield* keyring.generate(context)
      expect(bytes(generated.plaintext)).toHaveLength(32)
      expect(generated.wrapped).toHaveLength(1)
      expect(generated.wrapped[0]).toMatchObject({ provider: "aws-kms", keyId: key.arn })
      const unwrapped = yield* keyring.unwrap(generated.wrapped, { ...context })
      expect(bytes(unwrapped).equals(bytes(generated.plaintext))).toBe(true)
      // Every call names the key by ARN (Decrypt pinned) and carries the context.
      const calls = kms.requests.filter((request) => request.operation !== "DescribeKey")
      expect(calls.map((request) => [request.operation, request.keyId, request.encryptionContext])).toEqual([
        ["GenerateDataKey", key.arn, context],
        ["Decrypt", key.arn, context]
      ])
      expect(calls.every((request) => request.authorization?.startsWith("AWS4-HMAC-SHA256"))).toBe(true)
    }))

  it.live("wrap re-wraps an existing data key, and unwrap takes the first copy that works", () =>
    Effect.gen(function*() {
      const { client, key, kms } = yield* setup
      const keyring = yield* KmsKeyring.make(client, { keyId: key.keyId })
      const plaintext = Redacted.make(new Uint8Array(32).map((_, i) => i + 1))
      const wrapped = yield* keyring.wrap(plaintext, context)
      expect(wrapped).toEqual([{ provider: "aws-kms", keyId: key.arn, ciphertext: expect.any(Uint8Array) }])
      const foreign: WrappedKey = { provider: "raw-aes", keyId: "raw-1", ciphertext: new Uint8Array(60) }
      const broken: WrappedKey = { provider: "aws-kms", keyId: key.arn, ciphertext: new Uint8Array(80) }
      const unwrapped = yield* keyring.unwrap([foreign, broken, ...wrapped], context)
      expect(bytes(unwrapped).equals(bytes(plaintext))).toBe(true)
      expect(kms.counts["Decrypt"]).toBe(2)
    }))

  it.live("unwrap under another encryption context fails with invalid-ciphertext", () =>
    Effect.gen(function*() {
      const { client, key } = yield* setup
      const keyring = yield* KmsKeyring.make(client, { keyId: key.arn })
      const generated = yield* keyring.generate(context)
      for (const other of [{ ...context, id: "dk-2" }, { table: "t" }, { ...context, extra: "x" }, {}]) {
        const error = yield* failureOf(keyring.unwrap(generated.wrapped, other))
        expect(error.failure).toBe("invalid-ciphertext")
        expect(error.reason).toContain("InvalidCiphertextException")
        expectNoSecrets(renderings(error), Redacted.value(generated.plaintext))
      }
    }))

  it.live("a keyring for key B never decrypts under key A, and says so with a typed error", () =>
    Effect.gen(function*() {
      const { client, key: keyA, kms } = yield* setup
      const keyB = kms.createKey()
      const ringA = yield* KmsKeyring.make(client, { keyId: keyA.arn })
      const ringB = yield* KmsKeyring.make(client, { keyId: keyB.arn })
      const generated = yield* ringA.generate(context)
      const plaintext = Redacted.value(generated.plaintext)
      kms.reset()

      const notMine = yield* failureOf(ringB.unwrap(generated.wrapped, context))
      expect(notMine.failure).toBe("no-matching-key")
      expect(kms.counts["Decrypt"]).toBeUndefined()

      // A copy that claims to be under B but was made under A: KMS refuses it, since the Decrypt is pinned to B.
      const forged = generated.wrapped.map((copy) => ({ ...copy, keyId: keyB.arn }))
      const wrongKey = yield* failureOf(ringB.unwrap(forged, context))
      expect(wrongKey.failure).toBe("wrong-key")
      expect(wrongKey.reason).toContain("IncorrectKeyException")
      expect(kms.requests.map((request) => request.keyId)).toEqual([keyB.arn])
      for (const error of [notMine, wrongKey]) expectNoSecrets(renderings(error), plaintext)
    }))

  it.live("a discovery keyring unwraps copies under other keys, each Decrypt pinned to the copy's key", () =>
    Effect.gen(function*() {
      const { client, key: keyA, kms } = yield* setup
      const keyB = kms.createKey()
      const keyC = kms.createKey()
      const ringA = yield* KmsKeyring.make(client, { keyId: keyA.arn })
      const discovery = yield* KmsKeyring.make(client, { keyId: keyB.arn, discovery: true })
      const generated = yield* ringA.generate(context)
      kms.reset()
      const unwrapped = yield* discovery.unwrap(generated.wrapped, context)
      expect(bytes(unwrapped).equals(bytes(generated.plaintext))).toBe(true)
      expect(kms.requests.map((request) => request.keyId)).toEqual([keyA.arn])

      const claimsC = generated.wrapped.map((copy) => ({ ...copy, keyId: keyC.arn }))
      expect((yield* failureOf(discovery.unwrap(claimsC, context))).failure).toBe("wrong-key")
      // An alias could be re-pointed, so copies must name a key ARN.
      const byAlias = generated.wrapped.map((copy) => ({ ...copy, keyId: "alias/teleport" }))
      expect((yield* failureOf(discovery.unwrap(byAlias, context))).failure).toBe("no-matching-key")
    }))

  it.live("resolves aliases, alias ARNs, key ids and key ARNs to the key ARN once, at construction", () =>
    Effect.gen(function*() {
      const { client, key, kms } = yield* setup
      for (const keyId of ["alias/teleport", `arn:aws:kms:us-east-1:111122223333:alias/teleport`, key.keyId, key.arn]) {
        kms.reset()
        const keyring = yield* KmsKeyring.make(client, { keyId })
        expect(keyring.name).toBe(`aws-kms:${key.arn}`)
        const generated = yield* keyring.generate(context)
        expect(generated.wrapped[0]?.keyId).toBe(key.arn)
        expect(kms.counts).toEqual({ DescribeKey: 1, GenerateDataKey: 1 })
      }
      // Moving the alias later does not move an existing keyring.
      const keyring = yield* KmsKeyring.make(client, { keyId: "alias/teleport" })
      kms.createAlias("teleport", kms.createKey().keyId)
      expect((yield* keyring.generate(context)).wrapped[0]?.keyId).toBe(key.arn)
    }))

  it.live("an unknown key or alias is key-not-found at construction", () =>
    Effect.gen(function*() {
      const { client } = yield* setup
      for (
        const keyId of [
          "alias/nope",
          "0b0e4d2c-7d1f-4a8e-9c3b-2f6a1e5d9c00",
          "arn:aws:kms:us-east-1:111122223333:key/0b0e4d2c-7d1f-4a8e-9c3b-2f6a1e5d9c00"
        ]
      ) {
        const error = yield* failureOf(KmsKeyring.make(client, { keyId }))
        expect(error.failure).toBe("key-not-found")
        expect(error.reason).toContain("NotFoundException")
      }
    }))

  it.live("a disabled key is key-disabled at construction and for a keyring made before", () =>
    Effect.gen(function*() {
      const { client, key, kms } = yield* setup
      const keyring = yield* KmsKeyring.make(client, { keyId: "alias/teleport" })
      const generated = yield* keyring.generate(context)
      kms.disableKey(key.keyId)
      const atConstruction = yield* failureOf(KmsKeyring.make(client, { keyId: "alias/teleport" }))
      expect(atConstruction.failure).toBe("key-disabled")
      expect(atConstruction.reason).toContain(key.arn)
      const calls: ReadonlyArray<Effect.Effect<unknown, KeyringError>> = [
        keyring.generate(context),
        keyring.wrap(generated.plaintext, context),
        keyring.unwrap(generated.wrapped, context)
      ]
      for (const effect of calls) {
        const error = yield* failureOf(effect)
        expect(error.failure).toBe("key-disabled")
        expect(error.reason).toContain("DisabledException")
        expectNoSecrets(renderings(error), Redacted.value(generated.plaintext))
      }
      kms.enableKey(key.keyId)
      yield* keyring.unwrap(generated.wrapped, context)
    }))

  it.live("a key pending deletion is key-pending-deletion at construction and later", () =>
    Effect.gen(function*() {
      const { client, key, kms } = yield* setup
      const keyring = yield* KmsKeyring.make(client, { keyId: key.arn })
      const generated = yield* keyring.generate(context)
      kms.scheduleDeletion(key.arn)
      expect((yield* failureOf(KmsKeyring.make(client, { keyId: key.arn }))).failure).toBe("key-pending-deletion")
      const calls: ReadonlyArray<Effect.Effect<unknown, KeyringError>> = [
        keyring.generate(context),
        keyring.unwrap(generated.wrapped, context)
      ]
      for (const effect of calls) {
        const error = yield* failureOf(effect)
        expect(error.failure).toBe("key-pending-deletion")
        expect(error.reason).toContain("KMSInvalidStateException")
      }
    }))

  it.live("throttling the SDK's retries absorb passes; throttling beyond them is throttled", () =>
    Effect.gen(function*() {
      const { client, key, kms } = yield* setup
      const keyring = yield* KmsKeyring.make(client, { keyId: key.arn })
      kms.reset()
      kms.injectFailures({ operation: "GenerateDataKey", error: "ThrottlingException", times: 1 })
      yield* keyring.generate(context)
      expect(kms.counts["GenerateDataKey"]).toBe(2)

      kms.reset()
      kms.injectFailures({ operation: "GenerateDataKey", error: "ThrottlingException", times: 2 })
      const throttled = yield* failureOf(keyring.generate(context))
      expect(throttled.failure).toBe("throttled")
      expect(throttled.reason).toContain("ThrottlingException")
      expect(kms.counts["GenerateDataKey"]).toBe(2) // maxAttempts: 2

      kms.injectFailures({ operation: "Decrypt", error: "LimitExceededException", times: 2 })
      const generated = yield* keyring.generate(context)
      expect((yield* failureOf(keyring.unwrap(generated.wrapped, context))).failure).toBe("throttled")
    }))

  it.live("access denied is access-denied, at construction and per call, and is not retried", () =>
    Effect.gen(function*() {
      const { client, key, kms } = yield* setup
      kms.injectFailures({ operation: "DescribeKey", error: "AccessDeniedException", times: 1 })
      const atConstruction = yield* failureOf(KmsKeyring.make(client, { keyId: key.arn }))
      expect(atConstruction.failure).toBe("access-denied")
      expect(atConstruction.reason).toContain("kms:DescribeKey")

      const keyring = yield* KmsKeyring.make(client, { keyId: key.arn })
      const generated = yield* keyring.generate(context)
      kms.reset()
      kms.injectFailures({ operation: "Decrypt", error: "AccessDeniedException", times: 1 })
      const denied = yield* failureOf(keyring.unwrap(generated.wrapped, context))
      expect(denied.failure).toBe("access-denied")
      expect(kms.counts["Decrypt"]).toBe(1)
    }))

  it.live("server errors after retries, and an unreachable endpoint, are unavailable", () =>
    Effect.gen(function*() {
      const { client, key, kms } = yield* setup
      const keyring = yield* KmsKeyring.make(client, { keyId: key.arn })
      kms.injectFailures({ error: "KMSInternalException", times: 2 })
      expect((yield* failureOf(keyring.generate(context))).failure).toBe("unavailable")

      yield* Effect.promise(() => kms.close())
      const down = yield* failureOf(keyring.generate(context))
      expect(down.failure).toBe("unavailable")
    }))

  it.live("no error shows the data key or the credentials, whatever KMS says", () =>
    Effect.gen(function*() {
      const { client, key, kms } = yield* setup
      const keyring = yield* KmsKeyring.make(client, { keyId: key.arn })
      const generated = yield* keyring.generate(context)
      const plaintext = Redacted.value(generated.plaintext)
      const errors: Array<KeyringError> = []
      errors.push(yield* failureOf(keyring.unwrap(generated.wrapped, { other: "context" })))
      for (const error of ["AccessDeniedException", "ThrottlingException", "KMSInternalException"] as const) {
        // Refusals are not retried; the rest are, once (maxAttempts: 2).
        kms.injectFailures({ error, times: error === "AccessDeniedException" ? 1 : 2 })
        errors.push(yield* failureOf(keyring.wrap(generated.plaintext, context)))
      }
      // Real signature errors echo the canonical request; here the message even carries the secret.
      kms.injectFailures({
        error: "InvalidSignatureException",
        message: `The Canonical String was ${credentials.secretAccessKey}`,
        times: 1
      })
      const signature = yield* failureOf(keyring.unwrap(generated.wrapped, context))
      expect(signature.reason).toContain("InvalidSignatureException")
      errors.push(signature)
      kms.disableKey(key.arn)
      errors.push(yield* failureOf(keyring.wrap(generated.plaintext, context)))
      expect(errors.map((error) => error.failure)).toEqual([
        "invalid-ciphertext",
        "access-denied",
        "throttled",
        "unavailable",
        "unavailable",
        "key-disabled"
      ])
      for (const error of errors) {
        expectNoSecrets(renderings(error), plaintext)
        expectNoSecrets(Cause.pretty(Cause.fail(error)), plaintext)
      }
      expect(util.inspect(generated)).not.toContain(Buffer.from(plaintext).toString("hex").slice(0, 16))
    }))

  it.live("layer builds its own client from options, and fails like make", () =>
    Effect.gen(function*() {
      const { key, kms } = yield* setup
      const options = { endpoint: kms.endpoint, region: "us-east-1", credentials, maxAttempts: 2 }
      const generated = yield* Keyring.use((keyring) => keyring.generate(context)).pipe(
        Effect.provide(KmsKeyring.layer({ ...options, keyId: "alias/teleport" }))
      )
      expect(generated.wrapped[0]?.keyId).toBe(key.arn)
      const exit = yield* Effect.exit(
        Keyring.use((keyring) => keyring.generate(context)).pipe(
          Effect.provide(KmsKeyring.layer({ ...options, keyId: "alias/gone" }))
        )
      )
      expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("key-not-found")

      const client = yield* clientFor(kms.endpoint)
      const viaClient = yield* Keyring.use((keyring) => keyring.unwrap(generated.wrapped, context)).pipe(
        Effect.provide(KmsKeyring.layerFromClient(client, { keyId: key.keyId }))
      )
      expect(bytes(viaClient).equals(bytes(generated.plaintext))).toBe(true)
      expect(Layer.isLayer(KmsKeyring.layer({ keyId: "alias/x" }))).toBe(true)
    }))
})

describe("FakeKms, called directly through the SDK, refuses what KMS refuses", () => {
  const rejection = (promise: Promise<unknown>) =>
    promise.then(
      () => expect.unreachable("KMS accepted the request"),
      (error: unknown) => error
    )

  it("wrong context, wrong key, tampering, disabled and pending-deletion keys, unknown keys", async () => {
    const kms = await FakeKms.start()
    const client = new KMSClient({ endpoint: kms.endpoint, region: "us-east-1", credentials, maxAttempts: 1 })
    try {
      const a = kms.createKey({ alias: "teleport" })
      const b = kms.createKey()
      const made = await client.send(
        new GenerateDataKeyCommand({ KeyId: "alias/teleport", KeySpec: "AES_256", EncryptionContext: context })
      )
      expect(made.KeyId).toBe(a.arn)
      expect(made.Plaintext).toHaveLength(32)
      const blob = made.CiphertextBlob!

      // Without KeyId, KMS finds the key from the ciphertext.
      const back = await client.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: context }))
      expect(Buffer.from(back.Plaintext!).equals(Buffer.from(made.Plaintext!))).toBe(true)
      expect(back.KeyId).toBe(a.arn)

      const wrongContext = await rejection(
        client.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { ...context, id: "x" } }))
      )
      expect(wrongContext).toBeInstanceOf(InvalidCiphertextException)
      const noContext = await rejection(client.send(new DecryptCommand({ CiphertextBlob: blob })))
      expect(noContext).toBeInstanceOf(InvalidCiphertextException)
      const tampered = Uint8Array.from(blob)
      tampered[tampered.length - 1]! ^= 1
      expect(await rejection(client.send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: context }))))
        .toBeInstanceOf(InvalidCiphertextException)
      const wrongKey = await rejection(
        client.send(new DecryptCommand({ KeyId: b.arn, CiphertextBlob: blob, EncryptionContext: context }))
      )
      expect(wrongKey).toBeInstanceOf(IncorrectKeyException)
      expect(wrongKey).toMatchObject({ name: "IncorrectKeyException", $metadata: { httpStatusCode: 400 } })

      kms.disableKey(a.keyId)
      for (
        const command of [
          new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: context }),
          new EncryptCommand({ KeyId: a.arn, Plaintext: new Uint8Array(32) }),
          new GenerateDataKeyCommand({ KeyId: a.arn, KeySpec: "AES_256" })
        ]
      ) {
        expect(await rejection(client.send(command as DecryptCommand))).toBeInstanceOf(DisabledException)
      }
      const described = await client.send(new DescribeKeyCommand({ KeyId: "alias/teleport" }))
      expect(described.KeyMetadata).toMatchObject({ Arn: a.arn, KeyId: a.keyId, KeyState: "Disabled", Enabled: false })
      expect(described.KeyMetadata?.CreationDate).toBeInstanceOf(Date)

      kms.scheduleDeletion(a.keyId)
      const pending = await rejection(client.send(new EncryptCommand({ KeyId: a.arn, Plaintext: new Uint8Array(32) })))
      expect(pending).toBeInstanceOf(KMSInvalidStateException)
      expect((pending as Error).message).toContain("pending deletion")
      expect((await client.send(new DescribeKeyCommand({ KeyId: a.arn }))).KeyMetadata?.DeletionDate).toBeInstanceOf(
        Date
      )

      for (const keyId of ["alias/nope", "0b0e4d2c-7d1f-4a8e-9c3b-2f6a1e5d9c00", `${a.arn.slice(0, -4)}0000`]) {
        expect(await rejection(client.send(new DescribeKeyCommand({ KeyId: keyId })))).toBeInstanceOf(NotFoundException)
      }

      // Exceptions the KMS model does not declare arrive as the service's base class, named.
      kms.injectFailures({ error: "AccessDeniedException", times: 1 })
      const denied = await rejection(client.send(new DescribeKeyCommand({ KeyId: b.arn })))
      expect(denied).toBeInstanceOf(KMSServiceException)
      expect(denied).toMatchObject({
        name: "AccessDeniedException",
        message: expect.stringContaining("not authorized")
      })
    } finally {
      client.destroy()
      await kms.close()
    }
  })

  it("speaks JSON 1.1 over POST / and requires an Authorization header", async () => {
    const kms = await FakeKms.start()
    try {
      const key = kms.createKey()
      const post = (headers: Record<string, string>) =>
        fetch(kms.endpoint + "/", { method: "POST", headers, body: JSON.stringify({ KeyId: key.arn }) })
      const json = { "content-type": "application/x-amz-json-1.1", "x-amz-target": "TrentService.DescribeKey" }
      const unsigned = await post(json)
      expect(unsigned.status).toBe(400)
      expect(await unsigned.json()).toEqual({
        __type: "MissingAuthenticationTokenException",
        message: "Missing Authentication Token"
      })
      const signed = await post({ ...json, authorization: "AWS4-HMAC-SHA256 Credential=x" })
      expect(signed.status).toBe(200)
      expect(((await signed.json()) as { KeyMetadata: { Arn: string } }).KeyMetadata.Arn).toBe(key.arn)
      const unknown = await post({ ...json, authorization: "x", "x-amz-target": "TrentService.ScheduleKeyDeletion" })
      expect(((await unknown.json()) as { __type: string }).__type).toBe("UnknownOperationException")
      expect(kms.counts).toEqual({ DescribeKey: 2, ScheduleKeyDeletion: 1 })
    } finally {
      await kms.close()
    }
  })
})
