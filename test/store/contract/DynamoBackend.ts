/**
 * The contract suite's DynamoDB backend: a table per suite on the test
 * DynamoDB Local, store instances with their own actor systems (as separate
 * processes), and the raw table for inspection: a key's ops are its raw event
 * items, a snapshot is a consistent scan of the whole table. The strict
 * variant runs every store in strict write mode (see `WriteMode`).
 */
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as SealedKeys from "../../../src/domain/SealedKeys.ts"
import * as EventRecord from "../../../src/infra/EventRecord.ts"
import * as ValueChunks from "../../../src/infra/ValueChunks.ts"
import { defaultAtomicWriteOptions } from "../../../src/programs/store/AtomicWriter.ts"
import { defaultActorOptions } from "../../../src/programs/store/KeyActors.ts"
import type { StoreOptions } from "../../../src/programs/store/Store.ts"
import { makeClient, openStoreWithAcks, storedKeyOf } from "../../support/TestStore.ts"
import { opsOf, recordingClient, snapshot, useTable } from "./harness.ts"
import type { ContractBackend } from "./suite/Backend.ts"

/** A DynamoDB backend whose stores are opened with `storeOptions`. */
const backend = (name: string, storeOptions: Partial<StoreOptions>, pagesLazily = true): ContractBackend => {
  const sealed = storeOptions.sealed ?? []
  return {
    name,
    pagesLazily,
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
        ops: (key) => {
          const location = { ...t.location, partitions: storeOptions.partitions }
          return sealed.length === 0
            ? opsOf(t.client, location, key)
            : Effect.flatMap(
              storedKeyOf(t.location, sealed, key, t.client),
              (stored) => opsOf(t.client, location, stored)
            )
        },
        snapshot: () => snapshot(t.client, t.location.table),
        maxValueBytes: () => ValueChunks.maxValueBytes,
        wholeValueBytes: (key) => {
          // A sealed key's item holds its stored form and its encrypted real key: less room for the value.
          const sealedBytes = SealedKeys.place(sealed, key)._tag === "Seal"
            ? SealedKeys.storedBytes(sealed, key)
            : undefined
          return EventRecord.itemLimitBytes -
            EventRecord.maxItemBytes({ ...t.location, partitions: storeOptions.partitions }, key, 0, sealedBytes)
        }
      }
    }
  }
}

/** The DynamoDB store, on DynamoDB Local; its stores read Effect's `Clock`, so `TestClock` moves them. */
export const dynamoBackend: ContractBackend = backend("DynamoDB", {})

/** The DynamoDB store in strict write mode: every append a transaction checking its predecessor. */
export const dynamoStrictBackend: ContractBackend = backend("DynamoDB strict", {
  actors: { ...defaultActorOptions, writeMode: "strict" },
  atomicWrite: { ...defaultAtomicWriteOptions, writeMode: "strict" }
})

/**
 * The DynamoDB store with every key sealed: `/` sealed whole (`rest`), so each key is stored as a MAC, every range
 * is read whole and sorted by real key, and every watch is matched after decryption.
 */
export const dynamoSealedBackend: ContractBackend = backend("DynamoDB sealed rest", {
  sealed: [{ prefix: "/", seal: "rest" }]
}, false)

/**
 * The DynamoDB store with each key's first path segment sealed (the suites' unique prefixes): ranges inside one
 * prefix map to contiguous stored ranges, wider ones read the sealed prefix whole.
 */
export const dynamoSealedSegmentBackend: ContractBackend = backend("DynamoDB sealed segment", {
  sealed: [{ prefix: "/", seal: "segment" }]
})

/**
 * The DynamoDB store on a partitioned key space (see `Partitioning`): the suites' keys under `/p` (prefix, pages,
 * put) in a partition of their own, those under `/r` (reverse, race, ...) and `/u` (utf8, update) spread over hash
 * buckets, every other key in the namespace's default partition. Ranges inside a bucketed prefix merge its buckets'
 * queries; the layout is recorded on the first open and checked on every other.
 */
export const dynamoPartitionedBackend: ContractBackend = backend("DynamoDB partitioned", {
  partitions: [
    { prefix: "/p", name: "p" },
    { prefix: "/r", name: "r", buckets: 4 },
    { prefix: "/u", name: "u", buckets: 3 }
  ]
})
