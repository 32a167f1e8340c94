/**
 * The contract suite's DynamoDB backend: a table per suite on the test
 * DynamoDB Local, store instances with their own actor systems (as separate
 * processes), and the raw table for inspection: a key's ops are its raw event
 * items, a snapshot is a consistent scan of the whole table.
 */
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as EventRecord from "../../../src/infra/EventRecord.ts"
import { opsOf, recordingClient, snapshot, useTable } from "./harness.ts"
import type { ContractBackend } from "./suite/Backend.ts"

/** The DynamoDB store, on DynamoDB Local; its stores read Effect's `Clock`, so `TestClock` moves them. */
export const dynamoBackend: ContractBackend = {
  name: "DynamoDB",
  expiresWhenDue: false,
  advance: (millis) => TestClock.adjust(millis),
  storage: (label) => {
    const t = useTable(label)
    return {
      open: () => t.open(),
      openWithAcks: () => t.openWithAcks(),
      openRecording: () =>
        Effect.gen(function*() {
          const { calls, client } = recordingClient()
          const store = yield* t.open({ client })
          return { store, requests: () => [...calls] }
        }),
      ops: (key) => opsOf(t.client, t.location, key),
      snapshot: () => snapshot(t.client, t.location.table),
      maxValueBytes: (key) => EventRecord.itemLimitBytes - EventRecord.maxItemBytes(t.location, key, 0)
    }
  }
}
