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
import type { DecryptionFailed, Shredded, StorageFailure, Throttled } from "../../domain/Errors.ts"
import * as Key from "../../domain/Key.ts"
import type { DataKeys } from "../../infra/crypto/DataKeys.ts"
import type { KeyringError } from "../../infra/crypto/Keyring.ts"
import type { Dynamo } from "../../infra/Dynamo.ts"
import type { EventTable, StoredEvent } from "../../infra/EventTable.ts"
import * as AuditItems from "../../infra/ops/AuditItems.ts"
import * as Cursor from "../collections/Cursor.ts"
import * as Checkpoint from "./Checkpoint.ts"

/** What a finding is about. */
export type FindingKind =
  /** An event (live, history copy or grave) does not decrypt or authenticate under its binding. */
  | "undecryptable"
  /** An event's value was shredded: unreadable on purpose, not tampering. */
  | "shredded"
  /** Seqs are missing between two kept events of a key. */
  | "hole"
  /** The key's newest stored event is a history copy: its live events (or its grave) after it were removed. */
  | "newest-removed"
  /** The key's live range is older than its grave: the tombstone was removed or an old event put back. */
  | "undeleted"
  /** A key's grave holds no tombstone of its key (edited into another op, or moved from another key's grave). */
  | "corrupt-grave"
  /** Two copies of one seq (live range, history area, grave) are different events. */
  | "copies-differ"
  /** The key reads older than the checkpoint recorded. */
  | "rolled-back"
  /** The key had events at the checkpoint and reads as never written now. */
  | "disappeared"
  /** The key's newest event has the checkpoint's seq but another revision. */
  | "replaced"

/** The kinds that are not evidence of tampering. */
const informational: ReadonlySet<FindingKind> = new Set(["shredded"])

/** One thing the audit found wrong (or, for `shredded`, worth knowing). */
export interface Finding {
  readonly kind: FindingKind
  readonly key: string
  /** The seq concerned, when there is one. */
  readonly seq: number | undefined
  readonly detail: string
}

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
}

/** What stops an audit before it can judge (the table cannot be read, the keyring fails, a bad checkpoint). */
export type AuditError =
  | Throttled
  | StorageFailure
  | KeyringError
  | Checkpoint.CheckpointInvalid
  | Checkpoint.CheckpointWriteFailed
  | Effect.Error<ReturnType<DataKeys["Service"]["named"]>>

/** One key's stored events as the audit reads them. */
export interface KeyEvents {
  readonly key: string
  /** Newest first. */
  readonly live: ReadonlyArray<StoredEvent>
  /** Newest first. */
  readonly history: ReadonlyArray<StoredEvent>
  readonly grave: StoredEvent | undefined
}

/** A key's newest event as the store reads it: the live range's newest, else the grave's tombstone. */
const readsAs = (events: KeyEvents): StoredEvent | undefined => events.live[0] ?? events.grave

/**
 * What is wrong with one key's seqs and copies, judged from clear attributes (decryption is checked apart).
 * `now` decides which history copies are past their retention (DynamoDB's TTL deletes those late and in no order).
 */
export const judgeKey = (events: KeyEvents, now: number): ReadonlyArray<Finding> => {
  const { grave, key } = events
  const findings: Array<Finding> = []
  const found = (kind: FindingKind, seq: number | undefined, detail: string) =>
    findings.push({ kind, key, seq, detail })
  const liveBySeq = new Map(events.live.map((stored) => [stored.seq, stored]))
  const historyBySeq = new Map(events.history.map((stored) => [stored.seq, stored]))

  for (const [seq, copy] of historyBySeq) {
    const live = liveBySeq.get(seq)
    if (live !== undefined && AuditItems.revisionOf(live) !== AuditItems.revisionOf(copy)) {
      found("copies-differ", seq, `the live event and its history copy at seq ${seq} are different events`)
    }
  }
  if (grave !== undefined) {
    for (
      const [where, copy] of [["live event", liveBySeq.get(grave.seq)], [
        "history copy",
        historyBySeq.get(grave.seq)
      ]] as const
    ) {
      if (copy !== undefined && AuditItems.revisionOf(copy) !== AuditItems.revisionOf(grave)) {
        found("copies-differ", grave.seq, `the grave and the ${where} at seq ${grave.seq} are different events`)
      }
    }
  }

  const newestLive = events.live[0]?.seq
  if (grave !== undefined && newestLive !== undefined && newestLive < grave.seq) {
    found(
      "undeleted",
      newestLive,
      `the key reads as its live event ${newestLive}, older than its buried tombstone ${grave.seq}: ` +
        "the tombstone was removed or an old event put back"
    )
  }
  const current = readsAs(events)?.seq
  const newestCopy = events.history[0]?.seq
  // Newer than the live range and the grave both: a history copy is only ever made of a superseded event.
  if (newestCopy !== undefined && newestCopy > Math.max(newestLive ?? 0, grave?.seq ?? 0)) {
    found(
      "newest-removed",
      newestCopy,
      `the newest stored event (seq ${newestCopy}) is only in history; the key reads as ` +
        (current === undefined ? "never written" : `its event ${current}`)
    )
  }

  // Kept events: compaction and retention remove only the oldest, so these are contiguous. The grave stays after
  // the key is re-created and its events compacted away, so it counts only as the newest.
  const kept = new Set<number>(events.live.map((stored) => stored.seq))
  for (const copy of events.history) {
    if (copy.retainedUntil === undefined || copy.retainedUntil > now) kept.add(copy.seq)
  }
  const highest = Math.max(0, ...kept)
  if (grave !== undefined && grave.seq > highest) kept.add(grave.seq)
  const seqs = [...kept].sort((a, b) => a - b)
  for (let index = 1; index < seqs.length; index++) {
    const after = seqs[index - 1]!
    const before = seqs[index]!
    if (before !== after + 1) {
      found(
        "hole",
        after + 1,
        before === after + 2
          ? `seq ${after + 1} is missing between ${after} and ${before}`
          : `seqs ${after + 1}..${before - 1} are missing between ${after} and ${before}`
      )
    }
  }
  return findings
}

/** What a checkpoint's mark of a key says about its events now: rolled back, disappeared, replaced, or nothing. */
export const againstCheckpoint = (
  events: KeyEvents,
  mark: { readonly seq: number; readonly revision: string | null }
): Finding | undefined => {
  const newest = readsAs(events)
  const finding = (kind: FindingKind, detail: string): Finding => ({ kind, key: events.key, seq: mark.seq, detail })
  if (newest === undefined) {
    return finding("disappeared", `the checkpoint has seq ${mark.seq}; the key now reads as never written`)
  }
  if (newest.seq < mark.seq) {
    return finding(
      "rolled-back",
      `the checkpoint has seq ${mark.seq}; the key now reads as its older event ${newest.seq}`
    )
  }
  if (newest.seq === mark.seq && mark.revision !== null && AuditItems.revisionOf(newest) !== mark.revision) {
    return finding("replaced", `the checkpoint's event ${mark.seq} was replaced by another event with the same seq`)
  }
  return undefined
}

/** Decrypts one stored event; a finding if it does not decrypt or was shredded, failing only when it cannot judge. */
const checkDecrypts = (table: EventTable["Service"], where: string) => (stored: StoredEvent) =>
  table.decode(stored).pipe(
    Effect.as(Option.none<Finding>()),
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
      const [grave] = yield* Stream.runCollect(AuditItems.graves(table, key))
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
      AuditItems.graves(table).pipe(
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
      const take = (source: Cursor.Cursor<Group, Throttled | StorageFailure>, head: Group | undefined) =>
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
  // Keys of the checkpoint the walk never met: gone, unless they were being buried as it passed.
  for (const key of [...expected.keys()]) yield* settle(yield* reread(key))
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
