/**
 * The rules of `dynastate audit` for one key, on its stored events' clear attributes (decryption is checked apart):
 * what kinds of findings there are, and what a key's live range, history copies and grave, and a checkpoint's mark
 * of it, must agree on. Pure: `Audit` reads the table and applies them.
 */
import type { StoredEvent } from "../../infra/EventTable.ts"
import * as AuditItems from "../../infra/ops/AuditItems.ts"

/** What a finding is about. */
export type FindingKind =
  /** An event (live, history copy or grave) does not decrypt or authenticate under its binding. */
  | "undecryptable"
  /** A tombstone carries no authentication: forged by hand, or written by a dynastate before 0.2. */
  | "unauthenticated"
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
export const informational: ReadonlySet<FindingKind> = new Set(["shredded"])

/** One thing the audit found wrong (or, for `shredded`, worth knowing). */
export interface Finding {
  readonly kind: FindingKind
  readonly key: string
  /** The seq concerned, when there is one. */
  readonly seq: number | undefined
  readonly detail: string
}

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
export const readsAs = (events: KeyEvents): StoredEvent | undefined => events.live[0] ?? events.grave

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
