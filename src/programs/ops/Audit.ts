/**
 * `dynastate audit`: verifies a whole namespace the way only a reader of everything can. It walks the live range,
 * the history area and the graves together in key order, one key at a time (memory is bounded by one key's events,
 * plus one small entry per key when a checkpoint is read or written), and reports per key and seq:
 *
 * - events that fail to decrypt under their binding (an edited or swapped item); shredded values are listed apart,
 *   as shredded, not as tampering;
 * - holes in a key's dense seqs: compaction and retention only ever remove a key's oldest events, so what is kept
 *   (live range, history copies still within retention, and the grave when it is the newest) is contiguous;
 * - a key whose newest stored event is only in history (its newer live events, or its grave, were removed), and a
 *   live range older than the key's grave (the tombstone removed, or an old event put back: the key is undeleted);
 * - two copies of one seq that are different events (live range against history, grave against either);
 * - against a signed checkpoint (see `Checkpoint`): every key that now reads older than it did, or not at all.
 *
 * The walk reads each partition's pages at moments of its own, so a key compacted while the walk passed it can look
 * broken there; a key that looks broken is read again on its own, in the order compaction never hides an event
 * from, and judged on that read. What a key does after its second read (the store keeps running) is the next
 * audit's to judge.
 */
import { Clock, Effect, Option, Result, Stream } from "effect"
import type { DecryptionFailed, Shredded, StorageFailure, TableError } from "../../domain/Errors.ts"
import * as Key from "../../domain/Key.ts"
import * as LayoutTransition from "../../domain/LayoutTransition.ts"
import type { Transition } from "../../domain/LayoutTransition.ts"
import * as SortKey from "../../domain/SortKey.ts"
import { DataKeys } from "../../infra/crypto/DataKeys.ts"
import type { KeyringError } from "../../infra/crypto/Keyring.ts"
import type { Dynamo } from "../../infra/Dynamo.ts"
import { isUnauthenticatedTombstone } from "../../infra/EventRecord.ts"
import type { EventTable, StoredEvent } from "../../infra/EventTable.ts"
import * as AuditItems from "../../infra/ops/AuditItems.ts"
import * as Cursor from "../collections/Cursor.ts"
import { LayoutMigration } from "../store/LayoutMigration.ts"
import * as MigratingTable from "../store/MigratingTable.ts"
import { MovedKeys } from "../store/SealedFallback.ts"
import { againstCheckpoint, informational, judgeKey, readsAs } from "./AuditFindings.ts"
import type { Finding, FindingKind, KeyEvents } from "./AuditFindings.ts"
import * as Checkpoint from "./Checkpoint.ts"

export type { Finding, FindingKind, KeyEvents } from "./AuditFindings.ts"

/** What an audit found. */
export interface AuditReport {
  readonly table: string
  readonly namespace: string
  /** Keys with any stored event (live, history or grave). */
  readonly keys: number
  /** Events of the live range. */
  readonly events: number
  readonly historyCopies: number
  readonly graves: number
  /** The checkpoint compared against, if any. */
  readonly checkpoint: { readonly path: string; readonly takenAt: string; readonly keys: number } | undefined
  /** The checkpoint written, if any. */
  readonly checkpointOut: { readonly path: string; readonly keys: number } | undefined
  /** The findings, at most {@link maxListedFindings}; `counts` has them all. */
  readonly findings: ReadonlyArray<Finding>
  readonly counts: Readonly<Partial<Record<FindingKind, number>>>
  /** Findings that are evidence of tampering (everything but `shredded`). */
  readonly tampering: number
  readonly ok: boolean
}

/** Findings listed in a report (all are counted). */
export const maxListedFindings = 10_000

/** Options of an audit. */
export interface AuditOptions {
  /** A checkpoint file to verify and compare against. */
  readonly checkpoint?: string | undefined
  /** Where to write a signed checkpoint of every key's newest event as found. */
  readonly checkpointOut?: string | undefined
  /**
   * Whether a checkpointed key the table no longer holds was moved elsewhere with its events (a clear key sealed in
   * place: see `SealedFallback.MovedKeys`), rather than rolled back. Absent: every such key is a rollback.
   */
  readonly movedAway?: ((key: string, seq: number) => Effect.Effect<boolean, { readonly _tag: string }>) | undefined
  /**
   * The layout change under way (`LayoutMigration.transition`), when the table audited is the one a store serves
   * through while it moves keys (`LayoutMigration.table`, which reads live events and history at both layouts): the
   * graves are read at both layouts too, each key's once. Absent: the table's own layout alone.
   */
  readonly transition?: Transition | undefined
}

/** What stops an audit before it can judge (the table cannot be read, the keyring fails, a bad checkpoint). */
export type AuditError =
  | TableError
  | KeyringError
  | Checkpoint.CheckpointInvalid
  | Checkpoint.CheckpointWriteFailed

/** Decrypts one stored event; a finding if it does not decrypt or was shredded, failing only when it cannot judge. */
const checkDecrypts = (table: EventTable["Service"], where: string) => (stored: StoredEvent) =>
  table.decode(stored).pipe(
    Effect.map(() =>
      isUnauthenticatedTombstone(stored.item)
        ? Option.some<Finding>({
          kind: "unauthenticated",
          key: stored.key,
          seq: stored.seq,
          detail: `the ${where} is a ${stored.op} event without authentication: forged, or written before 0.2`
        })
        : Option.none<Finding>()
    ),
    Effect.catchTags({
      DecryptionFailed: (error: DecryptionFailed) =>
        Effect.succeed(Option.some<Finding>({
          kind: "undecryptable",
          key: stored.key,
          seq: stored.seq,
          detail: `the ${where} does not decrypt under its binding: ${error.reason}`
        })),
      Shredded: (error: Shredded) =>
        Effect.succeed(Option.some<Finding>({
          kind: "shredded",
          key: stored.key,
          seq: stored.seq,
          detail: `the ${where}'s value was shredded (scope "${error.scope}")`
        })),
      // A structurally broken event item is as much an edit as a changed value; other storage failures are not ours.
      StorageFailure: (error: StorageFailure) =>
        error.operation === "decode event"
          ? Effect.succeed(Option.some<Finding>({
            kind: "undecryptable",
            key: stored.key,
            seq: stored.seq,
            detail: `the ${where} is malformed: ${error.reason}`
          }))
          : Effect.fail(error)
    })
  )

/** A key's events from one partition; for a grave that holds no tombstone of its key, why (and no event). */
type Group = readonly [key: string, events: ReadonlyArray<StoredEvent>, problem?: string]

const byKey = <E>(stream: Stream.Stream<StoredEvent, E>): Stream.Stream<Group, E> =>
  Stream.groupAdjacentBy(stream, (stored) => stored.key)

/** Audits the namespace of `table`; see the module's documentation. */
export const audit = Effect.fn("Audit.audit")(function*(
  table: EventTable["Service"],
  dataKeys: DataKeys["Service"],
  options: AuditOptions = {}
): Effect.fn.Return<AuditReport, AuditError, Dynamo> {
  const location = table.location
  // The checkpoint is verified before anything is read: a refused one stops the audit.
  const checkpoint = options.checkpoint === undefined ? undefined : {
    path: options.checkpoint,
    file: yield* Checkpoint.read({ path: options.checkpoint, location, dataKeys })
  }
  const expected = new Map(checkpoint?.file.keys.map(([key, seq, revision]) => [key, { seq, revision }]))
  const highWater: Array<Checkpoint.Entry> = []
  const findings: Array<Finding> = []
  const counts: Partial<Record<FindingKind, number>> = {}
  const note = (finding: Finding) => {
    counts[finding.kind] = (counts[finding.kind] ?? 0) + 1
    if (findings.length < maxListedFindings) findings.push(finding)
  }
  const totals = { keys: 0, events: 0, historyCopies: 0, graves: 0 }
  const now = yield* Clock.currentTimeMillis
  const transition = options.transition
  // While keys move, the old layout's graves a window ahead of the new one's, as the store reads them.
  const gravesOf = (key?: string) => {
    const range = AuditItems.graveRange(key)
    return transition === undefined || !LayoutTransition.touches(transition, range.lower, range.upper)
      ? AuditItems.graves(location, range)
      : MigratingTable.windowed(
        (lower, upper) => AuditItems.graves({ ...location, partitions: transition.from }, { lower, upper }),
        (lower, upper) => AuditItems.graves(location, { lower, upper }),
        { ...range, descending: false },
        (grave) => SortKey.keyPrefix(grave.key)
      )
  }

  const judge = (events: KeyEvents): ReadonlyArray<Finding> => {
    const mark = expected.get(events.key)
    const moved = mark === undefined ? undefined : againstCheckpoint(events, mark)
    return moved === undefined ? judgeKey(events, now) : [...judgeKey(events, now), moved]
  }
  // One key read again, in the order compaction never hides an event from (it copies to history before it
  // removes from the live range, and buries a tombstone in one transaction): the walk reads each partition's
  // pages at its own moments, so a key compacted while the walk passed it can look broken there and only there.
  const reread = (key: string) =>
    Effect.gen(function*() {
      const live = yield* Stream.runCollect(AuditItems.live(table, key))
      const history = yield* Stream.runCollect(AuditItems.history(table, key))
      const [grave] = yield* Stream.runCollect(gravesOf(key))
      return {
        key,
        live: [...live],
        history: [...history],
        grave: grave !== undefined && Result.isSuccess(grave.tombstone) ? grave.tombstone.success : undefined
      } satisfies KeyEvents
    })
  /** Notes what is wrong with a key, confirmed by a second read, and records its high-water mark. */
  const settle = (first: KeyEvents) =>
    Effect.gen(function*() {
      let events = first
      let judged = judge(events)
      if (judged.length > 0) {
        events = yield* reread(events.key)
        judged = judge(events)
      }
      for (const finding of judged) note(finding)
      expected.delete(events.key)
      const newest = readsAs(events)
      if (newest !== undefined) highWater.push([events.key, newest.seq, AuditItems.revisionOf(newest) ?? null])
    })

  yield* Effect.scoped(Effect.gen(function*() {
    const live = yield* Cursor.make(byKey(AuditItems.live(table)))
    const history = yield* Cursor.make(byKey(AuditItems.history(table)))
    // A grave holding no tombstone of its key is an empty group with its problem: reported, the key judged as
    // having no grave.
    const graves = yield* Cursor.make(
      gravesOf().pipe(
        Stream.map((grave): Group =>
          Result.isSuccess(grave.tombstone)
            ? [grave.key, [grave.tombstone.success]]
            : [grave.key, [], grave.tombstone.failure]
        )
      )
    )
    while (true) {
      const heads = [yield* live.peek, yield* history.peek, yield* graves.peek]
      const keys = heads.flatMap((head) => (head === undefined ? [] : [head[0]]))
      if (keys.length === 0) break
      const key = keys.reduce((lowest, other) => (Key.compare(other, lowest) < 0 ? other : lowest))
      const take = (source: Cursor.Cursor<Group, TableError>, head: Group | undefined) =>
        head !== undefined && head[0] === key ? Effect.as(source.take, head) : Effect.succeed(undefined)
      const graveGroup = yield* take(graves, heads[2])
      if (graveGroup?.[2] !== undefined) note({ kind: "corrupt-grave", key, seq: undefined, detail: graveGroup[2] })
      const events: KeyEvents = {
        key,
        live: (yield* take(live, heads[0]))?.[1] ?? [],
        history: (yield* take(history, heads[1]))?.[1] ?? [],
        grave: graveGroup?.[1][0]
      }
      totals.keys++
      totals.events += events.live.length
      totals.historyCopies += events.history.length
      if (events.grave !== undefined) totals.graves++
      const undecryptable = yield* Effect.forEach(
        [
          ...events.live.map(checkDecrypts(table, "live event")),
          ...events.history.map(checkDecrypts(table, "history copy")),
          ...(events.grave === undefined ? [] : [checkDecrypts(table, "grave")(events.grave)])
        ],
        (check) => check,
        { concurrency: 8 }
      )
      for (const finding of undecryptable) if (Option.isSome(finding)) note(finding.value)
      yield* settle(events)
    }
  }))
  // Keys of the checkpoint the walk never met: gone, unless they were being buried as it passed, or moved with their
  // events to where the store now keeps them (its sealed form holds the checkpointed seq or a later one).
  for (const [key, mark] of [...expected.entries()]) {
    const movedAway = options.movedAway === undefined
      ? false
      : yield* Effect.orElseSucceed(options.movedAway(key, mark.seq), () => false)
    if (movedAway) expected.delete(key)
    else yield* settle(yield* reread(key))
  }
  highWater.sort(([a], [b]) => Key.compare(a, b))

  const checkpointOut = options.checkpointOut === undefined ? undefined : {
    path: options.checkpointOut,
    file: yield* Checkpoint.write({
      path: options.checkpointOut,
      location,
      dataKeys,
      keys: highWater,
      takenAt: new Date(now).toISOString()
    })
  }
  const tampering = Object.entries(counts).reduce(
    (sum, [kind, count]) => (informational.has(kind as FindingKind) ? sum : sum + count),
    0
  )
  return {
    table: location.table,
    namespace: location.namespace,
    ...totals,
    checkpoint: checkpoint &&
      { path: checkpoint.path, takenAt: checkpoint.file.takenAt, keys: checkpoint.file.keys.length },
    checkpointOut: checkpointOut && { path: checkpointOut.path, keys: checkpointOut.file.keys.length },
    findings,
    counts,
    tampering,
    ok: tampering === 0
  }
})

/**
 * Audits the namespace of the store in context, as `dynastate audit` does: through the table the store serves
 * through, so while a layout migration is under way every key is read where the store reads it (see
 * `LayoutMigration`), and keys moved away with their events since the checkpoint (sealed in place, or to a new
 * partition: see `SealedFallback.MovedKeys`) are not taken for rollbacks.
 */
export const ofStore = Effect.fn("Audit.ofStore")(function*(
  options: Omit<AuditOptions, "movedAway" | "transition"> = {}
): Effect.fn.Return<AuditReport, AuditError, DataKeys | MovedKeys | LayoutMigration | Dynamo> {
  const layout = yield* LayoutMigration
  return yield* audit(layout.table, yield* DataKeys, {
    ...options,
    movedAway: (yield* MovedKeys).movedAway,
    transition: layout.transition
  })
})

/** A report as text: the summary, then one line per finding. */
export const render = (report: AuditReport): string => {
  const lines = [
    `audit of ${report.table} namespace ${report.namespace}: ${report.keys} keys, ${report.events} live events, ` +
    `${report.historyCopies} history copies, ${report.graves} graves`
  ]
  if (report.checkpoint !== undefined) {
    lines.push(
      `checkpoint ${report.checkpoint.path} (taken ${report.checkpoint.takenAt}, ${report.checkpoint.keys} keys): ` +
        "signature verified"
    )
  }
  for (const finding of report.findings) {
    lines.push(
      `${informational.has(finding.kind) ? "NOTE" : "FAIL"} ${finding.kind.padEnd(14)} ${JSON.stringify(finding.key)}` +
        `${finding.seq === undefined ? "" : ` @${finding.seq}`}: ${finding.detail}`
    )
  }
  const total = Object.values(report.counts).reduce((sum, count) => sum + count, 0)
  if (total > report.findings.length) lines.push(`… ${total - report.findings.length} more findings not listed`)
  if (report.checkpointOut !== undefined) {
    lines.push(`wrote signed checkpoint ${report.checkpointOut.path} (${report.checkpointOut.keys} keys)`)
  }
  lines.push(
    report.ok
      ? "no tampering found"
      : `${report.tampering} finding${report.tampering === 1 ? "" : "s"} of tampering: ` +
        Object.entries(report.counts).filter(([kind]) => !informational.has(kind as FindingKind))
          .map(([kind, count]) => `${kind} ${count}`).join(", ")
  )
  return lines.join("\n")
}
