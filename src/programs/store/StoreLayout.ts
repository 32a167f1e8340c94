/**
 * The partition layout a store opens with (see `Partitioning`, `LayoutRecord`): checked against the store's own
 * options and sealed prefixes, then against the namespace's record.
 */
import { Effect, Result } from "effect"
import * as Partitioning from "../../domain/Partitioning.ts"
import { ConfigInvalid } from "../../infra/config/ConfigInvalid.ts"
import type { Location } from "../../infra/EventRecord.ts"
import * as LayoutRecord from "../../infra/LayoutRecord.ts"
import type { StoreOptions } from "./Store.ts"

/**
 * The layout a store opens with: valid, the same in the options (when given) and the event table, sound with the
 * sealed prefixes, and the namespace's recorded one (see `LayoutRecord`). Every check but the last before any I/O.
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
  yield* LayoutRecord.settle(location)
})
