/**
 * Index views: the current state of a key prefix materialised into a view
 * table keyed by a function of each item (a secondary index, e.g. users by
 * e-mail), kept up to date by a projection and read with `get` and `query`.
 */
import { Clock, Effect, Redacted, Stream } from "effect"
import { createHmac } from "node:crypto"
import { NotFound } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import { carriesValue, itemRevision, liveItem } from "../../domain/Event.ts"
import type { Item } from "../../domain/Item.ts"
import { DataKeys } from "../../infra/crypto/DataKeys.ts"
import { Dynamo } from "../../infra/Dynamo.ts"
import { EventTable } from "../../infra/EventTable.ts"
import * as ViewTable from "../../infra/ViewTable.ts"
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

type EventRecordError = Effect.Error<ReturnType<EventTable["Service"]["decode"]>>

/** An index view: the projection that maintains it (run it in a worker) and its reads. */
export const make = (options: IndexViewOptions) =>
  Effect.gen(function*() {
    const table = yield* EventTable
    const dataKeys = yield* DataKeys
    const dynamo = yield* Dynamo
    const viewTable = `${table.location.table}.view.${options.name}`
    const withServices = <A, E>(effect: Effect.Effect<A, E, Dynamo | DataKeys>) =>
      effect.pipe(Effect.provideService(Dynamo, dynamo), Effect.provideService(DataKeys, dataKeys))
    yield* withServices(ViewTable.ensureTable(viewTable))
    const indexKey = yield* dataKeys.named(`view:${options.name}`)
    const blind = (value: string) =>
      createHmac("sha256", Redacted.value(indexKey.material)).update(value, "utf8").digest("hex")

    const apply = (event: Event) =>
      withServices(Effect.gen(function*() {
        const filedNow = yield* ViewTable.current(viewTable, event.key)
        if (filedNow.seq >= event.seq) return
        const item = carriesValue(event) && event.value !== undefined
          ? { key: event.key, value: event.value, expires: event.expires, revision: itemRevision(event) }
          : undefined
        const value = item === undefined ? undefined : options.indexOf(item)
        const index = value === undefined ? undefined : blind(value)
        // Re-encrypted bound to the same event, so the view holds no plaintext and reads authenticate it.
        yield* ViewTable.move(viewTable, table.location, event, filedNow.index, index)
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
