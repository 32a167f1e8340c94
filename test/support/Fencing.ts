/**
 * What the layout lease's tests share (see `LayoutFence`): a short lease and write timeout on one machine, and a
 * writer that keeps writing a cached key until its store is fenced.
 */
import { Effect } from "effect"
import * as LayoutLease from "../../src/domain/LayoutLease.ts"
import { localMargins } from "../../src/domain/WriteFence.ts"
import { defaultActorOptions } from "../../src/programs/store/KeyActors.ts"
import type { Store } from "../../src/programs/store/Store.ts"

/** A short write timeout, which the stores' actors and the lease must agree on. */
export const shortFence = { maxStateAgeMillis: 30_000, writeTimeoutMillis: 1_500 }

/**
 * A short lease on one machine: keys move 1500 + 1500 ms after a migration is recorded. Not shorter: a loaded CI
 * machine's DynamoDB Local can take longer than a few hundred milliseconds to answer the record's re-read.
 */
export const shortLease = LayoutLease.make(1_500, shortFence, localMargins)

/** Store options with the short lease and the write timeout it assumes. */
export const shortLeaseOptions = { layoutLease: shortLease, actors: { ...defaultActorOptions, fence: shortFence } }

/**
 * Puts 1, 2, 3… every 50 ms until a put fails for good: the values acknowledged, and the failure. A lapse of the
 * lease (a record read slower than the lease on a loaded machine) passes; the store serves again after it.
 */
export const writeUntilRefused = (store: Store["Service"], key: string) =>
  Effect.gen(function*() {
    const acked: Array<string> = []
    for (let n = 1;; n++) {
      const put = yield* Effect.result(store.put({ key, value: new TextEncoder().encode(String(n)) }))
      if (put._tag === "Failure") {
        const lapse = (put.failure._tag === "StorageFailure" || put.failure._tag === "Throttled") &&
          put.failure.operation === "layout lease"
        if (!lapse) return { acked, failure: put.failure }
        n--
      } else {
        acked.push(String(n))
      }
      yield* Effect.sleep("50 millis")
    }
  })
