/**
 * The layout change a store serves through, if any (see `StoreLayout.layer`, `MigratingTable`), and the event table
 * it serves through: provided beside the store, for the worker's tamper watch and the audit, which must not call a
 * move's removals a rollback, and for every reader of a whole namespace (the audit, rebuilds, views' backfills), which
 * must read each key where the store reads it.
 */
import { Context, Effect, Option } from "effect"
import type { Transition } from "../../domain/LayoutTransition.ts"
import { EventTable } from "../../infra/EventTable.ts"
import type { ReadError } from "../../infra/EventTable.ts"

/** The layout change a store is serving through, if any: what the worker's tamper watch and the audit ask. */
export class LayoutMigration extends Context.Service<LayoutMigration, {
  /** The change under way when the store opened (undefined: none, the store serves its layout as it is). */
  readonly transition: Transition | undefined
  /**
   * The event table the store serves through: its own event table, or while a change is under way one that reads
   * each key at its old partition or its new one, every key once, in key order (see `MigratingTable.servingTable`).
   */
  readonly table: EventTable["Service"]
  /**
   * Whether `key` changes partition and its new partition holds an event at `seq` or later: its events were moved
   * there, and their removal from the old partition is the move's.
   */
  readonly movedAway: (key: string, seq: number) => Effect.Effect<boolean, ReadError>
}>()("dynastate/LayoutMigration") {}

/**
 * The event table a reader of a whole namespace (an audit, a rebuild, a view's backfill) reads: the one the store in
 * context serves through, so keys a layout migration has not moved yet are read too; the event table itself when no
 * store is in context.
 */
export const servingTable: Effect.Effect<EventTable["Service"], never, EventTable> = Effect.flatMap(
  Effect.serviceOption(LayoutMigration),
  (layout) => Option.isSome(layout) ? Effect.succeed(layout.value.table) : Effect.service(EventTable)
)
