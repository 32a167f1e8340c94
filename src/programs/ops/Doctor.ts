/**
 * `dynastate doctor`: checks that the store can run where it is configured to, each check with a verdict and, when
 * it fails, one sentence saying how to fix it. Nothing is changed: credentials are proved by the cheapest call
 * (`ListTables`), tables by `DescribeTable`/`DescribeTimeToLive`, IAM permissions by requests that DynamoDB must
 * authorise but that cannot change anything (writes conditional on an item that does not exist), and the keyring
 * by a data-key round trip with the store's own encryption context. Permissions no request proves (creating
 * tables, updating them, the stream's records) are listed as inferred.
 */
import { Clock, Context, Effect, Layer } from "effect"
import { contextOf } from "../../infra/crypto/DataKeys.ts"
import type { Keyring } from "../../infra/crypto/Keyring.ts"
import { Keyring as KeyringService } from "../../infra/crypto/Keyring.ts"
import type { Dynamo } from "../../infra/Dynamo.ts"
import * as PermissionProbe from "../../infra/ops/PermissionProbe.ts"
import type { Probe } from "../../infra/ops/PermissionProbe.ts"
import * as TableAdmin from "../../infra/ops/TableAdmin.ts"
import type { TableInfo, TtlInfo } from "../../infra/ops/TableAdmin.ts"
import { StreamsApi } from "../../infra/streams/StreamsApi.ts"
import { schemaDifferences } from "../../infra/TableProvisioner.ts"
import { fail, pass, skip, warn } from "./Checks.ts"
import type { Check, Verdict } from "./Checks.ts"
import * as Permissions from "./Permissions.ts"
import * as RelayCheck from "./RelayCheck.ts"
import { ttlAttribute } from "./Status.ts"
import type { Target } from "./Target.ts"

export type { Check, Verdict } from "./Checks.ts"

/** Everything `doctor` found; plain data, so `JSON.stringify` gives the `-o json` output. */
export interface DoctorReport {
  readonly checkedAt: number
  /** True when no check failed (warnings allowed). */
  readonly ok: boolean
  readonly checks: ReadonlyArray<Check>
  readonly permissions: ReadonlyArray<Permissions.FeaturePermissions>
}

/** What doctor checks. */
export interface DoctorOptions {
  readonly target: Target
  /**
   * The configured keyring (`StoreLive.keyringLayer(config)`): built here, so a key it cannot resolve is a failed
   * check rather than a failed command. Leave it out to skip the encryption check.
   */
  readonly keyring?: Layer.Layer<Keyring, unknown> | undefined
  /** The KMS key(s) configured, for the permission list (none: local raw AES keys). */
  readonly kmsKeys?: ReadonlyArray<string> | undefined
  /** Where watches read through a worker (`watch_endpoint` and its TLS files); leave it out to skip the check. */
  readonly relay?: RelayCheck.RelayCheckOptions | undefined
}

const credentialsCheck = TableAdmin.listTables(1).pipe(
  Effect.as(pass("credentials", "credentials resolve and DynamoDB answers (ListTables)")),
  Effect.catch((error) => {
    const name = TableAdmin.errorName(error)
    const reason = error.reason
    if (name === "AccessDeniedException") {
      return Effect.succeed(warn(
        "credentials",
        "credentials resolve, but may not list tables (ListTables denied; the store itself does not need it)",
        "nothing to do for the store; grant dynamodb:ListTables to let doctor prove the credentials this way"
      ))
    }
    if (name === "CredentialsProviderError" || /credential/i.test(reason) && name !== "UnrecognizedClientException") {
      return Effect.succeed(fail(
        "credentials",
        `no credentials found: ${reason}`,
        "give credentials: an IAM role (instance profile, ECS task role, IRSA), AWS_PROFILE or --profile, " +
          "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or storage.access_key and storage.secret_key"
      ))
    }
    if (
      name !== undefined &&
      ["UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "InvalidClientTokenId"]
        .includes(name)
    ) {
      return Effect.succeed(fail(
        "credentials",
        `DynamoDB refused the credentials: ${reason}`,
        "refresh or replace the credentials (an expired session, a deleted access key, or keys of another " +
          "partition), and check that the machine's clock is right"
      ))
    }
    return Effect.succeed(fail(
      "credentials",
      `DynamoDB could not be reached: ${reason}`,
      "check storage.endpoint / --endpoint and storage.region / --region, and the network path to DynamoDB"
    ))
  })
)

const tableCheck = (target: Target, table: TableInfo | undefined): Check => {
  if (table === undefined) {
    return fail(
      "table",
      `table ${target.table} does not exist`,
      "run `dynastate provision` to create it (or start the store once: it creates a missing table)"
    )
  }
  const differences = schemaDifferences(table.description).filter((difference) => !difference.includes("stream"))
  if (differences.length > 0) {
    return fail(
      "table",
      `table ${target.table} has another key schema: ${differences.join("; ")}`,
      "this table was made for something else: point storage.table_name at another table and run " +
        "`dynastate provision`"
    )
  }
  if (table.status !== "ACTIVE") {
    return warn("table", `table ${target.table} is ${table.status}`, "wait until it is ACTIVE, then run doctor again")
  }
  return pass("table", `table ${target.table} exists with key schema pk (S) HASH, sk (B) RANGE`)
}

const streamCheck = (target: Target, table: TableInfo): Check => {
  const enable = "run `dynastate provision`, or `aws dynamodb update-table --table-name " + target.table +
    " --stream-specification StreamEnabled=true,StreamViewType=NEW_IMAGE`"
  if (!table.stream.enabled) {
    return fail(
      "stream",
      `table ${target.table} has no stream: the projection worker (compaction, expiry, views) and watches need one`,
      enable
    )
  }
  if (table.stream.viewType !== "NEW_IMAGE" && table.stream.viewType !== "NEW_AND_OLD_IMAGES") {
    return fail(
      "stream",
      `the stream carries ${table.stream.viewType}; the worker needs new images`,
      "a stream's view type cannot be changed in place: disable the stream (`aws dynamodb update-table " +
        `--table-name ${target.table} --stream-specification StreamEnabled=false\`), then ${enable}`
    )
  }
  return pass("stream", `stream enabled (${table.stream.viewType})`)
}

const ttlCheck = (id: string, table: string, ttl: TtlInfo, required: boolean): Check => {
  const enable = "run `dynastate provision`, or `aws dynamodb update-time-to-live --table-name " + table +
    ` --time-to-live-specification Enabled=true,AttributeName=${ttlAttribute}\``
  if ((ttl.status === "ENABLED" || ttl.status === "ENABLING") && ttl.attribute === ttlAttribute) {
    return pass(id, `${required ? "" : `${table} exists, `}TTL ${ttl.status.toLowerCase()} on ${ttlAttribute}`)
  }
  if (ttl.status === "ENABLED" || ttl.status === "ENABLING") {
    return fail(
      id,
      `TTL of ${table} is on attribute ${ttl.attribute}, not ${ttlAttribute}`,
      `disable TTL on ${ttl.attribute} (DynamoDB allows one TTL attribute and one change an hour), then ${enable}`
    )
  }
  const detail = `TTL is ${ttl.status.toLowerCase()} on ${table}: ` +
    (required
      ? "history kept under a limited history_retention is never removed"
      : "finished shard leases are never removed")
  return fail(id, detail, enable)
}

const leaseTableCheck = (target: Target, table: TableInfo | undefined, ttl: TtlInfo | undefined): Check => {
  if (table === undefined) {
    return warn(
      "lease-table",
      `${target.leaseTable} does not exist yet: no projection worker has run`,
      "nothing to do if no worker runs yet (the first creates it); `dynastate provision` creates it now"
    )
  }
  const keys = table.keySchema.map((key) => `${key.name} ${key.type} ${key.role}`).join(", ")
  if (keys !== "pk S HASH, sk S RANGE") {
    return fail(
      "lease-table",
      `${target.leaseTable} has key schema ${keys}, not pk S HASH, sk S RANGE`,
      `delete ${target.leaseTable} (it holds only leases and checkpoints; the worker rebuilds from the table) ` +
        "and run `dynastate provision`"
    )
  }
  return ttl === undefined
    ? pass("lease-table", `${target.leaseTable} exists`)
    : ttlCheck("lease-table", target.leaseTable, ttl, false)
}

const viewTableCheck = (name: string, table: TableInfo | undefined): Check => {
  if (table === undefined) {
    return warn(
      `view-table ${name}`,
      `${name} does not exist yet`,
      "the worker running the view creates it; `dynastate provision` creates it now"
    )
  }
  const keys = table.keySchema.map((key) => `${key.name} ${key.type} ${key.role}`).join(", ")
  return keys === "ix S HASH, key S RANGE"
    ? pass(`view-table ${name}`, `${name} exists`)
    : fail(
      `view-table ${name}`,
      `${name} has key schema ${keys}, not ix S HASH, key S RANGE`,
      `delete ${name} and let the worker rebuild the view (\`dynastate rebuild\`)`
    )
}

const keyringFixes: Record<string, string> = {
  "access-denied": "grant this principal kms:GenerateDataKey and kms:Decrypt (and kms:DescribeKey) on the key, with " +
    "the encryption-context conditions of the README's IAM policy (dynastate:table = the store id)",
  "key-not-found": "check storage.kms_key: the key id, ARN or alias must exist in the region the keyring uses " +
    "(an ARN names its own region)",
  "key-disabled": "enable the key (`aws kms enable-key --key-id …`), or configure another storage.kms_key and " +
    "run `dynastate rewrap`",
  "key-pending-deletion": "cancel the deletion at once (`aws kms cancel-key-deletion --key-id …`, then " +
    "`aws kms enable-key`): once deleted, every value it protects is lost",
  "wrong-key": "storage.kms_key must name a symmetric ENCRYPT_DECRYPT key",
  "throttled": "KMS is throttling: try again, and raise the KMS request quota if it persists",
  "unavailable": "KMS could not be reached or failed: check storage.kms_endpoint, the region and the network",
  "invalid-key-material": "storage.keyring_key / the key file must hold 32-byte keys in base64",
  "no-matching-key": "the keyring holds none of the keys the data key is wrapped under: configure the original key"
}

const keyringCheck = (target: Target, keyring: Layer.Layer<Keyring, unknown>) =>
  Effect.gen(function*() {
    const service = yield* Layer.build(keyring).pipe(
      Effect.map((context) => Context.get(context, KeyringService))
    )
    // The store's own context: IAM conditions on it are what the store meets.
    const context = contextOf(
      { table: target.table, namespace: target.namespace, storeId: target.storeId },
      "doctor-check",
      "doctor"
    )
    const generated = yield* service.generate(context)
    yield* service.unwrap(generated.wrapped, context)
    return pass("encryption", `${service.name} made a data key and unwrapped it again`)
  }).pipe(
    Effect.scoped,
    Effect.catch((error: unknown) => {
      const failure = (error as { failure?: unknown }).failure
      const message = (error as { message?: unknown }).message
      const detail = typeof message === "string" ? message : String(error)
      if (typeof failure === "string") {
        const fix = keyringFixes[failure] ?? "check the keyring configuration"
        return Effect.succeed(
          failure === "throttled" || failure === "unavailable"
            ? warn("encryption", `the keyring failed (${failure}): ${detail}`, fix)
            : fail("encryption", `the keyring cannot make or unwrap data keys (${failure}): ${detail}`, fix)
        )
      }
      return Effect.succeed(
        fail("encryption", `the keyring could not be set up: ${detail}`, "fix the configuration it names")
      )
    })
  )

const evidenceOf = (probe: Probe | undefined): Permissions.Evidence =>
  probe === undefined
    ? "inferred"
    : probe._tag === "Allowed"
    ? "verified"
    : probe._tag === "Denied"
    ? "denied"
    : "inferred"

/** Runs every check; never fails (a failure is a check's verdict). */
export const run = Effect.fn("Doctor.run")(function*(
  options: DoctorOptions
): Effect.fn.Return<DoctorReport, never, Dynamo | StreamsApi> {
  const { target } = options
  const checks: Array<Check> = []
  const verified = new Map<string, Probe>()
  const note = (action: string, resource: string, probe: Probe) => verified.set(`${action} ${resource}`, probe)
  const { leases, stream, table } = Permissions.resources(target)

  const credentials = yield* credentialsCheck
  checks.push(credentials)
  const reachable = credentials.verdict !== "fail"
  const dynamoChecks = Effect.gen(function*() {
    const info = yield* TableAdmin.describeTable(target.table)
    note("dynamodb:DescribeTable", table, { _tag: "Allowed" })
    checks.push(tableCheck(target, info))
    if (info === undefined) {
      checks.push(skip("stream", "no table"), skip("ttl", "no table"))
    } else {
      checks.push(streamCheck(target, info))
      const ttl = yield* TableAdmin.describeTtl(target.table)
      note("dynamodb:DescribeTimeToLive", table, { _tag: "Allowed" })
      checks.push(ttlCheck("ttl", target.table, ttl, true))
      // In the namespace's own partition: a principal confined to it (`dynastate policy`) may probe nowhere else.
      const probeTable = {
        table: target.table,
        partition: target.namespace,
        hashKey: "pk",
        rangeKey: "sk",
        rangeType: "B" as const
      }
      for (const action of PermissionProbe.itemActions) {
        note(`dynamodb:${action}`, table, yield* PermissionProbe.probe(probeTable, action))
      }
      if (info.stream.arn !== undefined) {
        const streams = yield* StreamsApi
        const streamProbe = (attempt: Effect.Effect<unknown, { readonly _tag: string }>) =>
          attempt.pipe(
            Effect.as<Probe>({ _tag: "Allowed" }),
            Effect.catch((error) => {
              const reason = "reason" in error ? String(error.reason) : error._tag
              return Effect.succeed<Probe>(
                TableAdmin.errorName({ reason }) === "AccessDeniedException"
                  ? { _tag: "Denied", reason }
                  : { _tag: "Unknown", reason }
              )
            })
          )
        const page = yield* Effect.result(streams.describeStream(info.stream.arn, undefined))
        note(
          "dynamodb:DescribeStream",
          stream,
          yield* streamProbe(page._tag === "Success" ? Effect.void : Effect.fail(page.failure))
        )
        const shard = page._tag === "Success" ? page.success.shards.at(-1) : undefined
        if (shard !== undefined) {
          const iterator = yield* Effect.result(
            streams.getShardIterator(info.stream.arn, shard.shardId, { _tag: "Latest" })
          )
          note(
            "dynamodb:GetShardIterator",
            stream,
            yield* streamProbe(iterator._tag === "Success" ? Effect.void : Effect.fail(iterator.failure))
          )
          // Reading from the tip returns nothing (or the newest records) and changes nothing.
          if (iterator._tag === "Success" && iterator.success !== undefined) {
            note("dynamodb:GetRecords", stream, yield* streamProbe(streams.getRecords(shard.shardId, iterator.success)))
          }
        }
      }
    }
    const leaseInfo = yield* TableAdmin.describeTable(target.leaseTable)
    note("dynamodb:DescribeTable", leases, { _tag: "Allowed" })
    const leaseTtl = leaseInfo === undefined ? undefined : yield* TableAdmin.describeTtl(target.leaseTable)
    if (leaseTtl !== undefined) note("dynamodb:DescribeTimeToLive", leases, { _tag: "Allowed" })
    checks.push(leaseTableCheck(target, leaseInfo, leaseTtl))
    if (leaseInfo !== undefined) {
      const probeTable = {
        table: target.leaseTable,
        partition: target.leaseGroup,
        hashKey: "pk",
        rangeKey: "sk",
        rangeType: "S" as const
      }
      for (const action of ["Query", "GetItem", "PutItem", "UpdateItem", "DeleteItem"] as const) {
        note(`dynamodb:${action}`, leases, yield* PermissionProbe.probe(probeTable, action))
      }
    }
    for (const view of target.viewTables) checks.push(viewTableCheck(view, yield* TableAdmin.describeTable(view)))
  }).pipe(
    Effect.catch((error) =>
      Effect.sync(() => {
        checks.push(fail(
          "tables",
          `DynamoDB refused a table check: ${error.reason}`,
          TableAdmin.errorName(error) === "AccessDeniedException"
            ? `grant dynamodb:DescribeTable and dynamodb:DescribeTimeToLive on ${table} and ${leases}`
            : "check the endpoint, region and network, then run doctor again"
        ))
      })
    )
  )
  if (reachable) yield* dynamoChecks
  else checks.push(skip("tables", "DynamoDB could not be asked (see credentials)"))

  const kms = options.kmsKeys ?? []
  if (options.keyring === undefined) checks.push(skip("encryption", "no keyring given to check"))
  else {
    const keyring = yield* keyringCheck(target, options.keyring)
    checks.push(keyring)
    const probe: Probe = keyring.verdict === "pass"
      ? { _tag: "Allowed" }
      : keyring.detail.includes("access-denied")
      ? { _tag: "Denied", reason: keyring.detail }
      : { _tag: "Unknown", reason: keyring.detail }
    for (const key of kms) {
      for (const action of ["kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"]) note(action, `key ${key}`, probe)
    }
  }

  if (options.relay !== undefined) checks.push(yield* RelayCheck.check(target, options.relay))

  const denied = [...verified].filter(([, probe]) => probe._tag === "Denied").map(([name]) => name)
  checks.push(
    denied.length === 0
      ? pass(
        "permissions",
        `${
          [...verified.values()].filter((probe) => probe._tag === "Allowed").length
        } actions verified without a change; the rest are listed as inferred`
      )
      : fail(
        "permissions",
        `denied: ${denied.join(", ")}`,
        "add the denied actions to the principal's policy (the README's IAM policy lists each on its resource)"
      )
  )

  const permissions = Permissions.catalogue(
    target,
    kms,
    (action, resource) => evidenceOf(verified.get(`${action} ${resource}`))
  )
  return {
    checkedAt: yield* Clock.currentTimeMillis,
    ok: checks.every((check) => check.verdict !== "fail"),
    checks,
    permissions
  }
})

const marks: Record<Verdict, string> = { pass: "ok  ", fail: "FAIL", warn: "warn", skip: "skip" }

/** The report as text: one line per check, its fix beneath; with `permissions`, the IAM list per feature. */
export const render = (report: DoctorReport, options: { readonly permissions?: boolean } = {}): string => {
  const lines: Array<string> = []
  const width = Math.max(...report.checks.map((check) => check.id.length))
  for (const check of report.checks) {
    lines.push(`${marks[check.verdict]}  ${check.id.padEnd(width)}  ${check.detail}`)
    if (check.fix !== undefined) lines.push(`${" ".repeat(width + 8)}fix: ${check.fix}`)
  }
  if (options.permissions) {
    lines.push("", "IAM permissions by feature (verified: a request proved it; inferred: not checked):")
    for (const feature of report.permissions) {
      if (feature.permissions.length === 0) {
        lines.push(`  ${feature.feature}: none`)
        continue
      }
      lines.push(`  ${feature.feature}:`)
      for (const entry of feature.permissions) {
        lines.push(`    ${entry.evidence.padEnd(8)}  ${entry.action} on ${entry.resource}`)
      }
    }
  }
  const failed = report.checks.filter((check) => check.verdict === "fail").length
  lines.push("", report.ok ? "no problem found" : `${failed} check${failed === 1 ? "" : "s"} failed`)
  return lines.join("\n")
}
