/**
 * Strict configuration: each mistake an operator makes gives one clear `ConfigInvalid` listing every problem in
 * plain words — a file without a `storage:` section, a misspelt key (with the nearest known key), several bad
 * values at once, the same through `DYNASTATE_*` variables and through Effect's `ConfigProvider` — and
 * `unknown_keys: warn` turns unknown keys into one warning listing them. Teleport's `continuous_backups` is read,
 * its auto-scaling keys are refused with the reason, and the worker's new keys are read and checked.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Logger, Option, References } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { editDistance, nearest } from "../../src/infra/config/Suggest.ts"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import { ConfigInvalid } from "../../src/infra/StoreConfig.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-strict-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let files = 0
const yamlFile = (text: string): string => {
  const file = path.join(dir, `strict-${++files}.yaml`)
  fs.writeFileSync(file, text)
  return file
}

/** Runs an effect with its warnings captured. */
const withWarnings = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const warnings: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel === "Warn") warnings.push((message as ReadonlyArray<unknown>).map(String).join(" "))
    })
    const result = yield* Effect.result(effect).pipe(
      Effect.provide(Layer.mergeAll(Logger.layer([logger]), Layer.succeed(References.MinimumLogLevel, "All")))
    )
    return { result, warnings }
  })

/** The error of a load expected to fail. */
const refused = <A>(effect: Effect.Effect<A, ConfigInvalid>) =>
  Effect.map(Effect.flip(effect), (error) => {
    expect(error).toBeInstanceOf(ConfigInvalid)
    return error
  })

const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

describe("strict configuration", () => {
  it.effect("a file without a storage: section is an error naming the file, not the embedded defaults", () =>
    Effect.gen(function*() {
      const file = yamlFile("teleport:\n  nodename: auth-1\n  data_dir: /var/lib/teleport\n")
      const error = yield* refused(StoreConfig.load({ file, env: {} }))
      expect(error.all).toEqual([{ field: file, reason: expect.stringContaining("has no storage: section") }])
      expect(error.message).toBe(`invalid configuration ${file}: ${error.reason}`)
      // Under teleport:, as Teleport writes it, the section is found.
      const nested = yamlFile("teleport:\n  storage:\n    table_name: nested-table\n")
      expect((yield* StoreConfig.load({ file: nested, env: {} })).tableName).toBe("nested-table")
      // A section present but empty is not a mapping: refused too, never taken for the defaults.
      expect((yield* refused(StoreConfig.load({ file: yamlFile("storage:\n"), env: {} }))).field).toBe("storage")
    }))

  it.effect("a misspelt key is an error suggesting the nearest known key; no default table is used", () =>
    Effect.gen(function*() {
      const file = yamlFile("storage:\n  tabel_name: orders\n  region: us-east-1\n")
      const error = yield* refused(StoreConfig.load({ file, env: {} }))
      expect(error.all).toEqual([{
        field: "storage.tabel_name",
        reason: "is not a dynastate key; did you mean table_name?"
      }])
      // Other slips: a missing letter, a swapped pair, a wrong case.
      const others = yield* refused(StoreConfig.load({
        file: yamlFile("storage:\n  regin: us-east-1\n  bilingmode: provisioned\n  KMS_KEY: alias/x\n  colour: red\n"),
        env: {}
      }))
      expect(others.all.map((problem) => [problem.field, problem.reason])).toEqual([
        ["storage.regin", "is not a dynastate key; did you mean region?"],
        ["storage.bilingmode", "is not a dynastate key; did you mean billing_mode?"],
        ["storage.KMS_KEY", "is not a dynastate key; did you mean kms_key?"],
        ["storage.colour", "is not a dynastate key (unknown_keys: warn accepts unknown keys with a warning)"]
      ])
    }))

  it.effect("unknown_keys warn (parameter, file or variable) loads and lists the ignored keys in one warning", () =>
    Effect.gen(function*() {
      const text = "storage:\n  tabel_name: orders\n  audit_events_uri: ['stdout://']\n  poll_stream_period: 1s\n"
      const { result, warnings } = yield* withWarnings(
        StoreConfig.load({ file: yamlFile(text), env: {}, unknownKeys: "warn" })
      )
      expect(result._tag === "Success" && result.success.tableName).toBe("dynastate")
      expect(warnings).toEqual([
        "ignoring storage keys dynastate does not use: tabel_name (did you mean table_name?), audit_events_uri, " +
        "poll_stream_period"
      ])
      const inFile = yield* withWarnings(
        StoreConfig.load({ file: yamlFile(`${text}  unknown_keys: warn\n`), env: {} })
      )
      expect([inFile.result._tag, inFile.warnings.length]).toEqual(["Success", 1])
      const inEnv = yield* withWarnings(
        StoreConfig.load({ file: yamlFile(text), env: { DYNASTATE_UNKNOWN_KEYS: "warn" } })
      )
      expect([inEnv.result._tag, inEnv.warnings.length]).toEqual(["Success", 1])
      // The parameter wins over the file: a caller that wants strictness gets it.
      const strict = yield* refused(
        StoreConfig.load({ file: yamlFile(`${text}  unknown_keys: warn\n`), env: {}, unknownKeys: "error" })
      )
      expect(strict.all.map((problem) => problem.field)).toEqual([
        "storage.tabel_name",
        "storage.audit_events_uri",
        "storage.poll_stream_period"
      ])
      expect(strict.all[1]!.reason).toContain("Teleport key")
      const badPolicy = yield* refused(StoreConfig.load({ env: { DYNASTATE_UNKNOWN_KEYS: "ignore" } }))
      expect(badPolicy.all).toEqual([{
        field: "storage.unknown_keys",
        reason: "\"ignore\" (from DYNASTATE_UNKNOWN_KEYS) is not one of error, warn"
      }])
    }))

  it.effect("every invalid value is reported at once, in plain words with the allowed values", () =>
    Effect.gen(function*() {
      const file = yamlFile(
        "storage:\n  billing_mode: payperrequest\n  read_capacity_units: 0\n  write_capacity_units: lots\n" +
          "  metrics_port: 99999\n  history_retention: 30\n  write_mode: lax\n  table_name: ab\n" +
          "  ready_max_lag: soon\n  otlp_endpoint: collector:4318\n  region: [us-east-1, eu-west-1]\n"
      )
      const error = yield* refused(StoreConfig.load({ file, env: {} }))
      expect(error.all).toEqual([
        { field: "storage.region", reason: "is a list; expected a single value" },
        { field: "storage.billing_mode", reason: "\"payperrequest\" is not one of pay_per_request, provisioned" },
        { field: "storage.read_capacity_units", reason: "\"0\" is not a whole number above 0" },
        { field: "storage.write_capacity_units", reason: "\"lots\" is not a whole number above 0" },
        {
          field: "storage.history_retention",
          reason: "\"30\" is not forever, none or a duration such as 30d, 12h or 90m"
        },
        {
          field: "storage.metrics_port",
          reason: "\"99999\" is not a port number from 0 to 65535 (0: any free port)"
        },
        {
          field: "storage.ready_max_lag",
          reason: "\"soon\" is not a duration: a whole number with ms, s, m, h or d, such as 30s, 10m or 2h"
        },
        { field: "storage.otlp_endpoint", reason: "\"collector:4318\" is not an http:// or https:// URL" },
        { field: "storage.write_mode", reason: "\"lax\" is not one of fenced, strict" },
        { field: "storage.table_name", reason: "DynamoDB table names are 3-255 of a-z A-Z 0-9 _ . -" }
      ])
      expect(error.message.split("\n")).toEqual([
        "invalid configuration, 10 problems:",
        ...error.all.map((problem) => `  ${problem.field}: ${problem.reason}`)
      ])
      // The first problem is also `field`/`reason`, for callers that look at one.
      expect([error.field, error.reason]).toEqual(["storage.region", "is a list; expected a single value"])
      expect(error.message).not.toContain("SchemaError")
    }))

  it.effect("DYNASTATE_* variables likewise: a misspelt one suggests the right name, bad values all at once", () =>
    Effect.gen(function*() {
      const error = yield* refused(StoreConfig.load({
        env: {
          DYNASTATE_TABEL_NAME: "orders",
          DYNASTATE_BILLING_MODE: "on_demand",
          DYNASTATE_READ_CAPACITY_UNITS: "abc",
          DYNASTATE_COMPACTION_SETTLE: "0s",
          DYNASTATE_CONFIG: undefined,
          PATH: "/usr/bin"
        }
      }))
      expect(error.all).toEqual([
        { field: "DYNASTATE_TABEL_NAME", reason: "is not a dynastate key; did you mean DYNASTATE_TABLE_NAME?" },
        {
          field: "storage.billing_mode",
          reason: "\"on_demand\" (from DYNASTATE_BILLING_MODE) is not one of pay_per_request, provisioned"
        },
        {
          field: "storage.read_capacity_units",
          reason: "\"abc\" (from DYNASTATE_READ_CAPACITY_UNITS) is not a whole number above 0"
        },
        {
          field: "storage.compaction_settle",
          reason: "\"0s\" (from DYNASTATE_COMPACTION_SETTLE) is zero: a duration must be above 0"
        }
      ])
      // Variables of dynastate that are not storage keys are no mistake.
      const fine = yield* StoreConfig.load({ env: { DYNASTATE_CACHE_DIR: "/tmp/x", DYNASTATE_TABLE_NAME: "orders" } })
      expect(fine.tableName).toBe("orders")
    }))

  it.effect("a secret, or a long value that may be one, is never quoted in an error", () =>
    Effect.gen(function*() {
      const error = yield* refused(StoreConfig.load({
        file: yamlFile(`storage:\n  secret_key: [${secret}]\n  write_mode: ${secret}\n`),
        env: { DYNASTATE_READ_CAPACITY_UNITS: secret }
      }))
      expect(error.message).not.toContain(secret)
      expect(error.all.map((problem) => problem.reason)).toEqual([
        "is a list; expected a single value",
        "a 40-character value (from DYNASTATE_READ_CAPACITY_UNITS) is not a whole number above 0",
        "a 40-character value is not one of fenced, strict"
      ])
    }))

  it.effect("continuous_backups is read for provisioning; auto scaling is refused with the reason", () =>
    Effect.gen(function*() {
      const on = yield* StoreConfig.load({ file: yamlFile("storage:\n  continuous_backups: true\n"), env: {} })
      expect(on.continuousBackups).toEqual(Option.some(true))
      const off = yield* StoreConfig.load({ env: { DYNASTATE_CONTINUOUS_BACKUPS: "false" } })
      expect(off.continuousBackups).toEqual(Option.some(false))
      const odd = yield* refused(StoreConfig.load({ env: { DYNASTATE_CONTINUOUS_BACKUPS: "yes" } }))
      expect(odd.reason).toBe("\"yes\" (from DYNASTATE_CONTINUOUS_BACKUPS) is not true or false")
      // auto_scaling: false is Teleport's default and asks for nothing.
      expect((yield* StoreConfig.load({ file: yamlFile("storage:\n  auto_scaling: false\n"), env: {} })).tableName)
        .toBe("dynastate")
      const scaling = yield* refused(StoreConfig.load({
        file: yamlFile("storage:\n  auto_scaling: true\n  read_min_capacity: 5\n  write_target_value: 70\n"),
        env: {}
      }))
      expect(scaling.all.map((problem) => problem.field)).toEqual([
        "storage.read_min_capacity",
        "storage.write_target_value",
        "storage.auto_scaling"
      ])
      for (const problem of scaling.all) {
        expect(problem.reason).toContain("dynastate does not manage DynamoDB auto scaling")
        expect(problem.reason).toContain("pay_per_request")
      }
    }))

  it.effect("the worker's keys: readiness lag, shutdown deadline, OTLP endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT)", () =>
    Effect.gen(function*() {
      const config = yield* StoreConfig.load({
        file: yamlFile("storage:\n  ready_max_lag: 2m\n  shutdown_timeout: 45s\n  otlp_endpoint: http://otel:4318\n"),
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://ignored:4318" }
      })
      expect([config.readyMaxLagMillis, config.shutdownTimeoutMillis]).toEqual([120_000, 45_000])
      expect(config.otlpEndpoint).toEqual(Option.some("http://otel:4318"))
      const standard = yield* StoreConfig.load({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: "https://collector:4318" } })
      expect(standard.otlpEndpoint).toEqual(Option.some("https://collector:4318"))
      const bad = yield* refused(StoreConfig.load({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: "collector" } }))
      expect(bad.all).toEqual([{
        field: "OTEL_EXPORTER_OTLP_ENDPOINT",
        reason: "\"collector\" is not an http:// or https:// URL"
      }])
    }))

  it.effect("through Effect's ConfigProvider: unknown keys under storage and bad values, all at once", () =>
    Effect.gen(function*() {
      const provider = ConfigProvider.fromUnknown({
        storage: { tabel_name: "x", billing_mode: "monthly", metrics_port: "-1", kms_extra_keys: ["a", "b"] }
      })
      const error = yield* refused(StoreConfig.fromProvider(provider))
      expect(error.all).toEqual([
        { field: "storage.tabel_name", reason: "is not a dynastate key; did you mean table_name?" },
        { field: "storage.billing_mode", reason: "\"monthly\" is not one of pay_per_request, provisioned" },
        { field: "storage.metrics_port", reason: "\"-1\" is not a port number from 0 to 65535 (0: any free port)" }
      ])
      const { result, warnings } = yield* withWarnings(
        StoreConfig.fromProvider(
          ConfigProvider.fromUnknown({ storage: { tabel_name: "x", kms_extra_keys: ["a", "b"] } }),
          { unknownKeys: "warn" }
        )
      )
      expect(result._tag === "Success" && result.success.kmsExtraKeys).toEqual(["a", "b"])
      expect(warnings).toEqual(["ignoring storage keys dynastate does not use: tabel_name (did you mean table_name?)"])
      // OTEL_EXPORTER_OTLP_ENDPOINT at the provider's top, as from the environment.
      const otlp = yield* StoreConfig.fromProvider(
        ConfigProvider.fromUnknown({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318", storage: {} })
      )
      expect(otlp.otlpEndpoint).toEqual(Option.some("http://otel:4318"))
    }))
})

describe("Suggest", () => {
  it("edit distance counts a swap of neighbours as one edit", () => {
    expect(editDistance("tabel_name", "table_name")).toBe(1)
    expect(editDistance("regin", "region")).toBe(1)
    expect(editDistance("", "abc")).toBe(3)
    expect(editDistance("same", "same")).toBe(0)
  })

  it("nearest suggests only what is close enough to be a slip", () => {
    const known = ["table_name", "region", "endpoint", "namespace"]
    expect(nearest("tabel_name", known)).toBe("table_name")
    expect(nearest("ENDPONT", known)).toBe("endpoint")
    expect(nearest("colour", known)).toBeUndefined()
    expect(nearest("x", [])).toBeUndefined()
  })
})
