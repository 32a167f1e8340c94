/**
 * The checks at the end of a campaign, run once everything healed, through a store of the controller's own that
 * talks to DynamoDB Local directly (no proxy):
 *
 * - `linearizable`: the recorded history plus a final read of every key has a linearization (the checker of
 *   test/properties/linearizability; indeterminate operations are pending there);
 * - `lostWrites`: each key's final state was written by some operation, and an acknowledged write that no later
 *   write could have overwritten is the final state;
 * - `expiry`: every expired write has exactly one `expire` event after it, none has two;
 * - `historyFold`: a key's kept events have strictly increasing seqs, contain every acknowledged write's revision,
 *   and fold to what `get` answers;
 * - `replica`: a worker's `ReplicatedView` of `/kv/` comes to equal the final state;
 * - `index`: the workers' `IndexView` of `/kv/` comes to file exactly the final state;
 * - `plaintext`: no attribute of any item of the event table or the index view's table contains a written value.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { Context, Effect, Exit, Layer, References, Stream } from "effect"
import type { Event } from "../../src/domain/Event.ts"
import type { DataKeys } from "../../src/infra/crypto/DataKeys.ts"
import type { Dynamo } from "../../src/infra/Dynamo.ts"
import type { EventTable } from "../../src/infra/EventTable.ts"
import { load } from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import { Store } from "../../src/programs/store/Store.ts"
import * as IndexView from "../../src/programs/views/IndexView.ts"
import { checkLinearizable } from "../properties/linearizability/Checker.ts"
import { formatResult } from "../properties/linearizability/format.ts"
import type { History, Operation } from "../properties/linearizability/History.ts"
import { completed, isPending } from "../properties/linearizability/History.ts"
import { describeKv, makeKvModel } from "../properties/linearizability/KvModel.ts"
import type { KvInput, KvOutput } from "../properties/linearizability/KvModel.ts"
import { text } from "../properties/linearizability/storeHistory.ts"
import type { CampaignRecord } from "./Campaign.ts"
import { ttlKeys } from "./Campaign.ts"
import { indexBuckets, indexName, indexOf } from "./Protocol.ts"
import type { RawEvent, RawKey } from "./TableChecks.ts"
import { plaintext, rawEvents } from "./TableChecks.ts"

/** The store's documented corner cases (as in storeLinearizability.test.ts). */
const model = makeKvModel({
  deleteMissing: "NotFound",
  compareAndSwapMissing: "CompareFailed",
  conditionalMissing: "IncorrectRevision"
})

/** The checks' names. */
export type CheckName = "linearizable" | "lostWrites" | "expiry" | "historyFold" | "replica" | "index" | "plaintext"

/** What one check found: violations (empty when it passed) and, for the linearizability check, inconclusiveness. */
export interface CheckOutcome {
  readonly name: CheckName
  readonly violations: ReadonlyArray<string>
  readonly note?: string | undefined
}

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

type Final = { readonly value: string; readonly revision: string } | undefined

const openStore = (record: CampaignRecord, endpoint: string) =>
  Effect.gen(function*() {
    const config = yield* load({
      env: {
        DYNASTATE_ENDPOINT: endpoint,
        DYNASTATE_REGION: "us-east-1",
        DYNASTATE_TABLE_NAME: record.table,
        DYNASTATE_NAMESPACE: record.namespace,
        DYNASTATE_KEYRING_KEY: record.key
      }
    })
    return yield* Layer.build(StoreLive.layer(config))
  })

const finalState = (store: Store["Service"], key: string): Effect.Effect<Final, unknown> =>
  store.get(key).pipe(
    Effect.map((item): Final => ({ value: text(item.value), revision: item.revision })),
    Effect.catchTag("NotFound", () => Effect.succeed(undefined))
  )

const eventsOf = (store: Store["Service"], key: string): Effect.Effect<ReadonlyArray<Event>, unknown> =>
  Effect.map(Stream.runCollect(store.history(key)), (events) => Array.from(events))

/** The history with a final read of every key appended after every other operation. */
const withFinalReads = (
  history: History<KvInput, KvOutput>,
  finals: ReadonlyMap<string, Final>
): History<KvInput, KvOutput> => {
  let clock =
    Math.max(0, ...history.filter((op) => !isPending(op)).map((op) => op.return), ...history.map((op) => op.call)) + 1
  let id = Math.max(-1, ...history.map((op) => op.id)) + 1
  const reads: Array<Operation<KvInput, KvOutput>> = []
  for (const [key, final] of finals) {
    const output: KvOutput = final === undefined
      ? { _tag: "Err", tag: "NotFound" }
      : { _tag: "Ok", value: final.value, revision: final.revision }
    reads.push(completed(id++, "final", clock, clock + 1, { _tag: "Get", key }, output))
    clock += 2
  }
  return [...history, ...reads]
}

const linearizable = (history: History<KvInput, KvOutput>): CheckOutcome => {
  const result = checkLinearizable(model, history, { timeoutMs: 20_000, explain: "prefix", explainTimeoutMs: 5_000 })
  if (result.ok === true) return { name: "linearizable", violations: [] }
  if (result.ok === "unknown") return { name: "linearizable", violations: [], note: `inconclusive: ${result.reason}` }
  return { name: "linearizable", violations: [formatResult(model, history, result)] }
}

/** The value and revision each completed write of `key` left, with its call and return. */
const writesOf = (history: History<KvInput, KvOutput>, key: string) =>
  history.flatMap((op) => {
    const input = op.input
    const put = input._tag === "AtomicWrite"
      ? input.entries.find((e) => e.key === key)?.action
      : input.key === key && "value" in input
      ? { _tag: "Put" as const, value: input.value }
      : input.key === key && (input._tag === "Delete" || input._tag === "ConditionalDelete")
      ? { _tag: "Delete" as const }
      : undefined
    if (put === undefined || put._tag === "Nop") return []
    if (!isPending(op) && op.output._tag === "Err") return []
    return [{ op, value: put._tag === "Put" ? put.value : undefined }]
  })

const lostWrites = (history: History<KvInput, KvOutput>, finals: ReadonlyMap<string, Final>): CheckOutcome => {
  const violations: Array<string> = []
  for (const [key, final] of finals) {
    const writes = writesOf(history, key)
    if (final !== undefined && !writes.some((w) => w.value === final.value)) {
      violations.push(`${key} holds ${final.value}, which no write of the history wrote`)
    }
    // Only an acknowledged write is known to have happened: pending ones may never have been applied.
    const happened = writes.some((w) => !isPending(w.op) && w.value !== undefined)
    if (final === undefined && happened && !writes.some((w) => w.value === undefined)) {
      violations.push(`${key} is absent though nothing deleted it`)
    }
    // An acknowledged write that returned before every other write to the key was called must be the final state.
    for (const write of writes) {
      if (isPending(write.op)) continue
      const overwritable = writes.some((other) => other !== write && other.op.return > write.op.call)
      if (overwritable) continue
      const wanted = write.value
      if (wanted === undefined ? final !== undefined : final?.value !== wanted) {
        violations.push(
          `acknowledged write #${write.op.id} of ${key} (${wanted ?? "delete"}) was lost: the key holds ${
            final?.value ?? "nothing"
          }`
        )
      }
    }
  }
  return { name: "lostWrites", violations }
}

const historyFold = (
  history: History<KvInput, KvOutput>,
  finals: ReadonlyMap<string, Final>,
  events: ReadonlyMap<string, ReadonlyArray<Event>>
): CheckOutcome => {
  const violations: Array<string> = []
  for (const [key, final] of finals) {
    const kept = events.get(key) ?? []
    for (let i = 1; i < kept.length; i++) {
      if (kept[i]!.seq <= kept[i - 1]!.seq) {
        violations.push(`${key}: history seq ${kept[i]!.seq} after ${kept[i - 1]!.seq}`)
      }
    }
    const newest = kept.at(-1)
    const folded: Final = newest !== undefined && (newest.op === "put" || newest.op === "keep-alive")
      ? { value: text(newest.value ?? new Uint8Array()), revision: newest.valueRevision ?? newest.revision }
      : undefined
    if (JSON.stringify(folded) !== JSON.stringify(final)) {
      violations.push(`${key}: history folds to ${JSON.stringify(folded)}, get answers ${JSON.stringify(final)}`)
    }
    const revisions = new Set(kept.map((e) => e.revision))
    for (const write of writesOf(history, key)) {
      const output = write.op.output
      // Deletes return no revision, and an atomic write's delete of an absent key appends nothing.
      if (isPending(write.op) || write.value === undefined || output?._tag !== "Ok" || output.revision === undefined) {
        continue
      }
      if (!revisions.has(output.revision)) {
        violations.push(
          `${key}: acknowledged write #${write.op.id} ${
            describeKv(write.op.input, output)
          } is not in its history (newest: ${kept.slice(-5).map((e) => `${e.seq}:${e.op}@${e.revision}`).join(" ")})`
        )
      }
    }
  }
  return { name: "historyFold", violations }
}

/** The expiring keys' events as the store's history and the raw table have them, read one right after the other. */
interface ExpirySnapshot {
  readonly raw: ReadonlyMap<string, RawKey>
  readonly events: ReadonlyMap<string, ReadonlyArray<Event>>
  readonly now: number
}

/**
 * A snapshot; without `client` the raw table is not read (it holds the whole namespace's history area, too much to
 * read every second) and the store's history stands in for it, which is enough to wait for the workers.
 */
const expirySnapshot = (store: Store["Service"], record: CampaignRecord, client?: DynamoDBClient) =>
  Effect.gen(function*() {
    const events = new Map<string, ReadonlyArray<Event>>()
    for (const key of ttlKeys) events.set(key, yield* eventsOf(store, key))
    const raw = client === undefined
      ? new Map(
        [...events].map(([key, kept]) =>
          [key, {
            events: new Map(
              kept.map((e) => [e.seq, { op: e.op, expires: e.expires, revision: e.revision, where: ["store"] }])
            ),
            conflicts: []
          }] as const
        )
      )
      : yield* Effect.promise(() => rawEvents(client, record))
    return { raw, events, now: Date.now() } satisfies ExpirySnapshot
  })

/** How long after a value expired its `expire` event may still be missing (the expiry projection's lag). */
const expiryGraceMillis = 4000

/**
 * Per expiring key, from the raw table: no two `expire` events follow one value, each follows a value, and a value
 * expired more than `expiryGraceMillis` ago with nothing after it is missing its `expire` event. The store's own
 * `history` must count the same `expire` events.
 */
const expiry = ({ events, now, raw }: ExpirySnapshot): CheckOutcome => {
  const graceMillis = expiryGraceMillis
  const violations: Array<string> = []
  let expired = 0
  for (const key of ttlKeys) {
    const rawKey = raw.get(key)
    for (const conflict of rawKey?.conflicts ?? []) violations.push(`${key}: copies disagree at ${conflict}`)
    const kept = [...(rawKey?.events ?? new Map<number, RawEvent>()).entries()].sort((a, b) => a[0] - b[0])
    kept.forEach(([seq, event], i) => {
      const next = kept[i + 1]
      const previous = kept[i - 1]
      if (event.op === "expire") {
        expired++
        if (next?.[1].op === "expire") violations.push(`${key}: two expire events in a row (seq ${seq}, ${next[0]})`)
        if (previous === undefined || (previous[1].op !== "put" && previous[1].op !== "keep-alive")) {
          violations.push(`${key}: expire event seq ${seq} does not follow a value`)
        }
      }
      if (
        event.op === "put" && event.expires !== undefined && event.expires < now - graceMillis && next === undefined
      ) {
        violations.push(`${key}: put seq ${seq} expired at ${event.expires} but has no expire event`)
      }
    })
    const rawCount = kept.filter(([, e]) => e.op === "expire").length
    const storeCount = (events.get(key) ?? []).filter((e) => e.op === "expire").length
    if (rawCount !== storeCount) {
      const stored = new Map((events.get(key) ?? []).map((e) => [e.seq, e]))
      const differing = [...new Set([...stored.keys(), ...kept.map(([seq]) => seq)])].sort((a, b) => a - b)
        .filter((seq) => {
          const inTable = rawKey?.events.get(seq)
          return inTable?.op !== stored.get(seq)?.op || inTable?.revision !== stored.get(seq)?.revision
        })
        .map((seq) => {
          const inTable = rawKey?.events.get(seq)
          const inStore = stored.get(seq)
          return `seq ${seq}: table ${
            inTable === undefined ? "none" : `${inTable.op}@${inTable.revision} (${inTable.where.join("+")})`
          }, store ${inStore === undefined ? "none" : `${inStore.op}@${inStore.revision}`}`
        })
      violations.push(
        `${key}: the table holds ${rawCount} expire events, the store's history shows ${storeCount}; ${
          differing.join("; ")
        }`
      )
    }
  }
  return { name: "expiry", violations, note: `${expired} expire events` }
}

const replica = async (record: CampaignRecord, finals: ReadonlyMap<string, Final>): Promise<CheckOutcome> => {
  const wanted = JSON.stringify(
    [...finals].filter(([, f]) => f !== undefined).map(([key, f]) => ({ key, value: f!.value, revision: f!.revision }))
      .sort((a, b) => (a.key < b.key ? -1 : 1))
  )
  let last = "(no dump)"
  // Only a worker owning the stream's shard is fed; one of them has to converge.
  const deadline = Date.now() + 60_000
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    for (const worker of record.workers) {
      const dump = await worker.dump(2000)
      if (dump === undefined) continue
      last = JSON.stringify([...dump.dump].sort((a, b) => (a.key < b.key ? -1 : 1)))
      if (last === wanted) return { name: "replica", violations: [], note: `converged after ${attempt} polls` }
    }
    await sleep(1000)
  }
  return { name: "replica", violations: [`no worker's replica converged: want ${wanted}, last ${last}`] }
}

/**
 * The workers' `IndexView` (a table both keep) comes to file exactly the final `/kv/` items, each under its value's
 * bucket: no ghost entry left under an old value, none missing.
 */
const index = (
  context: Context.Context<EventTable | DataKeys | Dynamo>,
  finals: ReadonlyMap<string, Final>
) =>
  Effect.gen(function*() {
    const byValue = yield* Effect.provide(
      IndexView.make({
        name: indexName,
        prefix: "/kv/",
        indexOf: (item) => indexOf(text(item.value))
      }),
      context
    )
    const wanted = JSON.stringify(
      [...finals].filter(([, f]) => f !== undefined).map(([key, f]) => [indexOf(f!.value), key, f!.value, f!.revision])
        .sort()
    )
    let last = ""
    const deadline = Date.now() + 60_000
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const filed = yield* Effect.forEach(indexBuckets, (bucket) =>
        Effect.map(byValue.view.query(bucket), (items) =>
          items.map((item) => [bucket, item.key, text(item.value), item.revision ?? ""])))
      last = JSON.stringify(filed.flat().sort())
      if (last === wanted) {
        return { name: "index", violations: [], note: `converged after ${attempt} polls` } as CheckOutcome
      }
      yield* Effect.sleep(1000)
    }
    return {
      name: "index",
      violations: [`the index view did not converge: want ${wanted}, last ${last}`]
    } as CheckOutcome
  })

/** Runs every check of a healed campaign. */
export const checkAll = async (
  record: CampaignRecord,
  endpoint: string,
  client: DynamoDBClient,
  log: (line: string) => void = () => {}
): Promise<ReadonlyArray<CheckOutcome>> => {
  const began = Date.now()
  const timed = async <A>(name: string, check: () => A | Promise<A>): Promise<A> => {
    const at = Date.now()
    const outcome = await check()
    log(`check ${name} took ${Date.now() - at} ms (${Date.now() - began} ms into the checks)`)
    return outcome
  }
  const gathered = await Effect.runPromise(
    Effect.scoped(Effect.gen(function*() {
      const context = yield* openStore(record, endpoint)
      const store = Context.get(context, Store)
      const finals = new Map<string, Final>()
      const events = new Map<string, ReadonlyArray<Event>>()
      for (const key of record.kvKeys) finals.set(key, yield* finalState(store, key))
      for (const key of record.kvKeys) events.set(key, yield* eventsOf(store, key))
      // The workers record expiries: read the store's history and the raw table together until both agree and
      // nothing that expired a while ago lacks its expire event (or 30 s pass; the check then says what is wrong).
      // Every value written with an expiry has expired by now (the longest lives 2.5 s, the faults stopped earlier), so
      // once each has its expire event no more come, and the one read of the raw table after that is stable.
      let settled = yield* expirySnapshot(store, record)
      for (let waited = 0; waited < 30 && expiry(settled).violations.length > 0; waited++) {
        yield* Effect.sleep(1000)
        settled = yield* expirySnapshot(store, record)
      }
      const expiries = yield* expirySnapshot(store, record, client)
      log(`final state and histories read, expiries settled, ${Date.now() - began} ms into the checks`)
      const indexOutcome = yield* index(context, finals)
      return { finals, events, expiries, indexOutcome }
    })).pipe(Effect.provideService(References.MinimumLogLevel, "Error"), Effect.exit)
  )
  if (Exit.isFailure(gathered)) throw new Error(`the checks could not read the table: ${String(gathered.cause)}`)
  const { events, expiries, finals, indexOutcome } = gathered.value
  const history = withFinalReads(record.history, finals)
  log(`final state, histories and index read in ${Date.now() - began} ms`)
  return [
    await timed("linearizable", () => linearizable(history)),
    lostWrites(record.history, finals),
    expiry(expiries),
    historyFold(record.history, finals, events),
    await timed("replica", () => replica(record, finals)),
    indexOutcome,
    await timed(
      "plaintext",
      () => plaintext(client, [record.table, `${record.table}.view.${indexName}`], record.values)
    )
  ]
}
