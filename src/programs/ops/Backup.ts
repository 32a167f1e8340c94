/**
 * `dynastate backup`: a portable export of one store's event log — live events, the history area, graves and the
 * wrapped data keys — into a backup file (see `BackupFile`). Values stay encrypted as stored, and data keys stay
 * wrapped by the keyring, so the file is as safe as the table: restoring it needs the same keyring. View and
 * lease tables are not exported; the worker rebuilds them from the event log.
 *
 * The export is not a snapshot: it reads the namespace partition by partition while the store may run (see
 * `BackupItems.roles` for why nothing is lost). For a point-in-time copy of a busy table, use DynamoDB's
 * point-in-time recovery (`provision --point-in-time-recovery`) and back up the restored table.
 */
import { Clock, Effect, Stream } from "effect"
import * as fs from "node:fs"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import type { ConfigInvalid } from "../../infra/config/ConfigInvalid.ts"
import type { Dynamo } from "../../infra/Dynamo.ts"
import * as LayoutRecord from "../../infra/LayoutRecord.ts"
import * as BackupItems from "../../infra/ops/BackupItems.ts"
import * as BackupFile from "./BackupFile.ts"
import type { BackupFileError, Counts, Header } from "./BackupFile.ts"
import { locationOf } from "./Target.ts"
import type { Target } from "./Target.ts"

/** What `backup` wrote; plain data, so `JSON.stringify` gives the `-o json` output. */
export interface BackupReport {
  readonly path: string
  readonly bytes: number
  readonly header: Header
}

/** Exports the target's namespace into a backup file at `path` (replacing one there only once complete). */
export const backup = Effect.fn("Backup.backup")(function*(
  target: Target,
  path: string
): Effect.fn.Return<BackupReport, BackupFileError | ConfigInvalid | Throttled | StorageFailure, Dynamo> {
  const configured = locationOf(target)
  // The namespace's record decides where its keys are: while a migration is under way, at the old layout's places
  // or the new one's (see `BackupItems.read`), whatever layout the target was given.
  const recorded = yield* LayoutRecord.readState(configured)
  const location = { ...configured, partitions: recorded?.to ?? recorded?.layout ?? configured.partitions }
  const from = recorded?.to === undefined ? undefined : recorded.layout
  const now = yield* Clock.currentTimeMillis
  const body = Stream.fromIterable(BackupItems.roles).pipe(
    Stream.flatMap((role) =>
      BackupItems.read(location, role, from).pipe(
        Stream.map((item) => ({ role, line: JSON.stringify({ role, item: BackupItems.toJson(item) }) }))
      )
    )
  )
  const header = yield* BackupFile.write(path, body, (counts: Counts, sha256: string) => ({
    format: BackupFile.formatName,
    version: BackupFile.formatVersion,
    storeId: target.storeId,
    table: target.table,
    namespace: target.namespace,
    createdAt: new Date(now).toISOString(),
    counts,
    sha256
  }))
  return { path, bytes: fs.statSync(path).size, header }
})

/** The report as text. */
export const render = (report: BackupReport): string => {
  const { counts } = report.header
  return [
    `backed up ${report.header.table} namespace ${report.header.namespace} (store id ${report.header.storeId}) ` +
    `to ${report.path}`,
    `  ${counts.event} live events, ${counts.history} history events, ${counts.grave} graves, ` +
    `${counts.chunk} chunks of large values, ${counts["data-key"]} data keys; ${report.bytes} bytes, ` +
    `sha256 ${report.header.sha256}`,
    "  values are still encrypted: restoring needs the same keyring"
  ].join("\n")
}
