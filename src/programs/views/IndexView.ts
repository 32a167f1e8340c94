/**
 * Index views: the current state of a key prefix materialised into a view
 * table keyed by a function of each item (a secondary index, e.g. users by
 * e-mail), kept up to date by a projection and read with `get` and `query`.
 */
import { Clock, Effect, Redacted, Stream } from "effect"
import { createHmac } from "node:crypto"
import { NotFound, StorageFailure } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import { carriesValue, itemRevision, liveItem } from "../../domain/Event.ts"
import type { Item } from "../../domain/Item.ts"
import { DataKeys } from "../../infra/crypto/DataKeys.ts"
import { Dynamo } from "../../infra/Dynamo.ts"
import type { EventTable } from "../../infra/EventTable.ts"
import * as ViewTable from "../../infra/ViewTable.ts"
import { servingTable } from "../store/LayoutMigration.ts"
import * as NewestEvents from "../store/NewestEvents.ts"
import * as Projection from "../worker/Projection.ts"

/** What an index view is. */
export interface IndexViewOptions {
  readonly name: string
  readonly prefix: string
  /** The index value of an item, or `undefined` to leave it out of the view. */
  readonly indexOf: (item: Item) => string | undefined
}

/** Reads of an index view. */
export interface IndexView {
  /** The one live item filed under an index value; `NotFound` if none. */
  readonly get: (index: string) => Effect.Effect<Item, NotFound | EventRecordError>
  /** Every live item filed under an index value, in key order. */
  readonly query: (index: string) => Effect.Effect<ReadonlyArray<Item>, EventRecordError>
}

/** How many times one apply moves a key's entry before it gives up (each lost attempt means another apply won). */
const maxMoveAttempts = 20

type EventRecordError = Effect.Error<ReturnType<EventTable["Service"]["decode"]>>

/** An index view: the projection that maintains it (run it in a worker) and its reads. */
export const make = (options: IndexViewOptions) =>
  Effect.gen(function*() {
    // The table the store in context serves through: a backfill during a layout migration reads keys not moved yet.
    const table = yield* servingTable
    const dataKeys = yield* DataKeys
    const dynamo = yield* Dynamo
    const viewTable = `${table.location.table}.view.${options.name}`
    const withServices = <A, E>(effect: Effect.Effect<A, E, Dynamo | DataKeys>) =>
      effect.pipe(Effect.provideService(Dynamo, dynamo), Effect.provideService(DataKeys, dataKeys))
    yield* withServices(ViewTable.ensureTable(viewTable))
    const indexKey = yield* dataKeys.named(`view:${options.name}`)
    const blind = (value: string) =>
      createHmac("sha256", Redacted.value(indexKey.material)).update(value, "utf8").digest("hex")

    const indexOfEvent = (event: Event) => {
      const item = carriesValue(event) && event.value !== undefined
        ? { key: event.key, value: event.value, expires: event.expires, revision: itemRevision(event) }
        : undefined
      const value = item === undefined ? undefined : options.indexOf(item)
      return value === undefined ? undefined : blind(value)
    }

    // Applies of one key may overlap (a rebuild beside the worker, a worker whose lease lapsed mid-batch beside
    // the new owner): each move is conditional on the by-key item it read, and one that lost reads again, so
    // whatever the order the view ends at the highest seq applied, and never keeps an entry it no longer files.
    const apply = (event: Event) =>
      withServices(Effect.gen(function*() {
        const index = indexOfEvent(event)
        for (let attempt = 1;; attempt++) {
          const filedNow = yield* ViewTable.current(viewTable, event.key)
          if (filedNow.seq >= event.seq) return
          // Re-encrypted bound to the same event, so the view holds no plaintext and reads authenticate it.
          const outcome = yield* ViewTable.move(viewTable, table.location, event, filedNow, index)
          if (outcome === "Done") return
          if (attempt >= maxMoveAttempts) {
            return yield* new StorageFailure({
              operation: `index view ${options.name}`,
              reason: `${maxMoveAttempts} moves of a key's entry met concurrent applies of the same key`
            })
          }
          // A lost condition means another apply moved the entry: read again at once. A transaction in flight on
          // the same items ends within milliseconds.
          if (outcome === "Conflict") yield* Effect.sleep(Math.min(1000, 10 * 2 ** attempt) * (0.5 + Math.random()))
        }
      }))

    const query = (value: string) =>
      withServices(Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const items: Array<Item> = []
        for (const stored of yield* ViewTable.filed(viewTable, blind(value))) {
          const live = liveItem(yield* table.decode(stored), now)
          if (live) items.push(live)
        }
        return items
      }))

    const view: IndexView = {
      query,
      // The error names the view, not the looked-up value (an e-mail address, say), which must not reach logs.
      get: (value) =>
        Effect.flatMap(query(value), (items) =>
          items[0] ? Effect.succeed(items[0]) : Effect.fail(new NotFound({ key: `view ${options.name}` })))
    }

    // Files every current item of the prefix and unfiles deleted keys: a view added to an existing store, or one that missed events.
    const rebuild = NewestEvents.read(table, { prefixes: [options.prefix] }, { include: "graves" }).pipe(
      Stream.runForEach((stored) =>
        table.decode(stored).pipe(
          Effect.flatMap(apply),
          Effect.catchTag("Shredded", () =>
            Effect.void)
        )
      )
    )
    const projection = Projection.make({ name: `view:${options.name}`, prefixes: [options.prefix], apply, rebuild })
    return { projection, view }
  })
