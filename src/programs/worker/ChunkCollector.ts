/**
 * Collection of orphaned chunks: the chunk items of large values (see `ValueChunks`) whose event is not stored,
 * live or in the history area. A write leaves them when its append lost its condition, was undone, or never
 * happened (the process died between chunks and event); compaction leaves them when it drops an event (retention
 * `None`), and DynamoDB's TTL when it deletes a history copy. Chunks move with nothing: an event keeps its sort
 * key and id from the live range to the history area, so its chunks serve it wherever it is.
 *
 * A sweep reads the chunk partition's markers (one small item per event with chunks, see `ValueChunks`), not the
 * chunks themselves, and looks up each marker's event. A chunk is collected only once its event's timestamp is
 * `graceMillis` old. The write fence bounds how long after
 * its decision an append can land (the writer's timeout plus a signed request's validity plus clock skew, see
 * `WriteFence`); the compaction's settle time already exceeds that, so it is the default grace. A chunk younger
 * than the grace may belong to an append still on its way, and is left alone.
 */
import { Clock, Context, Effect, Layer, Stream } from "effect"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import { defaultSettleMillis } from "../../domain/WriteFence.ts"
import * as ChunkArea from "../../infra/ChunkArea.ts"
import { Dynamo } from "../../infra/Dynamo.ts"
import { EventTable } from "../../infra/EventTable.ts"

/** How the collector runs. */
export interface CollectorOptions {
  /** How old a chunk's event must be before its chunks may be collected (see the module's doc). */
  readonly graceMillis: number
  /** How often a worker sweeps the chunk partition. */
  readonly everyMillis: number
}

/** The compaction's default settle time as the grace; a sweep every ten minutes. */
export const defaultCollectorOptions: CollectorOptions = {
  graceMillis: defaultSettleMillis,
  everyMillis: 10 * 60_000
}

/** What a sweep did. */
export interface Swept {
  /** Events that chunks belong to, as the sweep read them. */
  readonly owners: number
  /** Of those, the ones whose event is not stored and whose chunks were deleted. */
  readonly collected: number
  /** Chunk items deleted. */
  readonly chunks: number
}

/** One pass over a namespace's chunks, collecting the orphans older than `graceMillis`. */
export const sweep = Effect.fn("ChunkCollector.sweep")(function*(
  area: ChunkArea.ChunkArea,
  graceMillis: number
) {
  const now = yield* Clock.currentTimeMillis
  return yield* area.owners.pipe(
    Stream.runFoldEffect(
      (): Swept => ({ owners: 0, collected: 0, chunks: 0 }),
      (swept, owner) =>
        Effect.gen(function*() {
          const counted = { ...swept, owners: swept.owners + 1 }
          if (owner.timestamp + graceMillis > now || (yield* area.holds(owner))) return counted
          const chunks = yield* area.remove(owner)
          yield* Effect.logDebug(`collected ${chunks} orphaned chunks of ${owner.key} at seq ${owner.seq}`)
          return { ...counted, collected: counted.collected + 1, chunks: counted.chunks + chunks }
        })
    )
  )
})

/** The collector of one namespace's orphaned chunks. */
export class ChunkCollector extends Context.Service<ChunkCollector, {
  /** Sweeps now (besides the periodic sweeps). */
  readonly sweep: Effect.Effect<Swept, Throttled | StorageFailure>
}>()("dynastate/ChunkCollector") {
  /** Sweeps the event table's chunks every `everyMillis` while the layer lives; a failed sweep is logged. */
  static readonly layer = (
    options: CollectorOptions = defaultCollectorOptions
  ): Layer.Layer<ChunkCollector, never, EventTable | Dynamo> =>
    Layer.effect(
      ChunkCollector,
      Effect.gen(function*() {
        const table = yield* EventTable
        const area = ChunkArea.make(yield* Dynamo, table.location)
        const once = sweep(area, options.graceMillis)
        yield* Effect.sleep(options.everyMillis).pipe(
          Effect.andThen(once),
          Effect.tap((swept) =>
            swept.collected === 0
              ? Effect.void
              : Effect.logInfo(`collected ${swept.chunks} orphaned chunks of ${swept.collected} events`)
          ),
          Effect.catchCause((cause) => Effect.logWarning("collecting orphaned chunks failed", cause)),
          Effect.forever,
          Effect.forkScoped
        )
        return ChunkCollector.of({ sweep: once })
      })
    )
}
