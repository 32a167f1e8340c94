import { DynamoDBClient, PutItemCommand } from "@aws-sdk/client-dynamodb"
import type { DynamoDBClientConfig } from "@aws-sdk/client-dynamodb"
import { afterEach, describe, expect, it, vi } from "@effect/vitest"
import { Sha256 as SdkSha256 } from "@smithy/core/checksum"
import { clearCredentialCache } from "@smithy/signature-v4"
import fc from "fast-check"
import { createHash, createHmac, randomBytes } from "node:crypto"
import { SigningSha256 } from "../../src/infra/crypto/SigningHash.ts"
import type { SourceData } from "../../src/infra/crypto/SigningHash.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261204), numRuns: Number(process.env.FC_RUNS ?? 200) }

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

/** `hash` after every part was given to it, in order. */
const fed = <H extends { update(part: string | Uint8Array): unknown }>(
  hash: H,
  parts: ReadonlyArray<string | Uint8Array>
) => {
  for (const part of parts) hash.update(part)
  return hash
}

describe("SigningSha256", () => {
  it("hashes as Node's SHA-256, strings as UTF-8", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 300 })), { maxLength: 6 }),
        async (parts) => {
          expect(hex(await fed(new SigningSha256(), parts).digest())).toBe(
            fed(createHash("sha256"), parts).digest("hex")
          )
        }
      ),
      params
    )
  })

  it("with a secret, is Node's HMAC-SHA256 under it, for string and byte keys alike", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string({ minLength: 1, maxLength: 80 }), fc.uint8Array({ maxLength: 80 })),
        fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 4 }),
        async (secret, parts) => {
          expect(hex(await fed(new SigningSha256(secret), parts).digest())).toBe(
            fed(createHmac("sha256", secret), parts).digest("hex")
          )
        }
      ),
      params
    )
  })

  it("digests as the SDK's own hash, for every kind of secret it may be given, the empty ones included", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.option(fc.oneof(fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 })), { nil: undefined }),
        fc.array(fc.oneof(fc.string(), fc.uint8Array({ maxLength: 200 })), { maxLength: 4 }),
        async (secret, parts) => {
          // The SDK's is typed for bytes only; the signer hands it strings as UTF-8 bytes.
          const bytes = parts.map((part) => typeof part === "string" ? Buffer.from(part, "utf8") : part)
          expect(hex(await fed(new SigningSha256(secret), parts).digest())).toBe(
            hex(await fed(new SdkSha256(secret), bytes).digest())
          )
        }
      ),
      params
    )
  })

  it("keys an HMAC by the bytes a key holds when it is used: views, ArrayBuffers, and a key changed in place", async () => {
    const key = new Uint8Array(randomBytes(40))
    const view = key.subarray(4, 36)
    const expected = createHmac("sha256", view).update("msg").digest("hex")
    const fromView = new SigningSha256(view)
    fromView.update("msg")
    expect(hex(await fromView.digest())).toBe(expected)
    const fromBuffer = new SigningSha256(view.slice().buffer)
    fromBuffer.update("msg")
    expect(hex(await fromBuffer.digest())).toBe(expected)
    // The same key object changed in place: its new bytes, not the key made of its old ones.
    view.fill(9)
    const changed = new SigningSha256(view)
    changed.update("msg")
    expect(hex(await changed.digest())).toBe(createHmac("sha256", Buffer.alloc(32, 9)).update("msg").digest("hex"))
  })

  it("lets a plain hash go on after a digest, ends an HMAC at its digest, and starts again on reset", async () => {
    const hash = new SigningSha256()
    hash.update("a")
    expect(hex(await hash.digest())).toBe(createHash("sha256").update("a").digest("hex"))
    hash.update("b")
    expect(hex(await hash.digest())).toBe(createHash("sha256").update("ab").digest("hex"))
    hash.reset()
    expect(hex(await hash.digest())).toBe(createHash("sha256").digest("hex"))

    const mac = new SigningSha256("k")
    mac.update("a")
    await mac.digest()
    expect(() => mac.update("b")).toThrow("already finished")
    mac.reset()
    mac.update("b")
    expect(hex(await mac.digest())).toBe(createHmac("sha256", "k").update("b").digest("hex"))
  })
})

describe("a client signing with SigningSha256", () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  /** The headers of each request a client sends, every request answered with an empty JSON body. */
  const signedHeaders = async (sha256: DynamoDBClientConfig["sha256"] | undefined, sends: number) => {
    const seen: Array<Record<string, string>> = []
    const client = new DynamoDBClient({
      region: "eu-west-1",
      endpoint: "https://dynamodb.eu-west-1.amazonaws.com",
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
      maxAttempts: 1,
      ...(sha256 === undefined ? {} : { sha256 }),
      requestHandler: {
        handle: async (request: { headers: Record<string, string> }) => {
          seen.push({ ...request.headers })
          const body = Buffer.from("{}")
          return {
            response: {
              statusCode: 200,
              headers: { "content-type": "application/x-amz-json-1.0", "content-length": String(body.length) },
              body
            }
          }
        },
        updateHttpClientConfig: () => {},
        httpHandlerConfigs: () => ({})
      } as unknown as NonNullable<DynamoDBClientConfig["requestHandler"]>
    })
    // The invocation id is random and signed: pinned, so two clients' signatures can be compared.
    const pin = (next: (args: { request: unknown }) => Promise<unknown>) => (args: { request: unknown }) => {
      const request = args.request as { headers: Record<string, string> }
      request.headers["amz-sdk-invocation-id"] = "00000000-0000-4000-8000-000000000000"
      return next(args)
    }
    client.middlewareStack.addRelativeTo(
      pin as unknown as Parameters<typeof client.middlewareStack.addRelativeTo>[0],
      { relation: "before", toMiddleware: "httpSigningMiddleware", name: "pinInvocationId" }
    )
    for (let i = 0; i < sends; i++) {
      await client.send(
        new PutItemCommand({
          TableName: "events",
          Item: { pk: { S: "ns" }, sk: { B: new Uint8Array([1, 2, 3, i]) }, v: { B: randomBytes(0) } },
          ConditionExpression: "attribute_not_exists(#sk)",
          ExpressionAttributeNames: { "#sk": "sk" }
        })
      )
    }
    client.destroy()
    return seen
  }

  it("signs every request exactly as the SDK's own hash does", async () => {
    vi.useFakeTimers({ toFake: ["Date"] })
    vi.setSystemTime(new Date("2026-12-04T12:00:00Z"))
    let macs = 0
    class Counted extends SigningSha256 {
      constructor(secret?: SourceData) {
        super(secret)
        if (secret !== undefined) macs++
      }
    }
    // The signer caches derived signing keys process-wide: cleared before each client, so each derives its own.
    clearCredentialCache()
    const ours = await signedHeaders(Counted, 3)
    // The client signed with it: the signing key's derivation (four MACs, once), and per request the MAC naming the
    // credentials in the signer's cache and the signature.
    expect(macs).toBe(4 + 2 * 3)
    clearCredentialCache()
    const sdks = await signedHeaders(undefined, 3)
    expect(ours).toHaveLength(3)
    expect(ours.map((headers) => headers["authorization"])).toEqual(sdks.map((headers) => headers["authorization"]))
    expect(ours[0]!["authorization"]).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20261204\/eu-west-1\//)
    // Different bodies, different signatures: the comparison compares something.
    expect(new Set(ours.map((headers) => headers["authorization"])).size).toBe(3)
  })
})
