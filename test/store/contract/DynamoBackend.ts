/**
 * The contract suite's DynamoDB backend: a table per suite on the test
 * DynamoDB Local, store instances with their own actor systems (as separate
 * processes), and the raw table for inspection: a key's ops are its raw event
 * items, a snapshot is a consistent scan of the whole table. The strict
 * variant runs every store in strict write mode (see `WriteMode`).
 */
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as ValueChunks from "../../../src/infra/ValueChunks.ts"
import { defaultAtomicWriteOptions } from "../../../src/programs/store/AtomicWriter.ts"
import { defaultActorOptions } from "../../../src/programs/store/KeyActors.ts"
import type { StoreOptions } from "../../../src/programs/store/Store.ts"
import { makeClient, openStoreWithAcks } from "../../support/TestStore.ts"
import { opsOf, recordingClient, snapshot, useTable } from "./harness.ts"
import type { ContractBackend } from "./suite/Backend.ts"

/** A DynamoDB backend whose stores are opened with `storeOptions`. */
const backend = (name: string, storeOptions: Partial<StoreOptions>): ContractBackend => ({
  name,
  expiresWhenDue: false,
  advance: (millis) => TestClock.adjust(millis),
  storage: (label) => {
    const t = useTable(label)
    return {
      open: () => t.open({ storeOptions }),
      openWithAcks: () =>
        Effect.gen(function*() {
          const client = makeClient()
          yield* Effect.addFinalizer(() => Effect.sync(() => client.destroy()))
          return yield* openStoreWithAcks(t.location, { client, storeOptions })
        }),
      openRecording: () =>
        Effect.gen(function*() {
          const { calls, client } = recordingClient()
          const store = yield* t.open({ client, storeOptions })
          return { store, requests: () => [...calls] }
        }),
      ops: (key) => opsOf(t.client, t.location, key),
      snapshot: () => snapshot(t.client, t.location.table),
      maxValueBytes: () => ValueChunks.maxValueBytes,
      wholeValueBytes: (key) => ValueChunks.largestWholeValue(t.location, key)
    }
  }
})

/** The DynamoDB store, on DynamoDB Local; its stores read Effect's `Clock`, so `TestClock` moves them. */
export const dynamoBackend: ContractBackend = backend("DynamoDB", {})

/** The DynamoDB store in strict write mode: every append a transaction checking its predecessor. */
export const dynamoStrictBackend: ContractBackend = backend("DynamoDB strict", {
  actors: { ...defaultActorOptions, writeMode: "strict" },
  atomicWrite: { ...defaultAtomicWriteOptions, writeMode: "strict" }
})
