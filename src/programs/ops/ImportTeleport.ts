/**
 * `dynastate import-teleport`: copies the items of a table of Teleport's own DynamoDB backend into the store, each
 * as a `put` with its expiry, so they become events (encrypted, with history and watches) like any write.
 *
 * - Items already expired are skipped; so are items that cannot become store items (no value, a key the store
 *   refuses, a value too large once encrypted), each named in the report with the reason.
 * - An item whose key already holds the same value and expiry is left alone, so running the import again (or
 *   resuming it) appends nothing twice.
 * - It reads the source in `FullPath` order and reports after each page how far it got (`last`): pass that as
 *   `after` to resume an import that stopped.
 *
 * Teleport's revisions are not kept: each imported item gets a new store revision.
 */
import { Clock, Effect, Stream } from "effect"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import { sameBytes } from "../../domain/Item.ts"
import type { Item } from "../../domain/Item.ts"
import type { Dynamo } from "../../infra/Dynamo.ts"
import * as TeleportTable from "../../infra/ops/TeleportTable.ts"
import type { TeleportRecord } from "../../infra/ops/TeleportTable.ts"
import { Store } from "../store/Store.ts"
import type { ReadFailure, WriteFailure } from "../store/Store.ts"

/** Where to import from. */
export interface ImportOptions<E = never> {
  /** The Teleport table. */
  readonly source: string
  /** Teleport's partition (`HashKey`), "teleport" unless changed. */
  readonly hashKey?: string | undefined
  /** The prefix before each key in `FullPath`, "teleport" unless changed; "" keeps paths as they are. */
  readonly keyPrefix?: string | undefined
  /** Resume after this `FullPath` (the `last` of an earlier report). */
  readonly after?: string | undefined
  /** Items per page read from the source. */
  readonly pageSize?: number | undefined
  /** Called after each page; its failure stops the import (resume it with `after`). */
  readonly progress?: ((progress: ImportProgress) => Effect.Effect<void, E>) | undefined
}

/** Counts so far. */
export interface ImportProgress {
  readonly scanned: number
  readonly imported: number
  /** Already in the store with the same value and expiry. */
  readonly unchanged: number
  readonly expired: number
  readonly skipped: number
  /** The last `FullPath` done: resume after it. */
  readonly last: string | undefined
}

/** What `import-teleport` did; plain data, so `JSON.stringify` gives the `-o json` output. */
export interface ImportReport extends ImportProgress {
  readonly source: string
  /** Items that could not be imported, with why (their values are never shown). */
  readonly skippedItems: ReadonlyArray<{ readonly fullPath: string; readonly reason: string }>
}

/** The store key of a Teleport path, or why it has none. */
export const keyOf = (fullPath: string, prefix: string): string | { readonly problem: string } =>
  fullPath.startsWith(prefix) && fullPath.length > prefix.length
    ? fullPath.slice(prefix.length)
    : { problem: `FullPath does not start with the key prefix "${prefix}"` }

/** Imports the Teleport table into the store (see the module's description). */
export const importTeleport = Effect.fn("ImportTeleport.importTeleport")(function*<E = never>(
  options: ImportOptions<E>
): Effect.fn.Return<
  ImportReport,
  | Exclude<WriteFailure | ReadFailure, { readonly _tag: "BadParameter" | "ValueTooLarge" }>
  | Throttled
  | StorageFailure
  | E,
  Store | Dynamo
> {
  const store = yield* Store
  const prefix = options.keyPrefix ?? TeleportTable.defaultHashKey
  const counts = { scanned: 0, imported: 0, unchanged: 0, expired: 0, skipped: 0 }
  const skippedItems: Array<{ readonly fullPath: string; readonly reason: string }> = []
  let last = options.after
  const skip = (fullPath: string, reason: string) =>
    Effect.sync(() => {
      counts.skipped++
      skippedItems.push({ fullPath, reason })
    })

  const importOne = (record: TeleportRecord, now: number) =>
    Effect.gen(function*() {
      counts.scanned++
      if (record.problem !== undefined) return yield* skip(record.fullPath, record.problem)
      if (record.expires !== undefined && record.expires <= now) {
        counts.expired++
        return
      }
      const key = keyOf(record.fullPath, prefix)
      if (typeof key !== "string") return yield* skip(record.fullPath, key.problem)
      const current = yield* store.get(key).pipe(
        Effect.map((item): Item | undefined => item),
        Effect.catchTag("NotFound", () => Effect.succeed(undefined))
      )
      if (current !== undefined && sameBytes(current.value, record.value) && current.expires === record.expires) {
        counts.unchanged++
        return
      }
      yield* store.put({ key, value: record.value, expires: record.expires })
      counts.imported++
    }).pipe(
      Effect.catchTags({
        BadParameter: (error) => skip(record.fullPath, `the store refuses the key: ${error.message}`),
        ValueTooLarge: (error) => skip(record.fullPath, error.message)
      })
    )

  yield* TeleportTable.pages({
    table: options.source,
    hashKey: options.hashKey ?? TeleportTable.defaultHashKey,
    after: options.after,
    pageSize: options.pageSize
  }).pipe(
    Stream.runForEach((page) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        for (const record of page.records) yield* importOne(record, now)
        if (page.last !== undefined) last = page.last
        if (options.progress !== undefined) yield* options.progress({ ...counts, last })
      })
    )
  )
  return { source: options.source, ...counts, last, skippedItems }
})

/** The report as text. */
export const render = (report: ImportReport): string =>
  [
    `imported ${report.imported} of ${report.scanned} items from ${report.source}: ${report.unchanged} already there, ` +
    `${report.expired} expired, ${report.skipped} skipped`,
    ...report.skippedItems.map((item) => `  skipped ${item.fullPath}: ${item.reason}`),
    ...(report.last === undefined ? [] : [`  last path done: ${report.last} (resume after it with --after)`])
  ].join("\n")

/** The progress as one line, for a terminal's status line. */
export const renderProgress = (progress: ImportProgress): string =>
  `${progress.scanned} scanned, ${progress.imported} imported, ${progress.unchanged} unchanged, ` +
  `${progress.expired} expired, ${progress.skipped} skipped; at ${progress.last ?? "the start"}`
