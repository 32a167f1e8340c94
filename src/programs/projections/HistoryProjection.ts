/**
 * Compaction: moves each key's superseded events out of the live range into
 * the history area, oldest first and never the newest, so reads of current
 * state stay one short query however long a key's history grows. A deleted
 * key's tombstone leaves last, for the key's grave, once all its older events
 * are gone: at no moment can an older value show through, so a deleted key
 * never comes back, and the grave keeps its seq numbering going.
 */
import { Clock, Effect, Stream } from "effect"
import type { Event } from "../../domain/Event.ts"
import { carriesValue } from "../../domain/Event.ts"
import { HistoryArea } from "../../infra/HistoryArea.ts"
import * as Projection from "../Projection.ts"

import type { Retention } from "../../domain/Retention.ts"

export type { Retention } from "../../domain/Retention.ts"

/**
 * Compacts `key` as of its event `seq`: the events before it move into the
 * history area (or are dropped, with retention "None"), and the event itself
 * is buried when it is a tombstone (`tombstone` says so, read from the event).
 */
export const compactKey = (key: string, seq: number, retention: Retention, tombstone: boolean) =>
  Effect.gen(function*() {
    const area = yield* HistoryArea
    const expiresAt = Effect.map(
      Clock.currentTimeMillis,
      (now) => (retention._tag === "For" ? Math.ceil((now + retention.millis) / 1000) : undefined)
    )
    yield* area.upTo(key, seq).pipe(
      Stream.runForEach((stored) =>
        Effect.gen(function*() {
          if (stored.seq === seq) {
            if (tombstone) yield* area.bury(stored, retention._tag === "None" ? undefined : { expiresAt: yield* expiresAt })
            return
          }
          if (retention._tag !== "None") yield* area.archive(stored, yield* expiresAt)
          yield* area.removeLive(stored)
        })
      )
    )
  })

/** The compaction projection. */
export const make = (retention: Retention = { _tag: "Forever" }) =>
  Effect.gen(function*() {
    const area = yield* HistoryArea
    return Projection.make({
      name: "history",
      prefixes: [],
      apply: (event: Event) =>
        compactKey(event.key, event.seq, retention, !carriesValue(event)).pipe(Effect.provideService(HistoryArea, area))
    })
  })
