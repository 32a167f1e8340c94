/**
 * A KMS stand-in for tests: a local HTTP endpoint speaking KMS's JSON protocol
 * (`X-Amz-Target: TrentService.<Operation>`, `application/x-amz-json-1.1`,
 * base64 blobs, errors as `{"__type", "message"}`), so the real
 * `@aws-sdk/client-kms` client (serialization, retries, error classes) is what
 * the keyring is tested through. Not a feature: it lives under test/.
 *
 * Ciphertexts are real AES-256-GCM under a per-key random master key, with the
 * key id and the encryption context as associated data, so a wrong context or
 * key is refused the way KMS refuses it. Signatures are not checked, but an
 * `Authorization` header must be present.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/** The operations served over HTTP. */
export type Operation = "GenerateDataKey" | "Encrypt" | "Decrypt" | "DescribeKey"

/** Exceptions a test can make the endpoint answer with. */
export type InjectedError =
  | "ThrottlingException"
  | "LimitExceededException"
  | "AccessDeniedException"
  | "KMSInternalException"
  | "DependencyTimeoutException"
  | "KeyUnavailableException"
  | "InvalidSignatureException"
  | "UnrecognizedClientException"

/** A key made by `createKey`. */
export interface FakeKey {
  readonly keyId: string
  readonly arn: string
}

/** A request as the endpoint saw it, for asserting what the client asked for. */
export interface RecordedRequest {
  readonly operation: string
  readonly keyId: string | undefined
  readonly encryptionContext: Readonly<Record<string, string>> | undefined
  readonly authorization: string | undefined
}

/** A running fake KMS endpoint. */
export interface FakeKms {
  readonly endpoint: string
  readonly region: string
  readonly accountId: string
  /** Makes an enabled symmetric key, optionally with an alias (`teleport` or `alias/teleport`). */
  readonly createKey: (options?: { readonly alias?: string; readonly description?: string }) => FakeKey
  /** Points an alias at a key (creating or moving it). */
  readonly createAlias: (alias: string, keyId: string) => void
  readonly disableKey: (keyId: string) => void
  readonly enableKey: (keyId: string) => void
  readonly scheduleDeletion: (keyId: string) => void
  /** The next `times` matching requests (all operations if none is given) fail with `error`. */
  readonly injectFailures: (options: {
    readonly operation?: Operation
    readonly error: InjectedError
    readonly message?: string
    readonly times: number
  }) => void
  /** Requests received per `X-Amz-Target` operation, failed ones included. */
  readonly counts: Readonly<Record<string, number>>
  readonly requests: ReadonlyArray<RecordedRequest>
  /** Forgets counts, requests and pending injected failures (keys stay). */
  readonly reset: () => void
  readonly close: () => Promise<void>
}

type KeyState = "Enabled" | "Disabled" | "PendingDeletion"

interface Key {
  readonly keyId: string
  readonly arn: string
  readonly description: string
  readonly created: number
  readonly material: Buffer
  state: KeyState
  deletionDate?: number
}

class KmsException extends Error {
  readonly type: string
  readonly status: number
  constructor(type: string, message: string | undefined, status = 400) {
    super(message ?? "")
    this.type = type
    this.status = status
  }
}

const statusOf: Partial<Record<InjectedError, number>> = { KMSInternalException: 500, DependencyTimeoutException: 503 }

const defaultMessage = (error: InjectedError, operation: string, arn: string) =>
  error === "AccessDeniedException"
    ? `User: arn:aws:iam::111122223333:user/test is not authorized to perform: kms:${operation} on resource: ${arn}`
    : error === "ThrottlingException"
    ? "Rate exceeded"
    : `${error} (injected)`

const canonicalContext = (context: Readonly<Record<string, string>> | undefined) =>
  JSON.stringify(Object.entries(context ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

const aad = (keyId: string, context: Readonly<Record<string, string>> | undefined) =>
  Buffer.from(JSON.stringify(["fake-kms/v1", keyId, canonicalContext(context)]))

const version = 1
const uuidLength = 36

/** version | key id (36 ASCII bytes, so Decrypt without KeyId finds the key) | iv | tag | ciphertext */
const seal = (key: Key, plaintext: Buffer, context: Readonly<Record<string, string>> | undefined): Buffer => {
  const iv = randomBytes(12)
  const cipher = createCipheriv("aes-256-gcm", key.material, iv)
  cipher.setAAD(aad(key.keyId, context))
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
  return Buffer.concat([Buffer.from([version]), Buffer.from(key.keyId, "ascii"), iv, cipher.getAuthTag(), body])
}

const embeddedKeyId = (blob: Buffer): string | undefined =>
  blob.length > 1 + uuidLength + 12 + 16 && blob[0] === version
    ? blob.subarray(1, 1 + uuidLength).toString("ascii")
    : undefined

const open = (key: Key, blob: Buffer, context: Readonly<Record<string, string>> | undefined): Buffer | undefined => {
  const at = 1 + uuidLength
  try {
    const decipher = createDecipheriv("aes-256-gcm", key.material, blob.subarray(at, at + 12))
    decipher.setAAD(aad(key.keyId, context))
    decipher.setAuthTag(blob.subarray(at + 12, at + 28))
    return Buffer.concat([decipher.update(blob.subarray(at + 28)), decipher.final()])
  } catch {
    return undefined
  }
}

const readBody = (request: http.IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    request.on("error", reject)
  })

const blob = (value: unknown, field: string): Buffer => {
  if (typeof value !== "string") {
    throw new KmsException("ValidationException", `1 validation error detected: ${field} must not be null`)
  }
  return Buffer.from(value, "base64")
}

/** Starts a fake KMS on 127.0.0.1 at a random port. */
export const start = async (
  options: { readonly region?: string; readonly accountId?: string } = {}
): Promise<FakeKms> => {
  const region = options.region ?? "us-east-1"
  const accountId = options.accountId ?? "111122223333"
  const arnPrefix = `arn:aws:kms:${region}:${accountId}:`
  const keys = new Map<string, Key>()
  const aliases = new Map<string, string>()
  const failures: Array<{ operation?: Operation; error: InjectedError; message?: string; remaining: number }> = []
  let counts: Record<string, number> = {}
  let requests: Array<RecordedRequest> = []

  const aliasName = (alias: string) => (alias.startsWith("alias/") ? alias : `alias/${alias}`)

  /** Any of KMS's four ways to name a key, to the key; the state is not checked here. */
  const find = (id: unknown): Key => {
    if (typeof id !== "string" || id === "") {
      throw new KmsException("ValidationException", "1 validation error detected: KeyId must not be null")
    }
    if (id.startsWith("arn:") && !id.startsWith(arnPrefix)) {
      throw new KmsException("NotFoundException", `Key '${id}' does not exist`)
    }
    const name = id.startsWith(arnPrefix) ? id.slice(arnPrefix.length) : id
    if (name.startsWith("alias/")) {
      const target = aliases.get(name)
      if (target === undefined) throw new KmsException("NotFoundException", `Alias ${arnPrefix}${name} is not found.`)
      return keys.get(target)!
    }
    const keyId = name.startsWith("key/") ? name.slice(4) : name
    const key = keys.get(keyId)
    if (key === undefined) {
      throw new KmsException(
        "NotFoundException",
        id.startsWith("arn:") || /^[0-9a-f-]{36}$/.test(id)
          ? `Key '${arnPrefix}key/${keyId}' does not exist`
          : `Invalid keyId '${id}'`
      )
    }
    return key
  }
  const usable = (key: Key): Key => {
    if (key.state === "Disabled") throw new KmsException("DisabledException", `${key.arn} is disabled.`)
    if (key.state === "PendingDeletion") {
      throw new KmsException("KMSInvalidStateException", `${key.arn} is pending deletion.`)
    }
    return key
  }
  const context = (value: unknown): Record<string, string> | undefined => {
    if (value === undefined || value === null) return undefined
    if (typeof value !== "object" || Object.values(value).some((v) => typeof v !== "string")) {
      throw new KmsException("SerializationException", "EncryptionContext must map strings to strings")
    }
    return value as Record<string, string>
  }

  const operations: Record<Operation, (input: Record<string, unknown>) => unknown> = {
    DescribeKey: (input) => {
      const key = find(input["KeyId"])
      return {
        KeyMetadata: {
          AWSAccountId: accountId,
          KeyId: key.keyId,
          Arn: key.arn,
          CreationDate: key.created,
          Enabled: key.state === "Enabled",
          Description: key.description,
          KeyUsage: "ENCRYPT_DECRYPT",
          KeyState: key.state,
          ...(key.deletionDate === undefined ? {} : { DeletionDate: key.deletionDate }),
          Origin: "AWS_KMS",
          KeyManager: "CUSTOMER",
          CustomerMasterKeySpec: "SYMMETRIC_DEFAULT",
          KeySpec: "SYMMETRIC_DEFAULT",
          EncryptionAlgorithms: ["SYMMETRIC_DEFAULT"],
          MultiRegion: false
        }
      }
    },
    GenerateDataKey: (input) => {
      const key = usable(find(input["KeyId"]))
      const spec = input["KeySpec"]
      const size = spec === "AES_256" ? 32 : spec === "AES_128" ? 16 : input["NumberOfBytes"]
      if (typeof size !== "number" || !Number.isInteger(size) || size < 1 || size > 1024) {
        throw new KmsException("ValidationException", "Please specify either number of bytes or key spec.")
      }
      const plaintext = randomBytes(size)
      const ciphertext = seal(key, plaintext, context(input["EncryptionContext"]))
      return { CiphertextBlob: ciphertext.toString("base64"), Plaintext: plaintext.toString("base64"), KeyId: key.arn }
    },
    Encrypt: (input) => {
      const key = usable(find(input["KeyId"]))
      const plaintext = blob(input["Plaintext"], "plaintext")
      if (plaintext.length < 1 || plaintext.length > 4096) {
        throw new KmsException(
          "ValidationException",
          "1 validation error detected: plaintext length must be between 1 and 4096"
        )
      }
      const ciphertext = seal(key, plaintext, context(input["EncryptionContext"]))
      return { CiphertextBlob: ciphertext.toString("base64"), KeyId: key.arn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT" }
    },
    Decrypt: (input) => {
      const ciphertext = blob(input["CiphertextBlob"], "ciphertextBlob")
      // Real KMS says nothing about why a ciphertext fails: no message at all.
      const embedded = embeddedKeyId(ciphertext)
      const owner = embedded === undefined ? undefined : keys.get(embedded)
      if (owner === undefined) throw new KmsException("InvalidCiphertextException", undefined)
      if (input["KeyId"] !== undefined && find(input["KeyId"]) !== owner) {
        throw new KmsException(
          "IncorrectKeyException",
          "The key ID in the request does not identify a CMK that can perform this operation."
        )
      }
      const plaintext = open(usable(owner), ciphertext, context(input["EncryptionContext"]))
      if (plaintext === undefined) throw new KmsException("InvalidCiphertextException", undefined)
      return { KeyId: owner.arn, Plaintext: plaintext.toString("base64"), EncryptionAlgorithm: "SYMMETRIC_DEFAULT" }
    }
  }

  const respond = (response: http.ServerResponse, status: number, body: unknown) => {
    response.writeHead(status, { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": randomUUID() })
    response.end(JSON.stringify(body))
  }

  const handle = async (request: http.IncomingMessage, response: http.ServerResponse) => {
    const text = await readBody(request)
    const target = request.headers["x-amz-target"]
    const operation = typeof target === "string" && target.startsWith("TrentService.")
      ? target.slice("TrentService.".length)
      : ""
    counts[operation] = (counts[operation] ?? 0) + 1
    try {
      if (request.method !== "POST" || request.url !== "/") {
        throw new KmsException("UnknownOperationException", undefined, 404)
      }
      if (request.headers["authorization"] === undefined) {
        throw new KmsException("MissingAuthenticationTokenException", "Missing Authentication Token")
      }
      if (request.headers["content-type"] !== "application/x-amz-json-1.1") {
        throw new KmsException("SerializationException", `unexpected content-type ${request.headers["content-type"]}`)
      }
      if (!Object.hasOwn(operations, operation)) throw new KmsException("UnknownOperationException", undefined)
      let input: Record<string, unknown>
      try {
        input = JSON.parse(text) as Record<string, unknown>
      } catch {
        throw new KmsException("SerializationException", "Start of structure or map found where not expected.")
      }
      const keyId = typeof input["KeyId"] === "string" ? input["KeyId"] : undefined
      const encryptionContext = context(input["EncryptionContext"])
      requests.push({ operation, keyId, encryptionContext, authorization: request.headers["authorization"] })
      const index = failures.findIndex((rule) => rule.operation === undefined || rule.operation === operation)
      const rule = failures[index]
      if (rule !== undefined) {
        if (--rule.remaining <= 0) failures.splice(index, 1)
        const arn = keyId === undefined
          ? `${arnPrefix}key/*`
          : keyId.startsWith("arn:")
          ? keyId
          : `${arnPrefix}key/${keyId}`
        throw new KmsException(
          rule.error,
          rule.message ?? defaultMessage(rule.error, operation, arn),
          statusOf[rule.error]
        )
      }
      respond(response, 200, operations[operation as Operation](input))
    } catch (error) {
      if (!(error instanceof KmsException)) {
        respond(response, 500, { __type: "KMSInternalException", message: "fake KMS failed" })
        return
      }
      respond(
        response,
        error.status,
        error.message === "" ? { __type: error.type } : { __type: error.type, message: error.message }
      )
    }
  }

  const server = http.createServer((request, response) => {
    handle(request, response).catch(() => response.destroy())
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const { port } = server.address() as AddressInfo

  const createKey = (options: { readonly alias?: string; readonly description?: string } = {}): FakeKey => {
    const keyId = randomUUID()
    const key: Key = {
      keyId,
      arn: `${arnPrefix}key/${keyId}`,
      description: options.description ?? "",
      created: Math.floor(Date.now() / 1000),
      material: randomBytes(32),
      state: "Enabled"
    }
    keys.set(keyId, key)
    if (options.alias !== undefined) aliases.set(aliasName(options.alias), keyId)
    return { keyId, arn: key.arn }
  }
  const setState = (id: string, state: KeyState) => {
    const key = find(id)
    key.state = state
    if (state === "PendingDeletion") key.deletionDate = Math.floor(Date.now() / 1000) + 7 * 86_400
    else delete key.deletionDate
  }

  return {
    endpoint: `http://127.0.0.1:${port}`,
    region,
    accountId,
    createKey,
    createAlias: (alias, keyId) => void aliases.set(aliasName(alias), find(keyId).keyId),
    disableKey: (id) => setState(id, "Disabled"),
    enableKey: (id) => setState(id, "Enabled"),
    scheduleDeletion: (id) => setState(id, "PendingDeletion"),
    injectFailures: ({ error, message, operation, times }) => {
      if (times > 0) {
        failures.push({
          error,
          remaining: times,
          ...(operation === undefined ? {} : { operation }),
          ...(message === undefined ? {} : { message })
        })
      }
    },
    get counts() {
      return { ...counts }
    },
    get requests() {
      return [...requests]
    },
    reset: () => {
      counts = {}
      requests = []
      failures.length = 0
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        // Idempotent: a test may stop the endpoint before its scope does.
        if (!server.listening) return resolve()
        server.close((error) => (error ? reject(error) : resolve()))
        server.closeAllConnections()
      })
  }
}

/** A fake KMS for the life of the scope. */
export const scoped = (
  options?: { readonly region?: string; readonly accountId?: string }
): Effect.Effect<FakeKms, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => start(options)),
    (kms) => Effect.promise(() => kms.close())
  )
