/**
 * `AuditFindings.judgeKey`, the per-key rules of the audit, on hand-made stored events: what compaction and retention
 * legitimately leave (holes below the oldest kept event, a grave under a re-created key, copies past their
 * retention) is clean; holes, a newest event only in history, a live range under its grave and two different
 * events under one seq are each found with their seq.
 */
import { describe, expect, it } from "vitest"
import type { EventOp } from "../../src/domain/Event.ts"
import { Attr } from "../../src/infra/EventRecord.ts"
import type { StoredEvent, StoredItem } from "../../src/infra/EventRecord.ts"
import { judgeKey } from "../../src/programs/ops/AuditFindings.ts"

const now = 1_000_000
const event = (
  seq: number,
  options: { op?: EventOp; revision?: string; retainedUntil?: number } = {}
): StoredEvent => ({
  key: "/k",
  seq,
  op: options.op ?? "put",
  expires: undefined,
  timestamp: seq,
  retainedUntil: options.retainedUntil,
  item: { [Attr.revision]: { S: options.revision ?? `rev-${seq}` } } as StoredItem
})
const newestFirst = (...seqs: ReadonlyArray<number>) => seqs.map((seq) => event(seq)).sort((a, b) => b.seq - a.seq)
const judged = (live: ReadonlyArray<StoredEvent>, history: ReadonlyArray<StoredEvent>, grave?: StoredEvent) =>
  judgeKey({ key: "/k", live, history, grave }, now).map((finding) => `${finding.kind}@${finding.seq}`)

describe("AuditFindings.judgeKey", () => {
  it("accepts what compaction and retention leave", () => {
    expect(judged(newestFirst(3), newestFirst(1, 2))).toEqual([])
    // Retention removed the oldest; an overlap of live and history (mid-compaction) is the same event twice.
    expect(judged(newestFirst(4, 5), newestFirst(3, 4))).toEqual([])
    // Deleted and buried, history kept (with the tombstone's copy) or not.
    expect(judged([], newestFirst(1, 2), event(2, { op: "delete" }))).toEqual([])
    expect(judged([], [], event(7, { op: "delete" }))).toEqual([])
    // Re-created after its burial and compacted keeping no history: the grave stays far below.
    expect(judged(newestFirst(9), [], event(2, { op: "delete" }))).toEqual([])
    // A copy past its retention may be gone any time, in no order: it counts neither way (here 2 went, 1 not yet).
    expect(judged(newestFirst(5), [event(4), event(3), event(1, { retainedUntil: now - 1 })])).toEqual([])
  })

  it("finds holes between kept events, each with the first missing seq", () => {
    expect(judged(newestFirst(1, 3, 7), [])).toEqual(["hole@2", "hole@4"])
    expect(
      judgeKey({ key: "/k", live: newestFirst(7), history: newestFirst(1, 4), grave: undefined }, now)
        .map((finding) => finding.detail)
    ).toEqual([
      "seqs 2..3 are missing between 1 and 4",
      "seqs 5..6 are missing between 4 and 7"
    ])
    // A grave that is the key's newest event is part of the sequence.
    expect(judged([], newestFirst(1), event(3, { op: "delete" }))).toEqual(["hole@2"])
  })

  it("finds a newest event only in history, and a live range older than its grave", () => {
    expect(judged([], newestFirst(1, 2))).toEqual(["newest-removed@2"])
    expect(judged(newestFirst(1), newestFirst(2))).toEqual(["newest-removed@2"])
    expect(judged(newestFirst(1), newestFirst(1, 2), event(2, { op: "delete" }))).toEqual(["undeleted@1"])
  })

  it("finds two different events under one seq: live against history, the grave against either", () => {
    expect(judged([event(2, { revision: "a" })], [event(2, { revision: "b" }), event(1)])).toEqual([
      "copies-differ@2"
    ])
    expect(judged([], [event(2, { revision: "a", op: "delete" }), event(1)], event(2, { op: "delete", revision: "b" })))
      .toEqual(["copies-differ@2"])
  })
})
