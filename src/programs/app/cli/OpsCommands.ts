/**
 * Operational commands over the `ops` modules: `status`, `doctor`, `provision`, `backup`, `restore` and
 * `import-teleport`. Each prints its module's report (`render` for text, the report itself for `-o json`). Only
 * `provision` creates tables; `status`, `doctor`, `backup` and `restore` open DynamoDB without the store's table
 * set-up, and `import-teleport` opens the store as any other write does (a missing table is `TableMissing`).
 */
import { Console, Effect, Layer, Option, Schema } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { pipeline } from "node:stream/promises"
import { Dynamo } from "../../../infra/Dynamo.ts"
import * as TableAdmin from "../../../infra/ops/TableAdmin.ts"
import type { StoreConfig } from "../../../infra/StoreConfig.ts"
import * as Backup from "../../ops/Backup.ts"
import { BackupFileError } from "../../ops/BackupFile.ts"
import * as Doctor from "../../ops/Doctor.ts"
import * as ImportTeleport from "../../ops/ImportTeleport.ts"
import * as Provision from "../../ops/Provision.ts"
import * as Restore from "../../ops/Restore.ts"
import * as Status from "../../ops/Status.ts"
import * as Target from "../../ops/Target.ts"
import * as StoreLive from "../StoreLive.ts"
import { loadConfig, withConfiguredStore } from "./Globals.ts"
import { InputInvalid } from "./Input.ts"
import { emit, OutputFormat } from "./Output.ts"

/** At least one of doctor's checks failed (its report, with each fix, is on stdout). */
export class DoctorFailed extends Schema.TaggedError<DoctorFailed>()("DoctorFailed", {
  failed: Schema.Array(Schema.String)
}) {
  override get message() {
    return `${this.failed.length} doctor check${this.failed.length === 1 ? "" : "s"} failed: ${
      this.failed.join(", ")
    } (the fix of each is printed with it)`
  }
}

/**
 * Runs `make` with DynamoDB (and Streams) of the configuration, without the store's table set-up: these commands
 * inspect or create tables themselves.
 */
const withDynamo = <A, E, R>(make: (config: StoreConfig) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const { config } = yield* loadConfig
    return yield* make(config).pipe(Effect.provide(Layer.fresh(StoreLive.dynamoLayer(config))))
  })

const viewsFlag = Flag.String("view").pipe(
  Flag.atLeast(0),
  Flag.withDescription("an index view the application runs (its table TABLE.view.<name> is included); repeatable")
)

/** A scratch directory for the duration of a command (staging a backup for stdout, or one read from stdin). */
const scratchDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-backup-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const ioFailure = (file: string) => (cause: unknown) =>
  new BackupFileError({ path: file, reason: (cause as { message?: string })?.message ?? String(cause) })

const copyToStdout = (file: string) =>
  Effect.tryPromise({
    try: async () => {
      for await (const chunk of fs.createReadStream(file)) {
        await new Promise<void>((resolve, reject) =>
          process.stdout.write(chunk as Buffer, (error) => (error ? reject(error) : resolve()))
        )
      }
    },
    catch: ioFailure("-")
  })

const copyFromStdin = (file: string) =>
  Effect.tryPromise({
    try: () => pipeline(process.stdin, fs.createWriteStream(file, { mode: 0o600 })),
    catch: ioFailure("-")
  })

/** A report on stderr, in the chosen format: for `backup -`, whose stdout is the backup itself. */
const emitToStderr = (result: { readonly text: string; readonly json: unknown }) =>
  Effect.gen(function*() {
    const format = yield* OutputFormat
    yield* Console.error(format === "json" ? JSON.stringify(result.json) : result.text)
  })

const status = Command.make("status", {
  group: Flag.String("group").pipe(
    Flag.optional,
    Flag.withDescription("the worker lease group to show (default: lease_group of the configuration, else default)")
  )
}, ({ group }) =>
  withDynamo((config) =>
    Effect.gen(function*() {
      const report = yield* Status.status(Target.fromConfig(config, { leaseGroup: Option.getOrUndefined(group) }))
      yield* emit({ text: Status.render(report), json: report, value: report.table.status ?? "MISSING" })
      // The report says so already; the exit code tells a script the store is not set up.
      if (!report.table.exists) return yield* new StoreLive.TableMissing({ table: config.tableName })
    })
  )).pipe(
    Command.withDescription(
      "How the table, its stream, TTL and the projection workers stand (leases, lag); reads only. " +
        "Exit 6 when the table is missing"
    )
  )

const doctor = Command.make("doctor", {
  permissions: Flag.Boolean("permissions").pipe(
    Flag.withDefault(false),
    Flag.withDescription("also list the IAM permissions each feature needs, verified or inferred")
  ),
  views: viewsFlag
}, ({ permissions, views }) =>
  withDynamo((config) =>
    Effect.gen(function*() {
      const dynamo = yield* Dynamo
      // Never a new key file: a missing one is a failed `encryption` check, with its message.
      const keyring = StoreLive.guardedKeyringLayer(config, { createKey: false }).pipe(
        Layer.provide(Layer.succeed(Dynamo, dynamo))
      )
      const report = yield* Doctor.run({
        target: Target.fromConfig(config, { views }),
        keyring,
        kmsKeys: [...Option.toArray(config.kmsKey), ...config.kmsExtraKeys],
        relay: { endpoint: config.watchEndpoint, tls: config.watchTls }
      })
      const failed = report.checks.filter((check) => check.verdict === "fail").map((check) => check.id)
      yield* emit({
        text: Doctor.render(report, { permissions }),
        json: report,
        value: report.ok ? "ok" : failed.join(" ")
      })
      if (!report.ok) return yield* new DoctorFailed({ failed })
    })
  )).pipe(
    Command.withDescription(
      "Check credentials, table schema, stream, TTL, side tables, the keyring (KMS), the worker's watch relay " +
        "(watch_endpoint) and IAM permissions, with the fix of each failure; changes nothing. Exit 7 when a check failed"
    )
  )

const provision = Command.make(
  "provision",
  {
    dryRun: Flag.Boolean("dry-run").pipe(
      Flag.withDefault(false),
      Flag.withDescription("print the plan, change nothing")
    ),
    pointInTimeRecovery: Flag.Boolean("point-in-time-recovery").pipe(
      Flag.optional,
      Flag.withDescription("turn point-in-time recovery on (or off with --no-…; default: storage.continuous_backups)")
    ),
    deletionProtection: Flag.Boolean("deletion-protection").pipe(
      Flag.optional,
      Flag.withDescription("turn deletion protection on (or off with --no-…)")
    ),
    sse: Flag.String("sse").pipe(
      Flag.optional,
      Flag.withDescription("table encryption at rest: aws-owned, aws-managed or a KMS key ARN")
    ),
    tags: Flag.KeyValuePair("tag").pipe(
      Flag.optional,
      Flag.withDescription("a tag key=value for the tables (repeatable; other tags are left alone)")
    ),
    views: viewsFlag
  },
  ({ deletionProtection, dryRun, pointInTimeRecovery, sse, tags, views }) =>
    withDynamo((config) =>
      Effect.gen(function*() {
        const shape = Provision.shapeOf(config, {
          pointInTimeRecovery: Option.getOrUndefined(
            Option.orElse(pointInTimeRecovery, () => config.continuousBackups)
          ),
          deletionProtection: Option.getOrUndefined(deletionProtection),
          encryption: Option.getOrUndefined(sse),
          tags: Option.getOrUndefined(tags)
        })
        const report = yield* Provision.provision({ target: Target.fromConfig(config, { views }), shape, dryRun })
        yield* emit({ text: Provision.render(report), json: report, value: String(report.changes.length) })
      })
    )
).pipe(
  Command.withDescription(
    "Create the store's tables or bring them to the configured shape (billing, capacity, stream, TTL, " +
      "point-in-time recovery, deletion protection, encryption, tags); --dry-run prints the plan"
  )
)

const backup = Command.make("backup", {
  file: Argument.String("file").pipe(Argument.withDescription("the backup file to write, or - for stdout"))
}, ({ file }) =>
  withDynamo((config) =>
    Effect.scoped(Effect.gen(function*() {
      // The table first: a missing one is "not set up", not a storage failure.
      yield* StoreLive.requireTable(config.tableName)
      const target = Target.fromConfig(config)
      if (file !== "-") {
        const report = yield* Backup.backup(target, file)
        return yield* emit({ text: Backup.render(report), json: report, value: report.path })
      }
      // The header needs the counts and checksum, so the backup is made whole first, then copied out.
      const staged = path.join(yield* scratchDir, "stdout.backup")
      const report = yield* Backup.backup(target, staged)
      yield* copyToStdout(staged)
      yield* emitToStderr({ text: Backup.render({ ...report, path: "-" }), json: { ...report, path: "-" } })
    }))
  )).pipe(
    Command.withDescription(
      "Export the store's event log (live events, history, graves, wrapped data keys; values stay encrypted) " +
        "to a file, or - for stdout (the report then goes to stderr)"
    )
  )

const restore = Command.make("restore", {
  file: Argument.String("file").pipe(Argument.withDescription("the backup file to read, or - for stdin")),
  resume: Flag.Boolean("resume").pipe(
    Flag.withDefault(false),
    Flag.withDescription("finish a restore of the same backup that stopped (the namespace may hold its items)")
  )
}, ({ file, resume }) =>
  withDynamo((config) =>
    Effect.scoped(Effect.gen(function*() {
      const dynamo = yield* Dynamo
      // Used only to re-encrypt for another store id or namespace; never creates a key file.
      const keyring = StoreLive.guardedKeyringLayer(config, { createKey: false }).pipe(
        Layer.provide(Layer.succeed(Dynamo, dynamo))
      )
      let source = file
      if (file === "-") {
        // Restore reads the file twice (checked whole first, then written), so stdin is staged.
        source = path.join(yield* scratchDir, "stdin.backup")
        yield* copyFromStdin(source)
      }
      const progress = process.stderr.isTTY
        ? (written: number, total: number) =>
          Effect.sync(() => void process.stderr.write(`\rrestored ${written}/${total} items`))
        : undefined
      const report = yield* Restore.restore({ path: source, target: Target.fromConfig(config), resume, progress })
        .pipe(
          Effect.ensuring(Effect.sync(() => void (progress && process.stderr.write("\n")))),
          Effect.provide(keyring)
        )
      const shown = { ...report, path: file }
      const total = Object.values(report.written).reduce((sum, count) => sum + count, 0)
      yield* emit({ text: Restore.render(shown), json: shown, value: String(total) })
    }))
  )).pipe(
    Command.withDescription(
      "Import a backup (a file, or - for stdin) into the configured table and namespace, which must exist " +
        "(provision) and be empty; checked whole before anything is written"
    )
  )

const importTeleport = Command.make("import-teleport", {
  source: Flag.String("source-table").pipe(Flag.withDescription("the table of Teleport's DynamoDB backend")),
  after: Flag.String("after").pipe(
    Flag.optional,
    Flag.withDescription("resume after this FullPath (the last path an earlier run reported)")
  ),
  pageSize: Flag.Int("page-size").pipe(Flag.optional, Flag.withDescription("items per page read from the source")),
  hashKey: Flag.String("hash-key").pipe(
    Flag.optional,
    Flag.withDescription("Teleport's partition (HashKey; default: teleport)")
  ),
  keyPrefix: Flag.String("key-prefix").pipe(
    Flag.optional,
    Flag.withDescription("the FullPath prefix removed to make the key (default: teleport; \"\" keeps paths)")
  )
}, ({ after, hashKey, keyPrefix, pageSize, source }) =>
  withConfiguredStore("use", () =>
    Effect.gen(function*() {
      // A misspelt source is bad input, not a storage failure.
      if ((yield* TableAdmin.describeTable(source)) === undefined) {
        return yield* new InputInvalid({ input: "--source-table", reason: `source table ${source} does not exist` })
      }
      const report = yield* ImportTeleport.importTeleport({
        source,
        after: Option.getOrUndefined(after),
        pageSize: Option.getOrUndefined(pageSize),
        hashKey: Option.getOrUndefined(hashKey),
        keyPrefix: Option.getOrUndefined(keyPrefix),
        progress: (progress) => Console.error(ImportTeleport.renderProgress(progress))
      })
      yield* emit({ text: ImportTeleport.render(report), json: report, value: String(report.imported) })
    }))).pipe(
    Command.withDescription(
      "Copy a Teleport DynamoDB backend table (HashKey/FullPath/Value/Expires) into the store as puts with their " +
        "expiry; rerunning writes nothing twice, --after resumes"
    )
  )

/** The operational commands. */
export const opsCommands = [status, doctor, provision, backup, restore, importTeleport] as const
