/**
 * Compaction: moves each key's superseded events out of the live range into
 * the history area, oldest first and never the newest, so reads of current
 * state stay one short query however long a key's history grows. A key's
 * newest event, tombstone or not, always stays live: a deleted key can never
 * come back, and its seq numbering continues.
 */
import { Clock, Effect, Stream } from "effect"
import type { Event } from "../../domain/Event.ts"
import { HistoryArea } from "../../infra/HistoryArea.ts"
import * as Projection from "../Projection.ts"

/** How long moved events are kept: forever, not at all, or for a while. */
export type Retention =
  | { readonly _tag: "Forever" }
  | { readonly _tag: "None" }
  | { readonly _tag: "For"; readonly millis: number }

/** Moves the events of `key` older than `seq` into the history area (or drops them, with retention "None"). */
export const compactKey = (key: string, seq: number, retention: Retention) =>
  Effect.gen(function*() {
    const area = yield* HistoryArea
    yield* area.superseded(key, seq).pipe(
      Stream.runForEach((stored) =>
        Effect.gen(function*() {
          if (retention._tag !== "None") {
            const now = yield* Clock.currentTimeMillis
            const expiresAt = retention._tag === "For" ? Math.ceil((now + retention.millis) / 1000) : undefined
            yield* area.archive(stored, expiresAt)
          }
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
      apply: (event: Event) => compactKey(event.key, event.seq, retention).pipe(Effect.provideService(HistoryArea, area))
    })
  })
