/**
 * Store configuration: a YAML `storage:` section with Teleport's DynamoDB keys
 * as Teleport writes them, `DYNASTATE_*` environment overrides, defaults,
 * failures that name the bad field, secrets kept `Redacted`, and when the
 * embedded DynamoDB Local is used.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Option, Redacted, References, Result } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as util from "node:util"
import * as Retention from "../../src/domain/Retention.ts"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import { ConfigInvalid } from "../../src/infra/StoreConfig.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-config-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let files = 0
/** Writes a YAML file for one test and returns its path. */
const yamlFile = (text: string): string => {
  const file = path.join(dir, `config-${++files}.yaml`)
  fs.writeFileSync(file, text)
  return file
}

interface Line {
  readonly level: string
  readonly text: string
}

/** Runs `StoreConfig.load` with every log line captured. */
const load = (options: Parameters<typeof StoreConfig.load>[0]) =>
  Effect.gen(function*() {
    const lines: Array<Line> = []
    const logger = Logger.make(({ logLevel, message }) => {
      lines.push({ level: logLevel, text: (message as ReadonlyArray<unknown>).map((part) => String(part)).join(" ") })
    })
    const result = yield* Effect.result(StoreConfig.load(options)).pipe(
      Effect.provide(Layer.mergeAll(Logger.layer([logger]), Layer.succeed(References.MinimumLogLevel, "All")))
    )
    return { result, lines }
  })

const loaded = (options: Parameters<typeof StoreConfig.load>[0]) =>
  Effect.flatMap(load(options), ({ lines, result }) => {
    if (result._tag === "Failure") {
      return Effect.die(new Error(`expected a configuration, got ${result.failure.message}`))
    }
    return Effect.succeed({ config: result.success, lines })
  })

const invalid = (options: Parameters<typeof StoreConfig.load>[0]) =>
  Effect.map(load(options), ({ result }) => {
    if (result._tag === "Success") throw new Error("expected ConfigInvalid, got a configuration")
    expect(result.failure).toBeInstanceOf(ConfigInvalid)
    return result.failure
  })

const accessKey = "AKIAIOSFODNN7EXAMPLE"
const secretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
const keyringKey = "q83vEjRWeJq8/wIEBggKDA4QEhQWGBocHiAiJCYoKiw="

/** A storage section with the keys Teleport's DynamoDB backend takes, written the way Teleport writes them. */
const teleportYaml = `teleport:
  nodename: auth-1
  data_dir: /var/lib/teleport
storage:
  type: dynamodb
  region: us-east-2
  table_name: teleport-backend
  access_key: ${accessKey}
  secret_key: ${secretKey}
  kms_key: alias/teleport
  audit_events_uri: ['dynamodb://teleport-events', 'file:///var/lib/teleport/audit/events', 'stdout://']
  continuous_backups: true
  billing_mode: provisioned
  read_capacity_units: 10
  write_capacity_units: 20
`

describe("StoreConfig.load", () => {
  it.effect("reads Teleport's storage keys from YAML; with unknown_keys warn, the keys it does not use are listed", () =>
    Effect.gen(function*() {
      const { config, lines } = yield* loaded({ file: yamlFile(teleportYaml), env: {}, unknownKeys: "warn" })
      expect(config.region).toEqual(Option.some("us-east-2"))
      expect(config.tableName).toBe("teleport-backend")
      expect(config.kmsKey).toEqual(Option.some("alias/teleport"))
      expect(config.billingMode).toBe("provisioned")
      expect(config.readCapacityUnits).toBe(10)
      expect(config.writeCapacityUnits).toBe(20)
      expect(config.continuousBackups).toEqual(Option.some(true))
      expect(Option.map(config.accessKey, Redacted.value)).toEqual(Option.some(accessKey))
      expect(Option.map(config.secretKey, Redacted.value)).toEqual(Option.some(secretKey))
      expect(config.endpoint).toEqual(Option.none())
      expect(config.kmsExtraKeys).toEqual([])
      // Exactly one line: a warning naming the unknown key (and no value of its).
      expect(lines).toHaveLength(1)
      expect(lines[0]!.level).toBe("Warn")
      expect(lines[0]!.text).toContain("audit_events_uri")
      expect(lines[0]!.text).not.toContain("dynamodb://teleport-events")
      expect(lines[0]!.text).not.toContain("billing_mode")
      // By default the same file is refused, naming the Teleport key and the way to accept it.
      const strict = yield* invalid({ file: yamlFile(teleportYaml), env: {} })
      expect(strict.all).toEqual([{
        field: "storage.audit_events_uri",
        reason: expect.stringContaining("unknown_keys: warn")
      }])
    }))

  it.effect("a file of only known keys loads without a single log line", () =>
    Effect.gen(function*() {
      const { config, lines } = yield* loaded({
        file: yamlFile("storage:\n  region: eu-west-1\n  namespace: teleport\n"),
        env: {}
      })
      expect(config.namespace).toBe("teleport")
      expect(lines).toEqual([])
    }))

  it.effect("environment variables override the file key by key; DYNASTATE_CONFIG names the file", () =>
    Effect.gen(function*() {
      const file = yamlFile(teleportYaml)
      const { config } = yield* loaded({
        env: {
          DYNASTATE_CONFIG: file,
          // The Teleport file's audit_events_uri is accepted with a warning, as the environment says.
          DYNASTATE_UNKNOWN_KEYS: "warn",
          DYNASTATE_REGION: "eu-west-1",
          DYNASTATE_TABLE_NAME: "from-env",
          DYNASTATE_SECRET_KEY: "env-secret",
          DYNASTATE_KMS_EXTRA_KEYS:
            " arn:aws:kms:eu-west-1:111122223333:key/a , arn:aws:kms:us-west-2:111122223333:key/b,",
          DYNASTATE_READ_CAPACITY_UNITS: "7",
          DYNASTATE_ENDPOINT: "http://localhost:8000",
          UNRELATED: "ignored"
        }
      })
      expect(config.region).toEqual(Option.some("eu-west-1"))
      expect(config.tableName).toBe("from-env")
      expect(Option.map(config.secretKey, Redacted.value)).toEqual(Option.some("env-secret"))
      expect(config.kmsExtraKeys).toEqual([
        "arn:aws:kms:eu-west-1:111122223333:key/a",
        "arn:aws:kms:us-west-2:111122223333:key/b"
      ])
      expect(config.readCapacityUnits).toBe(7)
      expect(config.endpoint).toEqual(Option.some("http://localhost:8000"))
      // Everything the environment does not set still comes from the file.
      expect(Option.map(config.accessKey, Redacted.value)).toEqual(Option.some(accessKey))
      expect(config.kmsKey).toEqual(Option.some("alias/teleport"))
      expect(config.billingMode).toBe("provisioned")
      expect(config.writeCapacityUnits).toBe(20)
      // An explicit file wins over DYNASTATE_CONFIG.
      const other = yamlFile("storage:\n  table_name: explicit-file\n")
      expect((yield* loaded({ file: other, env: { DYNASTATE_CONFIG: file } })).config.tableName).toBe("explicit-file")
    }))

  it.effect("history retention and the metrics endpoint from YAML, overridden by the environment, without warnings", () =>
    Effect.gen(function*() {
      const file = yamlFile("storage:\n  history_retention: 30d\n  metrics_port: 9464\n  metrics_host: 0.0.0.0\n")
      const { config, lines } = yield* loaded({ file, env: {} })
      expect(config.historyRetention).toEqual({ _tag: "For", millis: 30 * 86_400_000 })
      expect(config.metricsPort).toEqual(Option.some(9464))
      expect(config.metricsHost).toBe("0.0.0.0")
      expect(lines).toEqual([])
      const { config: overridden } = yield* loaded({
        file,
        env: { DYNASTATE_HISTORY_RETENTION: "none", DYNASTATE_METRICS_PORT: "0", DYNASTATE_METRICS_HOST: "::1" }
      })
      expect(overridden.historyRetention).toEqual({ _tag: "None" })
      expect(overridden.metricsPort).toEqual(Option.some(0))
      expect(overridden.metricsHost).toBe("::1")
      // The port alone: the host defaults to the loopback address.
      const { config: portOnly } = yield* loaded({ env: { DYNASTATE_METRICS_PORT: "65535" } })
      expect([portOnly.metricsPort, portOnly.metricsHost]).toEqual([Option.some(65535), "127.0.0.1"])
    }))

  it.effect("watches served by the worker: off unless watch_port is set; an application points at watch_endpoint", () =>
    Effect.gen(function*() {
      const { config: plain } = yield* loaded({ env: {} })
      expect([plain.watchPort, plain.watchHost, plain.watchEndpoint]).toEqual([
        Option.none(),
        "127.0.0.1",
        Option.none()
      ])
      const file = yamlFile(
        "storage:\n  watch_port: 7070\n  watch_host: 0.0.0.0\n  watch_endpoint: worker:7070\n  watch_plaintext: true\n"
      )
      const { config, lines } = yield* loaded({ file, env: {} })
      expect([config.watchPort, config.watchHost]).toEqual([Option.some(7070), "0.0.0.0"])
      expect(config.watchEndpoint).toEqual(Option.some({ host: "worker", port: 7070 }))
      expect(lines).toEqual([])
      const { config: overridden } = yield* loaded({
        file,
        env: { DYNASTATE_WATCH_PORT: "0", DYNASTATE_WATCH_ENDPOINT: "[::1]:7071" }
      })
      expect(overridden.watchPort).toEqual(Option.some(0))
      expect(overridden.watchEndpoint).toEqual(Option.some({ host: "::1", port: 7071 }))
      for (
        const [env, field] of [
          [{ DYNASTATE_WATCH_ENDPOINT: "worker" }, "storage.watch_endpoint"],
          [{ DYNASTATE_WATCH_ENDPOINT: "worker:0" }, "storage.watch_endpoint"],
          [{ DYNASTATE_WATCH_PORT: "70000" }, "storage.watch_port"],
          [{ DYNASTATE_WATCH_HOST: "not a host" }, "storage.watch_host"]
        ] as const
      ) {
        const error = yield* invalid({ env })
        expect(`${error.field}: ${error.message}`).toContain(field)
      }
    }))

  it.effect("the relay beyond this machine needs TLS with client certificates, or watch_plaintext said outright", () =>
    Effect.gen(function*() {
      const tls = {
        DYNASTATE_WATCH_TLS_CERT: "w.pem",
        DYNASTATE_WATCH_TLS_KEY: "w.key",
        DYNASTATE_WATCH_TLS_CA: "ca.pem"
      }
      const { config } = yield* loaded({
        env: { DYNASTATE_WATCH_PORT: "7070", DYNASTATE_WATCH_HOST: "0.0.0.0", ...tls }
      })
      expect(config.watchTls).toEqual({
        cert: Option.some("w.pem"),
        key: Option.some("w.key"),
        ca: Option.some("ca.pem")
      })
      expect(config.watchPlaintext).toBe(false)
      // Loopback needs nothing; a mesh-secured channel is allowed when said.
      yield* loaded({ env: { DYNASTATE_WATCH_PORT: "7070", DYNASTATE_WATCH_ENDPOINT: "localhost:7070" } })
      yield* loaded({ env: { DYNASTATE_WATCH_PORT: "7070", DYNASTATE_WATCH_HOST: "[::1]" } })
      yield* loaded({
        env: { DYNASTATE_WATCH_ENDPOINT: "worker:7070", DYNASTATE_WATCH_HOST: "::", DYNASTATE_WATCH_PLAINTEXT: "true" }
      })
      yield* loaded({ env: { DYNASTATE_WATCH_ENDPOINT: "worker:7070", DYNASTATE_WATCH_TLS_CA: "ca.pem" } })
      for (
        const [env, field, says] of [
          [{ DYNASTATE_WATCH_PORT: "7070", DYNASTATE_WATCH_HOST: "0.0.0.0" }, "storage.watch_host", "without TLS"],
          [
            { DYNASTATE_WATCH_PORT: "7070", DYNASTATE_WATCH_HOST: "10.0.0.5", ...tls, DYNASTATE_WATCH_TLS_CA: "" },
            "storage.watch_host",
            "client certificates"
          ],
          [{ DYNASTATE_WATCH_ENDPOINT: "worker:7070" }, "storage.watch_endpoint", "watch_tls_ca"],
          [{ DYNASTATE_WATCH_TLS_CERT: "w.pem" }, "storage.watch_tls_cert", "together"],
          [{ DYNASTATE_WATCH_PORT: "7070", DYNASTATE_WATCH_TLS_CA: "ca.pem" }, "storage.watch_tls_ca", "its own"]
        ] as const
      ) {
        const error = yield* invalid({ env: Object.fromEntries(Object.entries(env).filter(([, v]) => v !== "")) })
        expect(`${error.field}: ${error.message}`).toContain(field)
        expect(error.message).toContain(says)
      }
    }))

  it.effect.each([
    { text: "forever", retention: { _tag: "Forever" } },
    { text: "none", retention: { _tag: "None" } },
    { text: "30d", retention: { _tag: "For", millis: 2_592_000_000 } },
    { text: "12h", retention: { _tag: "For", millis: 43_200_000 } },
    { text: "90m", retention: { _tag: "For", millis: 5_400_000 } },
    { text: "3600s", retention: { _tag: "For", millis: 3_600_000 } },
    { text: "1500ms", retention: { _tag: "For", millis: 1_500 } }
  ])("history_retention $text", ({ retention, text }) =>
    Effect.gen(function*() {
      expect((yield* loaded({ env: { DYNASTATE_HISTORY_RETENTION: text } })).config.historyRetention).toEqual(retention)
      expect(
        (yield* loaded({ file: yamlFile(`storage:\n  history_retention: ${text}\n`), env: {} })).config.historyRetention
      )
        .toEqual(retention)
    }))

  it.effect("the write fence, compaction's settle time and the write mode from YAML, overridden by the environment", () =>
    Effect.gen(function*() {
      const file = yamlFile(
        "storage:\n  max_state_age: 10s\n  write_timeout: 5s\n  compaction_settle: 7m\n  write_mode: strict\n"
      )
      const { config, lines } = yield* loaded({ file, env: {} })
      expect(config.writeFence).toEqual({ maxStateAgeMillis: 10_000, writeTimeoutMillis: 5_000 })
      expect(config.settleMillis).toBe(420_000)
      expect(config.writeMode).toBe("strict")
      expect(lines).toEqual([])
      const { config: overridden } = yield* loaded({
        file,
        env: { DYNASTATE_WRITE_TIMEOUT: "2500ms", DYNASTATE_COMPACTION_SETTLE: "1h", DYNASTATE_WRITE_MODE: "fenced" }
      })
      expect(overridden.writeFence).toEqual({ maxStateAgeMillis: 10_000, writeTimeoutMillis: 2_500 })
      expect(overridden.settleMillis).toBe(3_600_000)
      expect(overridden.writeMode).toBe("fenced")
    }))

  it.effect("layout_lease from YAML or the environment; a migration waits it, write_timeout and the margins", () =>
    Effect.gen(function*() {
      const file = yamlFile("storage:\n  layout_lease: 10s\n  write_timeout: 5s\n  region: eu-west-1\n")
      const { config, lines } = yield* loaded({ file, env: {} })
      expect(config.layoutLeaseMillis).toBe(10_000)
      expect(lines).toEqual([])
      // On AWS: 10 s + 5 s + 2 × 5 min late delivery + 1 min skew.
      expect(StoreConfig.layoutLeaseOf(config)).toEqual({ leaseMillis: 10_000, drainMillis: 675_000 })
      const { config: local } = yield* loaded({
        file,
        env: { DYNASTATE_LAYOUT_LEASE: "2s", DYNASTATE_ENDPOINT: "http://127.0.0.1:8000" }
      })
      // DynamoDB Local on this machine: no margins.
      expect(StoreConfig.layoutLeaseOf(local)).toEqual({ leaseMillis: 2_000, drainMillis: 7_000 })
      expect(
        StoreConfig.isOnThisMachine({ ...local, endpoint: Option.some("https://dynamodb.eu-west-1.amazonaws.com") })
      )
        .toBe(false)
      const refused = yield* invalid({ file: yamlFile("storage:\n  layout_lease: 0s\n"), env: {} })
      expect(refused.message).toContain("storage.layout_lease")
    }))

  it.effect("value_compression: none by default, gzip from YAML or the environment, anything else refused", () =>
    Effect.gen(function*() {
      expect((yield* loaded({ env: {} })).config.compression).toBe("none")
      const file = yamlFile("storage:\n  value_compression: gzip\n")
      expect((yield* loaded({ file, env: {} })).config.compression).toBe("gzip")
      expect((yield* loaded({ file, env: { DYNASTATE_VALUE_COMPRESSION: "none" } })).config.compression).toBe("none")
      const refused = yield* invalid({ env: { DYNASTATE_VALUE_COMPRESSION: "zstd" } })
      expect(refused.field).toBe("storage.value_compression")
      expect(refused.reason).toContain("is not one of none, gzip")
    }))

  it.effect("sealed_prefixes: PREFIX:segment or PREFIX:rest, as a YAML list or comma-separated, refused when invalid", () =>
    Effect.gen(function*() {
      expect((yield* loaded({ env: {} })).config.sealedPrefixes).toEqual([])
      const file = yamlFile("storage:\n  sealed_prefixes:\n    - /tokens/:rest\n    - /users/\n")
      expect((yield* loaded({ file, env: {} })).config.sealedPrefixes).toEqual([
        { prefix: "/tokens/", seal: "rest" },
        { prefix: "/users/", seal: "segment" }
      ])
      const overridden = yield* loaded({ file, env: { DYNASTATE_SEALED_PREFIXES: "/a/:segment, /b/:rest" } })
      expect(overridden.config.sealedPrefixes).toEqual([
        { prefix: "/a/", seal: "segment" },
        { prefix: "/b/", seal: "rest" }
      ])
      for (
        const [text, reason] of [
          ["/tokens/:all", "write PREFIX:segment or PREFIX:rest"],
          ["/tokens", "must end in /"],
          ["/a/,/a/b/", "must not nest"]
        ] as const
      ) {
        const error = yield* invalid({ env: { DYNASTATE_SEALED_PREFIXES: text } })
        expect(error.field).toBe("storage.sealed_prefixes")
        expect(error.reason).toContain(reason)
      }
    }))

  it.effect("a settle time too short for the writers' fence is refused, naming the minimum", () =>
    Effect.gen(function*() {
      // 30s + 2 × 30s + 5m + 1m = 7m30s: the default fence needs more than that.
      const short = yield* invalid({ env: { DYNASTATE_COMPACTION_SETTLE: "7m" } })
      expect(short.field).toBe("storage.compaction_settle")
      expect(short.reason).toContain("more than 450s (450000 ms)")
      // Exactly the minimum is not enough either; a longer write timeout raises it.
      expect((yield* invalid({ env: { DYNASTATE_COMPACTION_SETTLE: "450s" } })).field).toBe("storage.compaction_settle")
      const slow = yield* invalid({ file: yamlFile("storage:\n  write_timeout: 2m\n"), env: {} })
      expect(slow.reason).toContain("more than 630s")
      // Just over the minimum loads.
      expect((yield* loaded({ env: { DYNASTATE_COMPACTION_SETTLE: "451s" } })).config.settleMillis).toBe(451_000)
    }))

  it.effect.each(["0s", "-5s", "30", "5 minutes", "1.5m", "99999999999999999d"])(
    "a duration of %s is refused, naming its field",
    (text) =>
      Effect.gen(function*() {
        expect((yield* invalid({ env: { DYNASTATE_MAX_STATE_AGE: text } })).field).toBe("storage.max_state_age")
        expect((yield* invalid({ env: { DYNASTATE_WRITE_MODE: "lax" } })).field).toBe("storage.write_mode")
      })
  )

  it.effect("lease_group: one group per namespace's workers, refused empty or with # (the workers' own partition)", () =>
    Effect.gen(function*() {
      expect((yield* loaded({ env: { DYNASTATE_LEASE_GROUP: "tenant-a" } })).config.leaseGroup).toBe("tenant-a")
      for (const group of [" ", "a#workers"]) {
        expect((yield* invalid({ env: { DYNASTATE_LEASE_GROUP: group } })).field).toBe("storage.lease_group")
      }
    }))

  it.effect("defaults: the embedded store with a key file, pay per request", () =>
    Effect.gen(function*() {
      const { config, lines } = yield* loaded({ env: {} })
      expect(config).toEqual({
        region: Option.none(),
        endpoint: Option.none(),
        tableName: "dynastate",
        namespace: "default",
        leaseGroup: "default",
        storeId: Option.none(),
        accessKey: Option.none(),
        secretKey: Option.none(),
        kmsKey: Option.none(),
        kmsExtraKeys: [],
        kmsEndpoint: Option.none(),
        billingMode: "pay_per_request",
        readCapacityUnits: 5,
        writeCapacityUnits: 5,
        continuousBackups: Option.none(),
        keyringFile: ".dynastate/keyring.key",
        keyringKey: Option.none(),
        dataDir: ".dynastate/dynamodb",
        historyRetention: { _tag: "Forever" },
        metricsPort: Option.none(),
        metricsHost: "127.0.0.1",
        watchPort: Option.none(),
        watchHost: "127.0.0.1",
        watchEndpoint: Option.none(),
        watchTls: { cert: Option.none(), key: Option.none(), ca: Option.none() },
        watchPlaintext: false,
        readyMaxLagMillis: 30_000,
        shutdownTimeoutMillis: 30_000,
        otlpEndpoint: Option.none(),
        writeFence: { maxStateAgeMillis: 30_000, writeTimeoutMillis: 30_000 },
        layoutLeaseMillis: 30_000,
        settleMillis: 600_000,
        writeMode: "fenced",
        compression: "none",
        sealedPrefixes: [],
        partitionedPrefixes: []
      })
      expect(StoreConfig.isEmbedded(config)).toBe(true)
      expect(lines).toEqual([])
      // An empty storage section is the defaults too.
      expect((yield* loaded({ file: yamlFile("storage: {}\n"), env: {} })).config).toEqual(config)
    }))

  const badValues: ReadonlyArray<{
    readonly name: string
    readonly options: () => Parameters<typeof StoreConfig.load>[0]
    readonly names: string
  }> = [
    {
      name: "billing_mode (env)",
      options: () => ({ env: { DYNASTATE_BILLING_MODE: "on_demand" } }),
      names: "billing_mode"
    },
    {
      name: "billing_mode (file)",
      options: () => ({ file: yamlFile("storage:\n  billing_mode: monthly\n"), env: {} }),
      names: "billing_mode"
    },
    {
      name: "read_capacity_units 0",
      options: () => ({ env: { DYNASTATE_READ_CAPACITY_UNITS: "0" } }),
      names: "read_capacity_units"
    },
    {
      name: "read_capacity_units abc",
      options: () => ({ env: { DYNASTATE_READ_CAPACITY_UNITS: "abc" } }),
      names: "read_capacity_units"
    },
    {
      name: "read_capacity_units 0 (YAML number)",
      options: () => ({ file: yamlFile("storage:\n  read_capacity_units: 0\n"), env: {} }),
      names: "read_capacity_units"
    },
    {
      name: "write_capacity_units 2.5",
      options: () => ({ env: { DYNASTATE_WRITE_CAPACITY_UNITS: "2.5" } }),
      names: "write_capacity_units"
    },
    { name: "type etcd", options: () => ({ file: yamlFile("storage:\n  type: etcd\n"), env: {} }), names: "type" },
    {
      name: "table_name too short",
      options: () => ({ env: { DYNASTATE_TABLE_NAME: "ab" } }),
      names: "storage.table_name"
    },
    {
      name: "table_name with a space",
      options: () => ({ file: yamlFile("storage:\n  table_name: my table\n"), env: {} }),
      names: "storage.table_name"
    },
    {
      name: "access_key without secret_key",
      options: () => ({ env: { DYNASTATE_ACCESS_KEY: accessKey } }),
      names: "storage.access_key"
    },
    {
      name: "secret_key without access_key",
      options: () => ({ file: yamlFile(`storage:\n  secret_key: ${secretKey}\n`), env: {} }),
      names: "access_key"
    },
    {
      name: "storage is a string",
      options: () => ({ file: yamlFile("storage: dynamodb\n"), env: {} }),
      names: "storage"
    },
    { name: "storage left empty (null)", options: () => ({ file: yamlFile("storage:\n"), env: {} }), names: "storage" },
    {
      name: "storage is a list",
      options: () => ({ file: yamlFile("storage:\n  - type: dynamodb\n"), env: {} }),
      names: "storage"
    },
    { name: "the document is a list", options: () => ({ file: yamlFile("- storage\n"), env: {} }), names: "config-" },
    {
      name: "a missing file",
      options: () => ({ file: path.join(dir, "missing.yaml"), env: {} }),
      names: "missing.yaml"
    },
    { name: "a directory", options: () => ({ file: dir, env: {} }), names: dir },
    { name: "not YAML", options: () => ({ file: yamlFile("storage: {region: [\n"), env: {} }), names: "config-" },
    {
      name: "metrics_port -1 (env)",
      options: () => ({ env: { DYNASTATE_METRICS_PORT: "-1" } }),
      names: "storage.metrics_port"
    },
    {
      name: "metrics_port -1 (YAML number)",
      options: () => ({ file: yamlFile("storage:\n  metrics_port: -1\n"), env: {} }),
      names: "storage.metrics_port"
    },
    {
      name: "metrics_port 65536",
      options: () => ({ env: { DYNASTATE_METRICS_PORT: "65536" } }),
      names: "storage.metrics_port"
    },
    {
      name: "metrics_port 94.64",
      options: () => ({ env: { DYNASTATE_METRICS_PORT: "94.64" } }),
      names: "storage.metrics_port"
    },
    {
      name: "metrics_port http",
      options: () => ({ file: yamlFile("storage:\n  metrics_port: http\n"), env: {} }),
      names: "storage.metrics_port"
    },
    {
      name: "metrics_host empty (file)",
      options: () => ({ file: yamlFile("storage:\n  metrics_host: ''\n"), env: {} }),
      names: "storage.metrics_host"
    },
    {
      name: "metrics_host with a space",
      options: () => ({ env: { DYNASTATE_METRICS_HOST: "local host" } }),
      names: "storage.metrics_host"
    },
    {
      name: "history_retention forever-ish",
      options: () => ({ env: { DYNASTATE_HISTORY_RETENTION: "forever-ish" } }),
      names: "storage.history_retention"
    },
    {
      name: "history_retention 10x",
      options: () => ({ file: yamlFile("storage:\n  history_retention: 10x\n"), env: {} }),
      names: "storage.history_retention"
    },
    {
      name: "history_retention without a unit (YAML number)",
      options: () => ({ file: yamlFile("storage:\n  history_retention: 30\n"), env: {} }),
      names: "storage.history_retention"
    },
    {
      name: "history_retention 0d",
      options: () => ({ env: { DYNASTATE_HISTORY_RETENTION: "0d" } }),
      names: "storage.history_retention"
    },
    {
      name: "history_retention 30 days",
      options: () => ({ env: { DYNASTATE_HISTORY_RETENTION: "30 days" } }),
      names: "storage.history_retention"
    },
    {
      name: "history_retention -5d",
      options: () => ({ env: { DYNASTATE_HISTORY_RETENTION: "-5d" } }),
      names: "storage.history_retention"
    },
    {
      name: "history_retention empty (file)",
      options: () => ({ file: yamlFile("storage:\n  history_retention: ''\n"), env: {} }),
      names: "storage.history_retention"
    }
  ]

  it.effect.each(badValues)(
    "a bad value fails with ConfigInvalid naming it: $name",
    ({ names, options }) =>
      Effect.gen(function*() {
        const error = yield* invalid(options())
        expect(`${error.field} ${error.message}`).toContain(names)
        expect(error.message).toContain(error.field)
        expect(error.reason.length).toBeGreaterThan(0)
      })
  )

  // Regression (was a bug in src/infra/StoreConfig.ts `load`): schema failures are all wrapped as field "storage"; the field is only
  // somewhere in the reason's path, unlike the consistency checks, which name `storage.table_name` and so on.
  it.effect("ConfigInvalid.field is the bad field itself, not the whole section", () =>
    Effect.gen(function*() {
      const cases = [
        { key: "billing_mode", env: { DYNASTATE_BILLING_MODE: "monthly" } },
        { key: "read_capacity_units", env: { DYNASTATE_READ_CAPACITY_UNITS: "abc" } },
        { key: "type", env: { DYNASTATE_TYPE: "etcd" } },
        { key: "metrics_port", env: { DYNASTATE_METRICS_PORT: "-1" } },
        { key: "metrics_host", env: { DYNASTATE_METRICS_HOST: "a b" } },
        { key: "history_retention", env: { DYNASTATE_HISTORY_RETENTION: "forever-ish" } },
        { key: "history_retention", env: { DYNASTATE_HISTORY_RETENTION: "10x" } }
      ]
      const fields = yield* Effect.forEach(cases, ({ env }) => Effect.map(invalid({ env }), (error) => error.field))
      expect(fields).toEqual(cases.map(({ key }) => `storage.${key}`))
    }))

  // Regression (was a bug in src/infra/StoreConfig.ts `kmsExtraKeys`): a YAML list, the natural way to write several keys in YAML,
  // is silently taken for "no extra keys", so data keys quietly lose their break-glass copies.
  it.effect("kms_extra_keys written as a YAML list is used, or refused naming the field, never dropped", () =>
    Effect.gen(function*() {
      const a = "arn:aws:kms:us-east-1:111122223333:key/a"
      const b = "arn:aws:kms:us-west-2:111122223333:key/b"
      const { result } = yield* load({
        file: yamlFile(`storage:\n  kms_key: alias/teleport\n  kms_extra_keys: [${a}, ${b}]\n`),
        env: {}
      })
      if (result._tag === "Failure") expect(result.failure.message).toContain("kms_extra_keys")
      else expect(result.success.kmsExtraKeys).toEqual([a, b])
    }))

  // Regression (was a bug in src/infra/StoreConfig.ts): the config providers treat "" as missing, so `namespace: ''` silently becomes
  // "default" (maybe another deployment's namespace) and checkConsistency's "must not be empty" can never fire.
  it.effect("an explicitly empty namespace in the file is refused, not replaced by the default", () =>
    Effect.gen(function*() {
      const { result } = yield* load({ file: yamlFile("storage:\n  namespace: ''\n"), env: {} })
      expect(
        result._tag === "Failure"
          ? result.failure.field
          : `loaded namespace ${JSON.stringify(result.success.namespace)}`
      )
        .toBe("storage.namespace")
    }))

  it.effect("store_id names what encryption binds to; absent means the table name, empty is refused", () =>
    Effect.gen(function*() {
      const fromFile =
        (yield* loaded({ file: yamlFile("storage:\n  table_name: restored\n  store_id: original\n"), env: {} })).config
      expect([fromFile.tableName, Option.getOrUndefined(fromFile.storeId)]).toEqual(["restored", "original"])
      const fromEnv = (yield* loaded({ env: { DYNASTATE_STORE_ID: "other" } })).config
      expect(Option.getOrUndefined(fromEnv.storeId)).toBe("other")
      expect(Option.isNone((yield* loaded({ env: {} })).config.storeId)).toBe(true)
      const { result } = yield* load({ file: yamlFile("storage:\n  store_id: '  '\n"), env: {} })
      expect(result._tag === "Failure" ? result.failure.field : "loaded").toBe("storage.store_id")
    }))

  it.effect("secrets stay Redacted: no rendering of the configuration shows them", () =>
    Effect.gen(function*() {
      const { config } = yield* loaded({
        file: yamlFile(teleportYaml),
        env: { DYNASTATE_KEYRING_KEY: keyringKey },
        unknownKeys: "warn"
      })
      expect(Option.isSome(config.secretKey) && Redacted.isRedacted(config.secretKey.value)).toBe(true)
      expect(Option.isSome(config.accessKey) && Redacted.isRedacted(config.accessKey.value)).toBe(true)
      expect(Option.isSome(config.keyringKey) && Redacted.isRedacted(config.keyringKey.value)).toBe(true)
      const renderings = [
        String(config.secretKey),
        String(config.keyringKey),
        `${Option.getOrThrow(config.secretKey)}`,
        JSON.stringify(config),
        util.inspect(config, { depth: 10, showHidden: true }),
        util.format("%o", config)
      ].join("\n")
      for (const secret of [secretKey, keyringKey, accessKey]) expect(renderings).not.toContain(secret)
      expect(String(config.secretKey)).toContain("redacted")
      expect(Redacted.value(Option.getOrThrow(config.keyringKey))).toBe(keyringKey)
    }))
})

describe("StoreConfig.isEmbedded", () => {
  const base = Effect.map(loaded({ env: {} }), ({ config }) => config)
  it.effect.each([
    { name: "no endpoint and no region", endpoint: undefined, region: undefined, embedded: true },
    { name: "a region only: AWS", endpoint: undefined, region: "us-east-1", embedded: false },
    { name: "an endpoint URL", endpoint: "http://127.0.0.1:8000", region: undefined, embedded: false },
    {
      name: "an endpoint URL and a region",
      endpoint: "https://dynamodb.eu-west-1.amazonaws.com",
      region: "eu-west-1",
      embedded: false
    },
    { name: "endpoint embedded", endpoint: "embedded", region: undefined, embedded: true },
    { name: "endpoint embedded beats a region", endpoint: "embedded", region: "us-east-1", embedded: true }
  ])("$name → $embedded", ({ embedded, endpoint, region }) =>
    Effect.gen(function*() {
      const config = {
        ...(yield* base),
        endpoint: Option.fromNullishOr(endpoint),
        region: Option.fromNullishOr(region)
      }
      expect(StoreConfig.isEmbedded(config)).toBe(embedded)
      // The same through the environment, as an operator would set it.
      const { config: fromEnv } = yield* loaded({
        env: {
          ...(endpoint === undefined ? {} : { DYNASTATE_ENDPOINT: endpoint }),
          ...(region === undefined ? {} : { DYNASTATE_REGION: region })
        }
      })
      expect(StoreConfig.isEmbedded(fromEnv)).toBe(embedded)
    }))
})

describe("Retention", () => {
  it("parse refuses what is not forever, none or a positive whole duration, saying what it expects", () => {
    for (const text of ["forever-ish", "10x", "", "30", "1.5h", "-1d", "0s", "30D", "1w", "99999999999999d"]) {
      const result = Retention.parse(text)
      expect(Result.isFailure(result) ? result.failure : `parsed ${text}`).toMatch(/expected|keeps nothing|too long/)
    }
    expect(Retention.parse(" 12h ")).toEqual(Result.succeed({ _tag: "For", millis: 43_200_000 }))
  })

  it("format writes the largest exact unit, and parse reads it back", () => {
    const cases = [
      [Retention.forever, "forever"],
      [Retention.none, "none"],
      [Retention.forMillis(2 * 86_400_000), "2d"],
      [Retention.forMillis(36 * 3_600_000), "36h"],
      [Retention.forMillis(90 * 60_000), "90m"],
      [Retention.forMillis(61_000), "61s"],
      [Retention.forMillis(1_500), "1500ms"]
    ] as const
    for (const [retention, text] of cases) {
      expect(Retention.format(retention)).toBe(text)
      expect(Retention.parse(text)).toEqual(Result.succeed(retention))
    }
  })
})
