/**
 * The partition layout a store opens with (see `Partitioning`, `LayoutRecord`): checked against the store's own
 * options and sealed prefixes, then against the namespace's record. While the record says a migration moves keys to
 * the store's layout (see `LayoutTransition`), the store is served by a table that finds each key at its old
 * partition or its new one and moves a key before writing it (see `MigratingTable`).
 */
import { Context, Effect, Layer, Option, Result } from "effect"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import * as LayoutLease from "../../domain/LayoutLease.ts"
import type { Transition } from "../../domain/LayoutTransition.ts"
import * as LayoutTransition from "../../domain/LayoutTransition.ts"
import * as Partitioning from "../../domain/Partitioning.ts"
import { ConfigInvalid } from "../../infra/config/ConfigInvalid.ts"
import { DataKeys } from "../../infra/crypto/DataKeys.ts"
import { Dynamo } from "../../infra/Dynamo.ts"
import type { Location } from "../../infra/EventRecord.ts"
import { EventTable } from "../../infra/EventTable.ts"
import { HistoryArea } from "../../infra/HistoryArea.ts"
import * as LayoutRecord from "../../infra/LayoutRecord.ts"
import * as Relocation from "../../infra/Relocation.ts"
import * as LayoutFence from "./LayoutFence.ts"
import { LayoutMigration } from "./LayoutMigration.ts"
import * as MigratingTable from "./MigratingTable.ts"
import type { StoreOptions } from "./Store.ts"

/**
 * The layout a store opens with: valid, the same in the options (when given) and the event table, sound with the
 * sealed prefixes, and the namespace's recorded one or the one a recorded migration moves to (see `LayoutRecord`);
 * the store configured with every sealed prefix a sealing migration recorded. Every check but the last two before
 * any I/O.
 */
export const settle = Effect.fnUntraced(function*(
  location: Location,
  options: Pick<StoreOptions, "partitions" | "sealed">
) {
  const layout = location.partitions ?? []
  if (options.partitions !== undefined && !Partitioning.same(options.partitions, layout)) {
    return yield* new ConfigInvalid({
      field: LayoutRecord.layoutField,
      reason: `the store options' partitions [${Partitioning.describe(options.partitions)}] differ from its event ` +
        `table's [${Partitioning.describe(layout)}]: build the event table with the same layout`
    })
  }
  const valid = LayoutRecord.check(layout)
  if (Result.isFailure(valid)) return yield* valid.failure
  const [unsound, ...more] = Partitioning.checkSealed(layout, options.sealed ?? [], LayoutRecord.layoutField)
  if (unsound !== undefined) return yield* ConfigInvalid.of([unsound, ...more])
  const { opening, sealed } = yield* LayoutRecord.settleRecord(location)
  // A sealing migration recorded a prefix this store would read and write in clear (see `LayoutLease.missingSealed`).
  const unsealed = LayoutLease.missingSealed(sealed, options.sealed ?? [])
  if (unsealed !== undefined) {
    return yield* new ConfigInvalid({
      field: sealedField,
      reason: `namespace ${location.namespace} seals the prefix ${unsealed} (recorded by seal-migrate): configure ` +
        "every recorded sealed prefix, with its seal, before opening a store"
    })
  }
  return opening
})

/** The field configuration errors about sealed prefixes name. */
const sealedField = "storage.sealed_prefixes"

/**
 * The event table and history area a store serves through, after {@link settle}: the given ones when the namespace
 * is settled on the store's layout, or ones serving both layouts while a migration moves keys to it. Either way
 * fenced by the store's layout lease (see `LayoutFence`): they serve only while the record allows the layout. A store
 * opening in migrating mode first waits until processes with the old layout have lost their leases, since its writes
 * move keys.
 */
export const layer = (
  options: Pick<StoreOptions, "partitions" | "sealed" | "layoutLease">
): Layer.Layer<
  EventTable | HistoryArea | LayoutMigration,
  ConfigInvalid | Throttled | StorageFailure,
  EventTable | HistoryArea | Dynamo | DataKeys
> =>
  Layer.effectContext(Effect.gen(function*() {
    const target = yield* EventTable
    const area = yield* HistoryArea
    const confirmedAt = LayoutFence.realTimeMillis()
    const opening = yield* settle(target.location, options)
    const lease = yield* LayoutFence.start(
      target.location,
      options.layoutLease ?? LayoutLease.defaultLease,
      options.sealed ?? [],
      {
        confirmedAt,
        recorded: opening._tag === "Migrating"
          ? { layout: opening.from, to: target.location.partitions ?? [], begin: opening.begin }
          : undefined
      }
    )
    if (opening._tag !== "Migrating") {
      const fenced = LayoutFence.fenceTable(target, lease.guard)
      return Context.make(EventTable, fenced).pipe(
        Context.add(HistoryArea, LayoutFence.fenceArea(area, lease.check)),
        Context.add(
          LayoutMigration,
          LayoutMigration.of({ transition: undefined, table: fenced, movedAway: () => Effect.succeed(false) })
        )
      )
    }
    const transition: Transition = { from: opening.from, to: target.location.partitions ?? [] }
    yield* Effect.logWarning(
      `namespace ${target.location.namespace} is migrating from [${Partitioning.describe(transition.from)}] to ` +
        `[${Partitioning.describe(transition.to)}]: serving it in migrating mode (reads look at both partitions, ` +
        "writes move a key first) until `dynastate partition-migrate` has moved every key"
    )
    const source = yield* Effect.provide(
      Effect.service(EventTable),
      EventTable.layer({ ...target.location, partitions: transition.from })
    )
    // Built apart (`local`): the layer being built has the target's history area memoized under the same layer.
    const sourceArea = yield* Effect.service(HistoryArea).pipe(
      Effect.provide(HistoryArea.layer, { local: true }),
      Effect.provideService(EventTable, source)
    )
    // Writes move keys: not before every process with the old layout has lost its lease (see `LayoutLease`).
    yield* lease.awaitMoves
    const relocation = Relocation.make(yield* Dynamo, yield* DataKeys)
    const serving = MigratingTable.servingTable(source, target, transition, relocation)
    const fenced = LayoutFence.fenceTable(serving, lease.guard)
    return Context.make(EventTable, fenced).pipe(
      Context.add(
        HistoryArea,
        LayoutFence.fenceArea(MigratingTable.servingArea(sourceArea, area, transition), lease.check)
      ),
      Context.add(
        LayoutMigration,
        LayoutMigration.of({
          transition,
          table: fenced,
          movedAway: (key, seq) =>
            LayoutTransition.moves(transition, key)
              ? Effect.map(target.latestState(key), (latest) => Option.isSome(latest) && latest.value.seq >= seq)
              : Effect.succeed(false)
        })
      )
    )
  }))
