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

/** A short lease on one machine: keys move 600 + 1500 ms after a migration is recorded. */
export const shortLease = LayoutLease.make(600, shortFence, localMargins)

/** Store options with the short lease and the write timeout it assumes. */
export const shortLeaseOptions = { layoutLease: shortLease, actors: { ...defaultActorOptions, fence: shortFence } }

/** Puts 1, 2, 3… every 50 ms until a put fails: the values acknowledged, and the failure. */
export const writeUntilRefused = (store: Store["Service"], key: string) =>
  Effect.gen(function*() {
    const acked: Array<string> = []
    for (let n = 1;; n++) {
      const put = yield* Effect.result(store.put({ key, value: new TextEncoder().encode(String(n)) }))
      if (put._tag === "Failure") return { acked, failure: put.failure }
      acked.push(String(n))
      yield* Effect.sleep("50 millis")
    }
  })
