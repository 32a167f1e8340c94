/**
 * The layout change a store serves through, if any (see `StoreLayout.layer`, `MigratingTable`): provided beside the
 * store, for the worker's tamper watch and the audit, which must not call a move's removals a rollback.
 */
import { Context } from "effect"
import type { Effect } from "effect"
import type { Transition } from "../../domain/LayoutTransition.ts"
import type { ReadError } from "../../infra/EventTable.ts"

/** The layout change a store is serving through, if any: what the worker's tamper watch and the audit ask. */
export class LayoutMigration extends Context.Service<LayoutMigration, {
  /** The change under way when the store opened (undefined: none, the store serves its layout as it is). */
  readonly transition: Transition | undefined
  /**
   * Whether `key` changes partition and its new partition holds an event at `seq` or later: its events were moved
   * there, and their removal from the old partition is the move's.
   */
  readonly movedAway: (key: string, seq: number) => Effect.Effect<boolean, ReadError>
}>()("dynastate/LayoutMigration") {}
