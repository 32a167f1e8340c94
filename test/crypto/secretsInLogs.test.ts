/**
 * No secret reaches a log line or an error text: every log line is captured
 * (all levels, rendered the ways Effect's loggers render them, console too),
 * and every error of config loading, store workloads with raw AES keyrings,
 * KMS keyring failures, tampered items and store startup is rendered as
 * message, String, JSON and util.inspect. None may contain the AWS secret
 * key, a raw AES key (base64 or hex), a data key's plaintext or a value.
 */
import { PutItemCommand, QueryCommand, UpdateItemCommand } from "@aws-sdk/client-dynamodb"
import type { AttributeValue } from "@aws-sdk/client-dynamodb"
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Logger, Redacted, References, Stream } from "effect"
import { randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as util from "node:util"
import { Action, Condition } from "../../src/domain/AtomicWrite.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import { DataKeys } from "../../src/infra/crypto/DataKeys.ts"
import { partitionOf } from "../../src/infra/crypto/DataKeyStore.ts"
import * as RawAesKeyring from "../../src/infra/crypto/RawAesKeyring.ts"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import { Store } from "../../src/programs/store/Store.ts"
import * as FakeKms from "../support/FakeKms.ts"
import { endpoint, freshTableName, makeClient } from "../support/TestStore.ts"

// ---- the secrets -------------------------------------------------------------------------------------------------
const awsAccessKey = "AKIASECRETSINLOGS001"
const awsSecretKey = `wJalr/${randomBytes(12).toString("base64url")}+EXAMPLEKEY`
const rawKey = randomBytes(32)
const rawKeyBase64 = rawKey.toString("base64")
const marker = `value-marker-${randomUUID()}`
/** More secrets found while the tests run: data key plaintexts, generated key files, bad keys. */
const found: Array<readonly [string, Uint8Array | string]> = []

/** Ways bytes show up in text; compared with whitespace removed, so `<Buffer 0a 1b …>` and wrapped arrays match too. */
const bytesForms = (bytes: Uint8Array) => {
  const buf = Buffer.from(bytes)
  return [
    buf.toString("base64"),
    buf.toString("base64url"),
    buf.toString("hex"),
    buf.subarray(0, 12).toString("hex"),
    Array.from(bytes.subarray(0, 8)).join(",")
  ]
}
const secretForms = (): ReadonlyArray<readonly [string, string]> => [
  ["AWS secret key", awsSecretKey],
  ...bytesForms(rawKey).map((form) => ["raw AES key", form] as const),
  ["value marker", marker],
  ...bytesForms(Buffer.from(marker)).map((form) => ["value marker (encoded)", form] as const),
  ...found.flatMap(([name, secret]) =>
    typeof secret === "string" ? [[name, secret] as const] : bytesForms(secret).map((form) => [name, form] as const)
  )
]

// ---- capturing --------------------------------------------------------------------------------------------------
const logLines: Array<string> = []
const errorTexts: Array<string> = []

const json = (value: unknown) => {
  try {
    return JSON.stringify(value) ?? ""
  } catch (error) {
    return `unserializable: ${String(error)}`
  }
}
const renderings = (value: unknown): Array<string> => [
  String(value),
  json(value),
  util.inspect(value, { depth: 12, showHidden: true }),
  value instanceof Error ? `${value.message}\n${value.stack}` : ""
]

const captureLogger = Logger.make((options) => {
  const parts = [
    options.logLevel,
    ...(options.message as ReadonlyArray<unknown>).flatMap(renderings),
    Cause.pretty(options.cause),
    json(options.fiber.getRef(References.CurrentLogAnnotations)),
    json(options.fiber.getRef(References.CurrentLogSpans)),
    String(Logger.formatLogFmt.log(options)),
    json(Logger.formatJson.log(options))
  ]
  logLines.push(parts.join("\n"))
})
const captureLayer = Layer.mergeAll(Logger.layer([captureLogger]), Layer.succeed(References.MinimumLogLevel, "All"))

beforeEach(() => {
  logLines.length = 0
  errorTexts.length = 0
  for (const method of ["log", "info", "warn", "error", "debug", "trace"] as const) {
    vi.spyOn(console, method).mockImplementation((...args: Array<unknown>) =>
      void logLines.push(args.flatMap(renderings).join(" "))
    )
  }
})
afterEach(() => void vi.restoreAllMocks())

const noteCause = (cause: Cause.Cause<unknown>) => {
  errorTexts.push(Cause.pretty(cause), ...renderings(Cause.squash(cause)))
  for (const reason of cause.reasons) {
    if (Cause.isFailReason(reason)) errorTexts.push(...renderings(reason.error))
    else if (Cause.isDieReason(reason)) errorTexts.push(...renderings(reason.defect))
  }
}

/** Runs an effect that must fail, records every rendering of its failure, and returns the failure. */
const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(effect)
    if (Exit.isSuccess(exit)) return yield* Effect.die(new Error("expected a failure"))
    noteCause(exit.cause)
    return Cause.squash(exit.cause) as E & { readonly _tag: string; readonly message: string }
  })

/** The names of the secrets found anywhere in the captured logs and error texts. */
const leaks = () => {
  const texts = [...logLines, ...errorTexts].map((text) => text.replace(/\s+/g, ""))
  const seen = secretForms().filter(([, form]) => texts.some((text) => text.includes(form.replace(/\s+/g, ""))))
  return [...new Set(seen.map(([name]) => name))]
}

/** A test body with logs captured; afterwards nothing captured may hold a secret. */
const capturing = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    yield* body
    expect(logLines.length + errorTexts.length).toBeGreaterThan(0)
    expect(leaks()).toEqual([])
  }).pipe(Effect.provide(captureLayer), Effect.onError((cause) => Effect.sync(() => noteCause(cause))))

// ---- helpers --------------------------------------------------------------------------------------------------
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-secrets-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
const fileWith = (name: string, text: string) => {
  const file = path.join(dir, `${randomUUID()}-${name}`)
  fs.writeFileSync(file, text, { mode: 0o600 })
  return file
}

const storeEnv = (table = freshTableName("secrets")) => ({
  DYNASTATE_ENDPOINT: endpoint(),
  DYNASTATE_REGION: "us-east-1",
  DYNASTATE_TABLE_NAME: table,
  DYNASTATE_ACCESS_KEY: awsAccessKey,
  DYNASTATE_SECRET_KEY: awsSecretKey
})

/** Builds the store from configuration and notes the plaintext of its current data key. */
const liveStore = (env: Record<string, string>) =>
  Effect.gen(function*() {
    const config = yield* StoreConfig.load({ env })
    const context = yield* Layer.build(StoreLive.layer(config))
    const store = Context.get(context, Store)
    const noteDataKey = Effect.gen(function*() {
      const key = yield* Context.get(context, DataKeys).forEncryption("", 0)
      const plaintext = Redacted.value(key.material)
      expect(plaintext).toHaveLength(32)
      found.push(["data key plaintext", new Uint8Array(plaintext)])
    })
    return { store, config, noteDataKey }
  })

const value = (n: number | string) => Buffer.from(`${marker}/${n}`)

/** Exercises every operation, failing ones included; every failure's renderings are recorded. */
const workload = (store: Store["Service"]) =>
  Effect.gen(function*() {
    const keys = Array.from({ length: 12 }, (_, i) => `/secrets/${i}`)
    yield* Effect.forEach(keys, (key, i) => store.put({ key, value: value(i) }), { concurrency: 4, discard: true })
    expect(Buffer.from((yield* store.get(keys[3]!)).value).toString()).toBe(`${marker}/3`)
    expect(yield* store.getRange("/secrets/", "/secrets/~")).toHaveLength(12)
    const lease = yield* store.update({ key: keys[0]!, value: value("updated"), expires: Date.now() + 60_000 })
    yield* store.keepAlive(lease, Date.now() + 120_000)
    yield* store.atomicWrite([{
      key: "/secrets/atomic",
      condition: Condition.notExists,
      action: Action.put(value("atomic"))
    }])
    expect((yield* Stream.runCollect(store.history(keys[0]!))).length).toBeGreaterThanOrEqual(2)
    expect(yield* failure(store.create({ key: keys[1]!, value: value("again") }))).toMatchObject({
      _tag: "AlreadyExists"
    })
    expect(
      yield* failure(
        store.compareAndSwap({ key: keys[2]!, value: value("wrong") }, { key: keys[2]!, value: value("new") })
      )
    )
      .toMatchObject({ _tag: "CompareFailed" })
    expect(
      yield* failure(
        store.atomicWrite([{ key: keys[4]!, condition: Condition.notExists, action: Action.put(value("x")) }])
      )
    )
      .toMatchObject({ _tag: "ConditionFailed" })
    expect(
      yield* failure(
        store.put({ key: "/secrets/huge", value: Buffer.concat([value("huge"), Buffer.alloc(16 * 1024 * 1024)]) })
      )
    )
      .toMatchObject({ _tag: "ValueTooLarge" })
    expect(yield* failure(store.put({ key: "", value: value("bad key") }))).toMatchObject({ _tag: "BadParameter" })
    expect(yield* failure(store.get("/secrets/missing"))).toMatchObject({ _tag: "NotFound" })
    yield* store.delete(keys[5]!)
    return keys
  })

type Item = Record<string, AttributeValue>
const flip = (bytes: Uint8Array, at: number) => {
  const copy = new Uint8Array(bytes)
  copy[at < 0 ? copy.length + at : at]! ^= 0x01
  return copy
}

// ---- the tests -------------------------------------------------------------------------------------------------
describe("secrets never reach logs or errors", () => {
  it.live("the capture itself sees planted secrets: at Trace level, in annotations, causes, console and errors", () =>
    Effect.gen(function*() {
      yield* Effect.logTrace("planted", new Uint8Array(rawKey)).pipe(
        Effect.annotateLogs("marker", marker),
        Effect.provide(captureLayer)
      )
      yield* Effect.logDebug("cause", Cause.fail(new Error(awsSecretKey))).pipe(Effect.provide(captureLayer))
      console.warn(`${marker}`)
      expect(leaks()).toEqual(["AWS secret key", "raw AES key", "value marker"])
      logLines.length = 0
      console.error({ key: Buffer.from(rawKey) })
      expect(leaks()).toEqual(["raw AES key"])
      logLines.length = 0
      yield* failure(Effect.fail({ detail: Buffer.from(marker).toString("base64") }))
      expect(leaks()).toEqual(["value marker (encoded)"])
    }))

  it.live("config loading: good, unknown keys, bad values, a key without its secret, a bad inline key", () =>
    capturing(Effect.gen(function*() {
      const yaml =
        `storage:\n  access_key: ${awsAccessKey}\n  secret_key: ${awsSecretKey}\n  keyring_key: ${rawKeyBase64}\n`
      const config = yield* StoreConfig.load({
        file: fileWith("good.yaml", yaml + "  unknown_keys: warn\n  audit_events_uri: ['stdout://']\n"),
        env: {}
      })
      errorTexts.push(...renderings(config), ...renderings(config.secretKey), ...renderings(config.keyringKey))
      expect(logLines.some((line) => line.includes("audit_events_uri"))).toBe(true)

      const bad = [
        StoreConfig.load({ file: fileWith("billing.yaml", yaml + "  billing_mode: monthly\n"), env: {} }),
        StoreConfig.load({ env: { DYNASTATE_ACCESS_KEY: awsAccessKey, DYNASTATE_KEYRING_KEY: rawKeyBase64 } }),
        StoreConfig.load({ env: { DYNASTATE_SECRET_KEY: awsSecretKey } }),
        StoreConfig.load({ env: { ...storeEnv(), DYNASTATE_READ_CAPACITY_UNITS: awsSecretKey } }),
        StoreConfig.load({
          file: fileWith("type.yaml", yaml + "  type: etcd\n"),
          env: { DYNASTATE_SECRET_KEY: awsSecretKey }
        })
      ]
      for (const load of bad) expect(yield* failure(load)).toMatchObject({ _tag: "ConfigInvalid" })

      // A malformed inline key is still (most of) a key: the error must not echo it.
      const almost = rawKeyBase64.slice(0, 40)
      found.push(["malformed inline key", almost])
      const withBadKey = yield* StoreConfig.load({ env: { ...storeEnv(), DYNASTATE_KEYRING_KEY: almost } })
      const keyringError = yield* failure(Layer.build(StoreLive.keyringLayer(withBadKey)))
      expect(keyringError).toMatchObject({ _tag: "KeyringError", failure: "invalid-key-material" })
      const badFile = fileWith("bad.key", `good:${rawKeyBase64}\nbroken:${almost}\n`)
      const fileError = yield* failure(
        Layer.build(StoreLive.keyringLayer(yield* StoreConfig.load({ env: { DYNASTATE_KEYRING_FILE: badFile } })))
      )
      expect(fileError.message).toContain("line 2")
    })))

  // Regression (was a bug in src/infra/StoreConfig.ts readYamlFile): the yaml parser's error message quotes the offending source lines,
  // and ConfigInvalid passes it on as its reason, so a syntax error next to secret_key puts the secret in the error.
  it.live("a YAML syntax error next to secret_key does not quote the secret", () =>
    capturing(Effect.gen(function*() {
      const files = [
        `storage:\n  access_key: ${awsAccessKey}\n  secret_key: ${awsSecretKey}\n   region: us-east-1\n`,
        `storage:\n  secret_key: ${awsSecretKey}\n  secret_key: again\n  access_key: ${awsAccessKey}\n`,
        `storage:\n  keyring_key: ${rawKeyBase64}\n  keyring_key: again\n`
      ]
      for (const text of files) {
        expect(yield* failure(StoreConfig.load({ file: fileWith("syntax.yaml", text), env: {} }))).toMatchObject({
          _tag: "ConfigInvalid"
        })
      }
    })))

  it.live("a store workload with a raw AES keyring from a key file", () =>
    capturing(Effect.gen(function*() {
      const keyFile = fileWith("keyring.key", `# test key\nprimary:${rawKeyBase64}\n`)
      const { noteDataKey, store } = yield* liveStore({ ...storeEnv(), DYNASTATE_KEYRING_FILE: keyFile })
      yield* workload(store)
      yield* noteDataKey
    })))

  it.live("a store workload with a raw AES keyring from DYNASTATE_KEYRING_KEY", () =>
    capturing(Effect.gen(function*() {
      const { noteDataKey, store } = yield* liveStore({ ...storeEnv(), DYNASTATE_KEYRING_KEY: rawKeyBase64 })
      yield* workload(store)
      yield* noteDataKey
    })))

  it.live("StoreLive startup on the embedded-style path (key file made on first start) with endpoint set", () =>
    capturing(Effect.gen(function*() {
      const keyFile = path.join(dir, randomUUID(), "keyring.key")
      const env = { ...storeEnv(), DYNASTATE_KEYRING_FILE: keyFile, DYNASTATE_DATA_DIR: path.join(dir, "data") }
      const { config, noteDataKey, store } = yield* liveStore(env)
      expect(StoreConfig.isEmbedded(config)).toBe(false)
      const made = /:([A-Za-z0-9+/]{43}=)/.exec(fs.readFileSync(keyFile, "utf8"))?.[1]
      expect(made).toBeDefined()
      found.push(["generated key file key", new Uint8Array(Buffer.from(made!, "base64"))])
      expect(logLines.some((line) => line.includes("created a new raw AES key file"))).toBe(true)
      expect(logLines.some((line) => line.includes("creating table"))).toBe(true)
      yield* workload(store)
      yield* noteDataKey
      // A second start reads the same file, and an unreadable one fails without echoing anything of it.
      const again = (yield* liveStore(env)).store
      expect(Buffer.from((yield* again.get("/secrets/3")).value).toString()).toBe(`${marker}/3`)
      expect(fs.readFileSync(keyFile, "utf8")).toContain(made!)
      expect(yield* failure(liveStore({ ...env, DYNASTATE_KEYRING_FILE: dir }))).toMatchObject({ _tag: "KeyringError" })
    })))

  it.live("KMS keyring failures: access denied, throttling, internal errors, bad signatures", () =>
    capturing(Effect.gen(function*() {
      const fake = yield* FakeKms.scoped()
      fake.createKey({ alias: "alias/teleport" })
      const env = { ...storeEnv(), DYNASTATE_KMS_KEY: "alias/teleport", DYNASTATE_KMS_ENDPOINT: fake.endpoint }

      fake.injectFailures({ operation: "DescribeKey", error: "AccessDeniedException", times: 1 })
      expect(yield* failure(liveStore(env))).toMatchObject({ _tag: "KeyringError", failure: "access-denied" })

      const { noteDataKey, store } = yield* liveStore(env)
      fake.injectFailures({ operation: "GenerateDataKey", error: "AccessDeniedException", times: 1 })
      expect(yield* failure(store.put({ key: "/kms/a", value: value("a") }))).toMatchObject({
        failure: "access-denied"
      })
      fake.injectFailures({
        operation: "GenerateDataKey",
        error: "InvalidSignatureException",
        message: `signature of ${awsSecretKey}`,
        times: 1
      })
      expect(yield* failure(store.put({ key: "/kms/a", value: value("a") }))).toMatchObject({ _tag: "KeyringError" })
      yield* workload(store)
      yield* noteDataKey

      const cold = (yield* liveStore(env)).store
      fake.injectFailures({ operation: "Decrypt", error: "ThrottlingException", times: 10 })
      expect(yield* failure(cold.get("/secrets/1"))).toMatchObject({ _tag: "KeyringError", failure: "throttled" })
      fake.reset()
      fake.injectFailures({ operation: "Decrypt", error: "AccessDeniedException", times: 1 })
      expect(yield* failure(cold.get("/secrets/1"))).toMatchObject({ _tag: "KeyringError", failure: "access-denied" })
      fake.injectFailures({ operation: "Decrypt", error: "KMSInternalException", times: 10 })
      expect(yield* failure(cold.get("/secrets/1"))).toMatchObject({ _tag: "KeyringError", failure: "unavailable" })
      fake.reset()
      expect(Buffer.from((yield* cold.get("/secrets/1")).value).toString()).toBe(`${marker}/1`)
    })))

  it.live("decryption failures of tampered items", () =>
    capturing(Effect.gen(function*() {
      const env = { ...storeEnv(), DYNASTATE_KEYRING_KEY: rawKeyBase64 }
      const { config, noteDataKey, store } = yield* liveStore(env)
      const keys = yield* workload(store)
      yield* noteDataKey
      const client = makeClient()
      const table = config.tableName
      const latestItem = (key: string) =>
        Effect.promise(async () => {
          const page = await client.send(
            new QueryCommand({
              TableName: table,
              KeyConditionExpression: "pk = :pk AND begins_with(sk, :key)",
              ExpressionAttributeValues: { ":pk": { S: config.namespace }, ":key": { B: SortKey.keyPrefix(key) } },
              ConsistentRead: true,
              ScanIndexForward: false
            })
          )
          return page.Items![0]!
        })
      const setValue = (item: Item, val: Uint8Array) =>
        Effect.promise(() =>
          client.send(
            new UpdateItemCommand({
              TableName: table,
              Key: { pk: item["pk"]!, sk: item["sk"]! },
              UpdateExpression: "SET #v = :v",
              ExpressionAttributeNames: { "#v": "val" },
              ExpressionAttributeValues: { ":v": { B: val } }
            })
          )
        )

      const [a, b, c, d] = [keys[6]!, keys[7]!, keys[8]!, keys[9]!]
      const itemA = yield* latestItem(a)
      yield* setValue(itemA, flip(itemA["val"]!.B!, -20)) // the body
      yield* setValue(yield* latestItem(b), (yield* latestItem(c))["val"]!.B!) // another key's value
      const itemD = yield* latestItem(d)
      yield* setValue(itemD, flip(itemD["val"]!.B!, 40)) // the key commitment
      yield* setValue(yield* latestItem(c), itemA["val"]!.B!.subarray(0, 30)) // truncated
      const fresh = (yield* liveStore(env)).store
      for (const key of [a, b, c, d]) {
        expect(yield* failure(fresh.get(key))).toMatchObject({ _tag: "DecryptionFailed" })
        expect(yield* failure(Stream.runCollect(fresh.history(key)))).toMatchObject({ _tag: "DecryptionFailed" })
      }
      expect(yield* failure(fresh.getRange("/secrets/", "/secrets/~"))).toMatchObject({ _tag: "DecryptionFailed" })

      // A tampered wrapped data key: a cold instance cannot unwrap it.
      const dataKeys = yield* Effect.promise(() =>
        client.send(
          new QueryCommand({
            TableName: table,
            KeyConditionExpression: "pk = :pk",
            ExpressionAttributeValues: { ":pk": { S: partitionOf(config.namespace) } },
            ConsistentRead: true
          })
        )
      )
      for (const item of dataKeys.Items ?? []) {
        const wrapped = item["wrapped"]!.L!.map((copy) => ({ M: { ...copy.M!, c: { B: flip(copy.M!["c"]!.B!, -1) } } }))
        yield* Effect.promise(() =>
          client.send(new PutItemCommand({ TableName: table, Item: { ...item, wrapped: { L: wrapped } } }))
        )
      }
      const cold = (yield* liveStore(env)).store
      expect(yield* failure(cold.get(keys[10]!))).toMatchObject({ _tag: "DecryptionFailed" })
      const other = RawAesKeyring.make([{ id: "other", material: Redacted.make(new Uint8Array(randomBytes(32))) }])
      expect(yield* failure(cold.rewrap(other))).toMatchObject({ _tag: "KeyringError", failure: "invalid-ciphertext" })
    })))
})
