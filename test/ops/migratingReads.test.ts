/**
 * Readers of a whole namespace while a partition migration is under way (see `PartitionMigration`): some keys moved
 * to the new layout's partitions, the others (live events, history copies, a grave) still in the old layout's. An
 * audit through a store of the new layout, a rebuild's replay and a new index view's backfill read what the store
 * reads: every key once, in key order, wherever it is, so the audit finds nothing and counts what it counted before
 * the migration began, and the replay and the view hold the keys not moved yet. The store itself reads the history
 * copies of keys not moved yet where they are.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Layout } from "../../src/domain/Partitioning.ts"
import * as Audit from "../../src/programs/ops/Audit.ts"
import * as PartitionMigration from "../../src/programs/store/PartitionMigration.ts"
import * as IndexView from "../../src/programs/views/IndexView.ts"
import * as Rebuild from "../../src/programs/worker/Rebuild.ts"
import { entries, memoryProjection } from "../rebuild/support.ts"
import { eventTableLayer, openStore, tablePerFile, testLayoutLease } from "../support/TestStore.ts"
import type { TestTable } from "../support/TestStore.ts"
import {
  after,
  before,
  deleted,
  keys,
  movedFirst,
  moveFirstKeys,
  populate,
  storeContext,
  text
} from "./halfMigrated.ts"

const { client, freshLocation } = tablePerFile("migreads")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-migreads-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

/**
 * {@link populate}, `reference` run against a store of the old layout before the migration begins, then
 * {@link moveFirstKeys}.
 */
const halfMigrated = <A, E>(reference: (location: TestTable) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const location = freshLocation()
    yield* populate(client, location)
    const expected = yield* reference(location)
    yield* moveFirstKeys(client, location)
    return { location, expected }
  })

describe("reading a namespace while a partition migration is under way", () => {
  it.live(
    "a store of the new layout reads the history copies of keys not moved yet from their old partitions",
    () =>
      Effect.gen(function*() {
        const histories = (location: TestTable, layout: Layout) =>
          Effect.gen(function*() {
            const store = yield* openStore({ ...location, partitions: layout }, {
              client,
              storeOptions: { partitions: layout }
            })
            return yield* Effect.forEach(keys, (key) =>
              Effect.map(
                Stream.runCollect(store.history(key)),
                (events) => events.map((event) => `${key}@${event.seq} ${event.op} ${event.revision}`)
              ))
          })
        const { location, expected } = yield* halfMigrated((location) => Effect.scoped(histories(location, before)))
        expect(expected.flat()).toHaveLength(keys.length * 2 + deleted.length)
        expect(yield* histories(location, after)).toEqual(expected)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "an audit through a store of the new layout finds nothing, counts every key once and keeps its checkpoint",
    () =>
      Effect.gen(function*() {
        const checkpoint = path.join(dir, "before.checkpoint")
        const { location, expected } = yield* halfMigrated((location) =>
          Effect.scoped(Effect.gen(function*() {
            const context = yield* storeContext(client, location, before)
            return yield* Audit.ofStore({ checkpointOut: checkpoint }).pipe(Effect.provide(context))
          }))
        )
        expect(expected.findings).toEqual([])
        expect(expected).toMatchObject({ keys: keys.length + 1, graves: 2 })
        const context = yield* storeContext(client, location, after)
        const report = yield* Audit.ofStore({ checkpoint }).pipe(Effect.provide(context))
        expect(report.findings).toEqual([])
        expect(report.ok).toBe(true)
        expect({
          keys: report.keys,
          events: report.events,
          historyCopies: report.historyCopies,
          graves: report.graves
        }).toEqual({
          keys: expected.keys,
          events: expected.events,
          historyCopies: expected.historyCopies,
          graves: expected.graves
        })
        // Once the migration finished, a store of the settled layout audits the same, against the same checkpoint.
        const rest = yield* Effect.scoped(Effect.gen(function*() {
          const table = yield* Layer.build(eventTableLayer({ ...location, partitions: after }, { client }))
          return yield* PartitionMigration.run({ lease: testLayoutLease }).pipe(Effect.provide(table))
        }))
        expect(rest).toMatchObject({ moved: keys.length - movedFirst, failed: 0, done: true })
        const settled = yield* Audit.ofStore({ checkpoint }).pipe(
          Effect.provide(yield* storeContext(client, location, after))
        )
        expect(settled.findings).toEqual([])
        expect([settled.keys, settled.events, settled.historyCopies, settled.graves]).toEqual([
          expected.keys,
          expected.events,
          expected.historyCopies,
          expected.graves
        ])
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "a rebuild's replay and a new index view's backfill hold the keys not moved yet",
    () =>
      Effect.gen(function*() {
        const replayed = (location: TestTable, layout: Layout) =>
          Effect.scoped(Effect.gen(function*() {
            const context = yield* storeContext(client, location, layout)
            const { projection, state } = memoryProjection("copy", ["/hot/"])
            const outcome = yield* Rebuild.replay(projection).pipe(Effect.provide(context))
            return { outcome, state: entries(state) }
          }))
        const { location, expected } = yield* halfMigrated((location) => replayed(location, before))
        expect(expected.state.map(([key]) => key)).toEqual(keys)
        expect(expected.state.filter(([, entry]) => entry.value === undefined).map(([key]) => key)).toEqual(deleted)

        const during = yield* replayed(location, after)
        expect(during.outcome).toEqual(expected.outcome)
        expect(during.state).toEqual(expected.state)

        const context = yield* storeContext(client, location, after)
        const byVersion = yield* IndexView.make({
          name: `by-version-${location.namespace}`,
          prefix: "/hot/",
          indexOf: (item) => text(item.value).split("@")[1]
        }).pipe(Effect.provide(context))
        yield* byVersion.projection.rebuild!.pipe(Effect.provide(context))
        const filed = yield* byVersion.view.query("2")
        expect(filed.map((item) => item.key)).toEqual(keys.filter((key) => !deleted.includes(key)))
      }).pipe(Effect.scoped),
    60_000
  )
})
