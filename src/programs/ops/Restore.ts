/**
 * `dynastate restore`: writes a backup back into a table, the same one or another, into an empty namespace.
 *
 * The whole file is checked first (header, every line, counts, SHA-256): a damaged or truncated backup is refused
 * before anything is written. Then, because values and data keys are bound to the store id and namespace:
 *
 * - **copy** — the target has the backup's store id and namespace (the same table, or another table whose
 *   `store_id` names the original): every item is written as it was stored, byte for byte; no key is unwrapped.
 * - **re-encrypt** — another store id or namespace: each value is decrypted with the backup's data keys (unwrapped
 *   by the keyring under the original binding) and encrypted again under new data keys bound to the target, every
 *   clear attribute (seq, revision, timestamps, expiry) kept. Values whose data key was shredded stay shredded;
 *   views' named keys are not carried over (the views are rebuilt); the key sealing key is, re-wrapped for the
 *   target, since sealed keys are stored as its MACs. The keyring must hold the master key the
 *   backup's data keys are wrapped under.
 *
 * Writing the same backup again writes the same items, so a restore that stopped half-way can be resumed.
 */
import { Context, Effect, Layer, Result, Schema, Stream } from "effect"
import { createHash } from "node:crypto"
import type { DecryptionFailed, Shredded, StorageFailure, Throttled, ValueTooLarge } from "../../domain/Errors.ts"
import { DataKeys } from "../../infra/crypto/DataKeys.ts"
import type { Keyring, KeyringError } from "../../infra/crypto/Keyring.ts"
import type { Dynamo } from "../../infra/Dynamo.ts"
import type { Location, StoredItem } from "../../infra/EventRecord.ts"
import * as LayoutRecord from "../../infra/LayoutRecord.ts"
import * as BackupItems from "../../infra/ops/BackupItems.ts"
import * as TableAdmin from "../../infra/ops/TableAdmin.ts"
import { schemaDifferences } from "../../infra/TableProvisioner.ts"
import * as BackupFile from "./BackupFile.ts"
import type { BackupFileError, BackupInvalid, Counts, Header } from "./BackupFile.ts"
import { locationOf } from "./Target.ts"
import type { Target } from "./Target.ts"

/** The target cannot take the backup as asked (missing table, a namespace that already holds data). */
export class RestoreRefused extends Schema.TaggedError<RestoreRefused>()("RestoreRefused", {
  table: Schema.String,
  /**
   * Why: no such table (provision it), a table of another schema, a namespace that holds data already, or large
   * values to re-encrypt (their chunks are bound to the store id and namespace, and are restored by copy only), or a
   * layout (partitioned prefixes) that differs from the one the namespace recorded.
   */
  kind: Schema.Literals(["table-missing", "not-a-store-table", "not-empty", "large-values", "layout"]),
  reason: Schema.String
}) {
  override get message() {
    return `cannot restore into ${this.table}: ${this.reason}`
  }
}

/** How the items were written: as stored, or re-encrypted for another store id or namespace. */
export type RestoreMode = "copy" | "re-encrypt"

/** What `restore` did; plain data, so `JSON.stringify` gives the `-o json` output. */
export interface RestoreReport {
  readonly path: string
  readonly from: { readonly storeId: string; readonly table: string; readonly namespace: string }
  readonly to: { readonly storeId: string; readonly table: string; readonly namespace: string }
  readonly mode: RestoreMode
  readonly written: Counts
  /** Views' named data keys left behind in re-encrypt mode (their views are rebuilt with new keys). */
  readonly skippedNamedKeys: number
}

/** What restore can fail with. */
export type RestoreError =
  | BackupInvalid
  | BackupFileError
  | RestoreRefused
  | KeyringError
  | DecryptionFailed
  | Shredded
  | ValueTooLarge
  | Throttled
  | StorageFailure

/** Restore options. */
export interface RestoreOptions {
  readonly path: string
  readonly target: Target
  /** Write into a namespace that already holds items: to finish a restore of the same backup that stopped. */
  readonly resume?: boolean | undefined
  /** Called after each batch written. */
  readonly progress?: ((written: number, total: number) => Effect.Effect<void>) | undefined
}

/** Reads the whole backup once, checking every line and the header's counts and checksum; writes nothing. */
export const verify = Effect.fn("Restore.verify")(function*(
  path: string
): Effect.fn.Return<Header, BackupInvalid | BackupFileError> {
  const header = yield* BackupFile.readHeader(path)
  const hash = createHash("sha256")
  const counts = BackupFile.noCounts()
  yield* BackupFile.items(path).pipe(
    Stream.runForEach((line) =>
      Effect.gen(function*() {
        const item = BackupItems.fromJson(line.item)
        if (Result.isFailure(item)) {
          return yield* new BackupFile.BackupInvalid({ path, line: line.number, reason: item.failure })
        }
        hash.update(`${line.text}\n`)
        counts[line.role]++
      })
    )
  )
  for (const role of BackupItems.roles) {
    if (counts[role] !== header.counts[role]) {
      return yield* new BackupFile.BackupInvalid({
        path,
        line: 0,
        reason: `the header counts ${header.counts[role]} ${role} items, the file holds ${counts[role]} (truncated?)`
      })
    }
  }
  if (hash.digest("hex") !== header.sha256) {
    return yield* new BackupFile.BackupInvalid({
      path,
      line: 0,
      reason: "the checksum does not match: the file was changed"
    })
  }
  return header
})

/** An item line's item; checked by `verify` already, but the file could have changed since. */
const parsed = (path: string) => (line: { readonly number: number; readonly item: unknown }) => {
  const item = BackupItems.fromJson(line.item)
  return Result.isSuccess(item)
    ? Effect.succeed(item.success)
    : Effect.fail(new BackupFile.BackupInvalid({ path, line: line.number, reason: item.failure }))
}

const batch = 25

/** Checks the backup, then writes it into the target's namespace (see the module's description for the two modes). */
export const restore = Effect.fn("Restore.restore")(function*(
  options: RestoreOptions
): Effect.fn.Return<RestoreReport, RestoreError, Dynamo | Keyring> {
  const { path, target } = options
  const header = yield* verify(path)
  const table = yield* TableAdmin.describeTable(target.table)
  if (table === undefined) {
    return yield* new RestoreRefused({
      table: target.table,
      kind: "table-missing",
      reason: "the table does not exist: create it first with `dynastate provision`"
    })
  }
  const differences = schemaDifferences(table.description)
  if (differences.length > 0) {
    return yield* new RestoreRefused({
      table: target.table,
      kind: "not-a-store-table",
      reason: `not a store table: ${differences.join("; ")}`
    })
  }
  const destination = locationOf(target)
  if (options.resume !== true && !(yield* BackupItems.isEmpty(destination))) {
    return yield* new RestoreRefused({
      table: target.table,
      kind: "not-empty",
      reason: `namespace ${target.namespace} already holds items: restore into an empty namespace or table ` +
        "(or resume a restore of this backup that stopped)"
    })
  }
  // Items go into the partitions of the target's layout (see `PartitionKeys`), which is recorded first: a store
  // opened on the namespace later must route as the restore did.
  const opening = yield* LayoutRecord.settle(destination).pipe(
    Effect.catchTag(
      "ConfigInvalid",
      (error) => Effect.fail(new RestoreRefused({ table: target.table, kind: "layout", reason: error.reason }))
    )
  )
  if (opening._tag === "Migrating") {
    return yield* new RestoreRefused({
      table: target.table,
      kind: "layout",
      reason: "a layout migration is under way in the namespace: finish it (dynastate partition-migrate) first"
    })
  }
  const source: Location = { table: header.table, namespace: header.namespace, storeId: header.storeId }
  const mode: RestoreMode = header.storeId === target.storeId && header.namespace === target.namespace
    ? "copy"
    : "re-encrypt"
  if (mode === "re-encrypt" && header.counts.chunk > 0) {
    return yield* new RestoreRefused({
      table: target.table,
      kind: "large-values",
      reason: `the backup holds ${header.counts.chunk} chunk items of large values, which are restored only under ` +
        `the store id and namespace they were written in (${header.storeId}, ${header.namespace})`
    })
  }
  const written = BackupFile.noCounts()
  const total = BackupItems.roles.reduce((sum, role) => sum + header.counts[role], 0)
  let done = 0
  const put = (role: BackupItems.Role, items: ReadonlyArray<StoredItem>) =>
    BackupItems.putAll(target.table, items).pipe(
      Effect.andThen(Effect.suspend(() => {
        written[role] += items.length
        done += items.length
        return options.progress?.(done, total) ?? Effect.void
      }))
    )
  const ofRole = (role: BackupItems.Role) =>
    BackupFile.items(path).pipe(Stream.filter((line) => line.role === role), Stream.mapEffect(parsed(path)))

  // Data keys first, so that no restored value names a key that is not there yet.
  const dataKeys = yield* Stream.runCollect(ofRole("data-key"))
  let skippedNamedKeys = 0
  if (mode === "copy") {
    for (let start = 0; start < dataKeys.length; start += batch) {
      yield* put("data-key", dataKeys.slice(start, start + batch))
    }
    // Chunks before the events that name them, as the store writes them.
    for (const role of ["chunk", "grave", "history", "event"] as const) {
      yield* ofRole(role).pipe(
        // Each into its key's partition of the target's layout: the partition key is not bound into any value.
        Stream.map((item) => BackupItems.rehome(item, role, destination)),
        Stream.grouped(batch),
        Stream.runForEach((items) => put(role, items))
      )
    }
  } else {
    const sourceKeys = yield* BackupItems.backupDataKeys(source, dataKeys)
    // Shredded keys go along (their values stay unreadable); live keys are replaced by the target's own.
    const shredded = dataKeys.filter(BackupItems.isShreddedDataKey).map((item) =>
      BackupItems.rehome(item, "data-key", destination)
    )
    // The key sealing key goes along (re-wrapped for the target): sealed stored keys are its MACs.
    const sealing = dataKeys.filter((item) => BackupItems.isSealingKey(item) && !BackupItems.isShreddedDataKey(item))
    for (const item of sealing) yield* BackupItems.carryNamedKey(item, sourceKeys, destination)
    skippedNamedKeys = dataKeys.filter(BackupItems.isNamedDataKey).length - sealing.length
    for (let start = 0; start < shredded.length; start += batch) {
      yield* put("data-key", shredded.slice(start, start + batch))
    }
    yield* Effect.gen(function*() {
      const targetKeys = Context.get(yield* Layer.build(DataKeys.layer(destination)), DataKeys)
      for (const role of ["grave", "history", "event"] as const) {
        yield* ofRole(role).pipe(
          Stream.mapEffect((item) =>
            BackupItems.reencrypt(item, role, { location: source, keys: sourceKeys }, destination).pipe(
              Effect.provideService(DataKeys, targetKeys)
            )
          ),
          Stream.grouped(batch),
          Stream.runForEach((items) => put(role, items))
        )
      }
    }).pipe(Effect.scoped)
  }
  return {
    path,
    from: { storeId: header.storeId, table: header.table, namespace: header.namespace },
    to: { storeId: target.storeId, table: target.table, namespace: target.namespace },
    mode,
    written,
    skippedNamedKeys
  }
})

/** The report as text. */
export const render = (report: RestoreReport): string => {
  const { written } = report
  return [
    `restored ${report.path} into ${report.to.table} namespace ${report.to.namespace} (store id ${report.to.storeId})`,
    `  from ${report.from.table} namespace ${report.from.namespace} (store id ${report.from.storeId}), ` +
    (report.mode === "copy"
      ? "copied as stored"
      : "re-encrypted: values decrypted with the backup's data keys and encrypted under new ones"),
    `  ${written.event} live events, ${written.history} history events, ${written.grave} graves, ` +
    (report.mode === "copy"
      ? `${written["data-key"]} data keys`
      : `${written["data-key"]} shredded data keys carried over (the live ones were replaced by new data keys)`),
    ...(report.skippedNamedKeys > 0
      ? [`  ${report.skippedNamedKeys} views' index keys not carried over: run \`dynastate rebuild\` for the views`]
      : []),
    ...(report.mode === "copy" && report.to.table !== report.from.table
      ? [`  the store there must keep store_id: ${report.from.storeId}`]
      : [])
  ].join("\n")
}
