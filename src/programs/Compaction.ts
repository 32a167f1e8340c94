/**
 * Compaction of the whole live range at once (the history projection's
 * rebuild): every key's superseded events move into history and every
 * deleted key's tombstone into its grave, with progress reported as it goes.
 * Safe to run beside a worker: both only ever move events older than one they
 * have seen, and a burial is one conditional transaction.
 */
import { Context, Effect, Layer, Stream } from "effect"
import * as SortKey from "../domain/SortKey.ts"
import { EventTable } from "../infra/EventTable.ts"
import type { StoredItem } from "../infra/EventTable.ts"
import { Attr } from "../infra/EventRecord.ts"
import type { StorageFailure, Throttled } from "../domain/Errors.ts"
import { HistoryArea } from "../infra/HistoryArea.ts"
import { newestPerKey } from "./Ranges.ts"
import { compactKey } from "./projections/HistoryProjection.ts"
import type { Retention } from "./projections/HistoryProjection.ts"

/** Whether a stored event is a tombstone, read from its clear `op` (a forged one fails when its grave is read). */
const isTombstone = (stored: StoredItem): boolean => {
  const op = stored.item[Attr.op]?.S
  return op === "delete" || op === "expire"
}

/** Compacts every key of the namespace. */
export class Compaction extends Context.Service<Compaction, {
  /** Compacts all keys; `progress(done, total)` after each. Returns how many keys it looked at. */
  readonly all: (
    progress: (done: number, total: number) => Effect.Effect<void>,
    retention?: Retention
  ) => Effect.Effect<number, Throttled | StorageFailure>
}>()("dynastate/Compaction") {
  static readonly layer: Layer.Layer<Compaction, never, EventTable | HistoryArea> = Layer.effect(Compaction, Effect.gen(function*() {
    const table = yield* EventTable
    const area = yield* HistoryArea
    const everything = () =>
      newestPerKey(table.scan({ lower: new Uint8Array([0]), upper: SortKey.prefixUpperBound(""), descending: false }), false)
    return Compaction.of({
      all: (progress, retention = { _tag: "Forever" }) =>
        Effect.gen(function*() {
          const total = yield* Stream.runFold(everything(), () => 0, (count) => count + 1)
          let done = 0
          yield* everything().pipe(
            Stream.runForEach((stored) =>
              compactKey(stored.key, stored.seq, retention, isTombstone(stored)).pipe(
                Effect.provideService(HistoryArea, area),
                Effect.andThen(Effect.suspend(() => progress(++done, total)))
              )
            )
          )
          return done
        })
    })
  }))
}
