/**
 * The store under DynamoDB faults: a random workload over a few keys from two
 * store instances runs through clients whose SDK middleware (inside the SDK's
 * retry loop) throttles, answers 500, times out before sending, or sends and
 * then loses the response, at attempts chosen by fast-check. Requests really
 * go to DynamoDB Local. Each call has its own fault schedule, consumed by its
 * request attempts in order (data-key reads and writes included); the SDK
 * retries up to 3 attempts on instance 0 and 2 on instance 1. Every request's
 * event writes are recorded, so every event in the table is traced to the call
 * that wrote it. Checked: (a) acknowledged writes are in the key's history
 * under the revision they returned, in call order; (b) seqs are dense, no event
 * twice, a call writes at most one event per key (none if it failed with a
 * decision such as AlreadyExists), every event belongs to a call; (c) failures
 * are typed, and Throttled/StorageFailure only after the SDK gave up on a fault;
 * (d) a fresh instance reads what the table's last event says, which is the
 * last acknowledged write's value when no maybe-landed failure followed it.
 *
 * Replay a failure: FC_SEED=<seed> FC_PATH=<path>; FC_RUNS=<n> for more runs.
 */
import { Effect } from "effect"
import fc from "fast-check"
import { randomUUID } from "node:crypto"
import { afterAll, describe, expect, it } from "vitest"
import { Action, Condition } from "../../../src/domain/AtomicWrite.ts"
import type { ConditionalAction } from "../../../src/domain/AtomicWrite.ts"
import type { Item, Lease } from "../../../src/domain/Item.ts"
import type { Store } from "../../../src/programs/store/Store.ts"
import { freshTableName, makeClient, openStore, provisionTable } from "../../support/TestStore.ts"
import type { TestTable } from "../../support/TestStore.ts"
import {
  eventWrites,
  faultArb,
  faultyDynamo,
  fcParameters,
  outcomeOf,
  rawHistory,
  short,
  showOutcome
} from "./support.ts"
import type { Fault, Outcome, RawEvent } from "./support.ts"

const admin = makeClient()
const tableOnce = Effect.runPromise(provisionTable(admin, freshTableName("faults-dynamo")))
afterAll(() => admin.destroy())

const keys = ["/f/a", "/f/b", "/f/c"] as const
type Key = (typeof keys)[number]
type Expiry = "none" | "past" | "future"
interface Entry {
  readonly key: Key
  readonly condition: "whatever" | "exists" | "notExists" | "revision"
  readonly action: "put" | "delete" | "nop"
}
type Op =
  | { readonly _tag: "put" | "create" | "update"; readonly key: Key; readonly expiry: Expiry }
  | { readonly _tag: "delete" | "get"; readonly key: Key }
  | { readonly _tag: "compareAndSwap"; readonly key: Key; readonly expected: "current" | "stale" }
  | {
    readonly _tag: "keepAlive"
    readonly key: Key
    readonly lease: "current" | "any" | "stale"
    readonly expiry: Expiry
  }
  | { readonly _tag: "atomicWrite"; readonly entries: ReadonlyArray<Entry> }
interface Step {
  readonly store: 0 | 1
  readonly op: Op
  readonly faults: ReadonlyArray<Fault>
}

const key = fc.constantFrom(...keys)
const expiry = fc.constantFrom<Expiry>("none", "none", "past", "future")
const op: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ _tag: fc.constantFrom("put", "create", "update"), key, expiry }), weight: 4 },
  { arbitrary: fc.record({ _tag: fc.constantFrom("delete", "get"), key }), weight: 2 },
  {
    arbitrary: fc.record({
      _tag: fc.constant("compareAndSwap"),
      key,
      expected: fc.constantFrom("current", "current", "stale")
    }),
    weight: 2
  },
  {
    arbitrary: fc.record({
      _tag: fc.constant("keepAlive"),
      key,
      lease: fc.constantFrom("current", "any", "stale"),
      expiry
    }),
    weight: 1
  },
  {
    arbitrary: fc.record({
      _tag: fc.constant("atomicWrite"),
      entries: fc.uniqueArray(
        fc.record({
          key,
          condition: fc.constantFrom("whatever", "whatever", "exists", "notExists", "revision"),
          action: fc.constantFrom("put", "put", "delete", "nop")
        }),
        { minLength: 1, maxLength: 3, selector: (entry) => entry.key }
      ).map((entries) =>
        entries.some((e) => e.action !== "nop")
          ? entries
          : [{ ...entries[0]!, action: "put" as const }, ...entries.slice(1)]
      )
    }),
    weight: 2
  }
)
const step = fc.record({ store: fc.constantFrom<0 | 1>(0, 1), op, faults: fc.array(faultArb, { maxLength: 6 }) })
/** A round is one call, or two calls at once, one on each instance. */
const round: fc.Arbitrary<ReadonlyArray<Step>> = fc.oneof(
  { arbitrary: step.map((s) => [s]), weight: 3 },
  {
    arbitrary: fc.tuple(step, step).map(([a, b]) => [{ ...a, store: 0 as const }, { ...b, store: 1 as const }]),
    weight: 1
  }
)
const workload = fc.array(round, { minLength: 1, maxLength: 12 })

/** What a call means to do to a key. */
type Intent =
  | { readonly _tag: "value"; readonly value: string; readonly expires: number | undefined }
  | { readonly _tag: "delete" }
  | { readonly _tag: "keep"; readonly expires: number | undefined }

interface Call {
  readonly id: number
  readonly tag: Op["_tag"]
  readonly reads: string | undefined
  readonly round: number
  readonly concurrent: boolean
  readonly store: 0 | 1
  readonly faults: Array<Fault>
  readonly requests: Array<string>
  readonly injected: Array<Fault>
  /** Faults on the last attempt of a request: the SDK gave up and passed them on. */
  readonly exhausted: Array<Fault>
  readonly attempted: Array<readonly [string, string]>
  text: string
  intents: Map<string, Intent>
  outcome: Outcome | undefined
}

const infraTags = ["Throttled", "StorageFailure", "WriteContention"]
/** Failures that decide the call did not apply: it must have written nothing but expiries. */
const decisionTags = ["AlreadyExists", "NotFound", "CompareFailed", "IncorrectRevision", "ConditionFailed"]
const commandTags: Record<Op["_tag"], ReadonlyArray<string>> = {
  put: [],
  create: ["AlreadyExists"],
  update: ["NotFound"],
  delete: ["NotFound"],
  get: ["NotFound"],
  compareAndSwap: ["CompareFailed"],
  keepAlive: ["NotFound", "IncorrectRevision"],
  atomicWrite: ["ConditionFailed"]
}
const noRevision = "00000000-0000-7000-8000-000000000000"
const encoder = new TextEncoder()
const decoder = new TextDecoder()

const isAcked = (call: Call) => call.outcome?._tag === "Success"
const failedWith = (call: Call, tags: ReadonlyArray<string>) =>
  call.outcome?._tag === "Failure" && tags.includes(call.outcome.tag)
/** The revision a successful write returned: a lease's, or an atomic write's shared one. */
const ackedRevision = (call: Call): string | undefined => {
  const value = call.outcome?._tag === "Success" ? call.outcome.value : undefined
  return typeof value === "string" ? value : (value as Partial<Lease> | undefined)?.revision
}

/** A step made concrete: the store call, its description, and what it means to do to each key. */
interface Resolved {
  readonly effect: Effect.Effect<unknown, unknown>
  readonly text: string
  readonly intents: ReadonlyArray<readonly [string, Intent]>
}
/** The value and revision each key was last acknowledged with, to aim leases, expectations and conditions. */
type Hints = Map<string, { readonly value?: string | undefined; readonly revision?: string | undefined }>

/** Turns a step into a store call; values are unique per call (`v<id>`, `v<id><key letter>` in atomic writes). */
const resolve = (step: Step, store: Store["Service"], id: number, hints: Hints): Resolved => {
  const now = Date.now()
  const expires = (e: Expiry) => (e === "past" ? now - 60_000 : e === "future" ? now + 3_600_000 : undefined)
  const item = (k: Key, e: Expiry) => ({ key: k, value: encoder.encode(`v${id}`), expires: expires(e) })
  const valueIntent = (e: Expiry): Intent => ({ _tag: "value", value: `v${id}`, expires: expires(e) })
  const o = step.op
  switch (o._tag) {
    case "put":
    case "create":
    case "update":
      return {
        effect: store[o._tag](item(o.key, o.expiry)),
        text: `${o._tag} ${o.key}=v${id} exp:${o.expiry}`,
        intents: [[o.key, valueIntent(o.expiry)]]
      }
    case "delete":
      return { effect: store.delete(o.key), text: `delete ${o.key}`, intents: [[o.key, { _tag: "delete" }]] }
    case "get":
      return { effect: store.get(o.key), text: `get ${o.key}`, intents: [] }
    case "compareAndSwap": {
      const expected = o.expected === "current" ? hints.get(o.key)?.value ?? "none" : "stale"
      return {
        effect: store.compareAndSwap({ key: o.key, value: encoder.encode(expected) }, item(o.key, "none")),
        text: `compareAndSwap ${o.key} ${expected}->v${id}`,
        intents: [[o.key, valueIntent("none")]]
      }
    }
    case "keepAlive": {
      const revision = o.lease === "current" ? hints.get(o.key)?.revision ?? "" : o.lease === "stale" ? noRevision : ""
      return {
        effect: store.keepAlive({ key: o.key, revision }, expires(o.expiry)),
        text: `keepAlive ${o.key}@${short(revision)} exp:${o.expiry}`,
        intents: [[o.key, { _tag: "keep", expires: expires(o.expiry) }]]
      }
    }
    case "atomicWrite": {
      const actions: Array<ConditionalAction> = o.entries.map((e) => ({
        key: e.key,
        condition: e.condition === "revision"
          ? Condition.revision(hints.get(e.key)?.revision ?? noRevision)
          : Condition[e.condition],
        action: e.action === "put" ? Action.put(encoder.encode(`v${id}${e.key.slice(-1)}`)) : Action[e.action]
      }))
      return {
        effect: store.atomicWrite(actions),
        text: `atomicWrite ${
          o.entries.map((e) => `${e.key}:${e.condition}:${e.action === "put" ? `v${id}${e.key.slice(-1)}` : e.action}`)
            .join(" ")
        }`,
        intents: o.entries.flatMap((e): Array<readonly [string, Intent]> =>
          e.action === "put" ?
            [[e.key, { _tag: "value", value: `v${id}${e.key.slice(-1)}`, expires: undefined }]]
            : e.action === "delete"
            ? [[e.key, { _tag: "delete" }]]
            : []
        )
      }
    }
  }
}

/** A call's result for the log: the revision it returned and, for reads, the value. */
const showResult = (result: unknown): string => {
  if (typeof result === "string") return `rev ${short(result)}`
  const item = result as Partial<Item> | undefined
  return item?.revision === undefined
    ? ""
    : `rev ${short(item.revision)}${item.value ? ` value ${decoder.decode(item.value)}` : ""}`
}

const showCall = (call: Call) =>
  `  #${String(call.id).padStart(2)} r${call.round}${call.concurrent ? "‖" : " "} s${call.store} ${call.text}` +
  `\n      requests: ${call.requests.join(" ") || "-"}\n      → ${showOutcome(call.outcome, showResult)}`

/** Runs a workload against two faulty instances, then checks the table and a fresh instance; returns the problems found and the log. */
const runWorkload = (rounds: ReadonlyArray<ReadonlyArray<Step>>) =>
  Effect.gen(function*() {
    const location: TestTable = {
      table: (yield* Effect.promise(() => tableOnce)).table,
      namespace: `run-${randomUUID()}`
    }
    const calls: Array<Call> = []
    const current: [Call | undefined, Call | undefined] = [undefined, undefined]
    const stores = yield* Effect.forEach([0, 1] as const, (index) => {
      // Instance 1's SDK gives up sooner, so failed calls (some of whose writes landed) are common too.
      const client = faultyDynamo(index === 0 ? 3 : 2, () => current[index]?.faults.shift() ?? "pass", (attempt) => {
        const call = current[index]
        if (call === undefined) return
        call.requests.push(
          attempt.fault === "pass"
            ? attempt.command
            : `${attempt.command}!${attempt.fault}${attempt.last ? "(gave up)" : ""}`
        )
        if (attempt.fault !== "pass") call.injected.push(attempt.fault)
        if (attempt.fault !== "pass" && attempt.last) call.exhausted.push(attempt.fault)
        call.attempted.push(...eventWrites(location, attempt.command, attempt.input))
      })
      return Effect.andThen(
        Effect.addFinalizer(() => Effect.sync(() => client.destroy())),
        openStore(location, { client })
      )
    })
    const hints: Hints = new Map()
    for (const [index, steps] of rounds.entries()) {
      const started = steps.map((s) => {
        const call: Call = {
          id: calls.length,
          tag: s.op._tag,
          reads: s.op._tag === "get" ? s.op.key : undefined,
          round: index,
          concurrent: steps.length > 1,
          store: s.store,
          faults: [...s.faults],
          requests: [],
          injected: [],
          exhausted: [],
          attempted: [],
          text: "",
          intents: new Map(),
          outcome: undefined
        }
        const resolved = resolve(s, stores[s.store]!, call.id, hints)
        call.text = `${resolved.text}  faults[${s.faults.join(",")}]`
        call.intents = new Map(resolved.intents)
        calls.push(call)
        return { call, effect: resolved.effect }
      })
      yield* Effect.forEach(started, ({ call, effect }) =>
        Effect.sync(() => (current[call.store] = call)).pipe(
          Effect.andThen(Effect.exit(effect)),
          Effect.map((exit) => (call.outcome = outcomeOf(exit))),
          Effect.ensuring(Effect.sync(() => (current[call.store] = undefined)))
        ), { concurrency: "unbounded", discard: true })
      for (const { call } of started) {
        const revision = ackedRevision(call)
        if (!isAcked(call)) continue
        for (const [k, intent] of call.intents) {
          if (intent._tag === "delete") hints.delete(k)
          else hints.set(k, { value: intent._tag === "value" ? intent.value : hints.get(k)?.value, revision })
        }
      }
    }
    const histories = new Map<string, ReadonlyArray<RawEvent>>()
    for (const k of keys) histories.set(k, yield* rawHistory(admin, location, k))
    const fresh = yield* openStore(location, { client: admin })
    const reads = new Map<string, Outcome>()
    for (const k of keys) reads.set(k, outcomeOf(yield* Effect.exit(fresh.get(k))))
    const problems = check(calls, histories, reads, Date.now())
    const table = keys.map((k) =>
      `  ${k}: ${
        (histories.get(k) ?? []).map((e) =>
          `${e.seq}:${e.op}${e.op === "keep-alive" ? `(${short(e.valueRevision)})` : ""} ${short(e.revision)}`
        ).join(" · ") || "-"
      }` +
      `\n      fresh get → ${showOutcome(reads.get(k), showResult)}`
    )
    const log = `Calls (‖ = concurrent with the other instance; !fault = injected):\n${
      calls.map(showCall).join("\n")
    }\nTable:\n${table.join("\n")}`
    return { problems, log, calls }
  }).pipe(Effect.scoped)

/** The properties, as a list of violations. */
const check = (
  calls: ReadonlyArray<Call>,
  histories: Map<string, ReadonlyArray<RawEvent>>,
  reads: Map<string, Outcome>,
  now: number
) => {
  const problems: Array<string> = []
  const owner = new Map<string, Call>()
  for (const call of calls) for (const [k, rev] of call.attempted) owner.set(`${k}|${rev}`, call)
  const intendedValue = (k: string, revision: string) => {
    const intent = owner.get(`${k}|${revision}`)?.intents.get(k)
    return intent?._tag === "value" ? intent.value : undefined
  }

  // (c) Every failure is a typed error the operation can have; Throttled and StorageFailure only after the SDK gave up on a fault.
  for (const call of calls) {
    const outcome = call.outcome!
    const op = call.tag
    if (outcome._tag === "Untyped") problems.push(`#${call.id} failed with something untyped: ${outcome.pretty}`)
    if (outcome._tag !== "Failure") continue
    if (![...commandTags[op], ...infraTags].includes(outcome.tag)) {
      problems.push(`#${call.id} ${op} failed with ${outcome.tag}`)
    }
    if (outcome.tag === "Throttled" && !call.exhausted.includes("throttle")) {
      problems.push(`#${call.id} Throttled, but no request ran out of retries on a throttle`)
    }
    if (outcome.tag === "StorageFailure" && !call.exhausted.some((f) => f !== "throttle")) {
      problems.push(`#${call.id} StorageFailure, but no request ran out of retries on a 5xx, timeout or lost response`)
    }
  }

  for (const k of keys) {
    const events = histories.get(k) ?? []
    // (b) Seqs are dense from 1, no event id twice, every event was written by a call, each call's events fit it.
    events.forEach((e, i) => {
      if (e.seq !== i + 1) problems.push(`${k}: seq ${e.seq} at position ${i + 1} (seqs must be dense from 1)`)
      if (events.findIndex((other) => other.revision === e.revision) !== i) {
        problems.push(`${k}: event id ${e.revision} appears twice`)
      }
      if (!owner.has(`${k}|${e.revision}`)) {
        problems.push(`${k}: event ${e.seq} (${e.op} ${e.revision}) was written by no call`)
      }
      if (e.op === "expire") {
        const before = events[i - 1]
        if (
          !before || (before.op !== "put" && before.op !== "keep-alive") || before.expires === undefined ||
          before.expires > e.timestamp
        ) {
          problems.push(`${k}: expire event ${e.seq} does not follow an expired value`)
        }
      }
    })
    for (const call of calls) {
      const mine = events.filter((e) => e.op !== "expire" && owner.get(`${k}|${e.revision}`) === call)
      const intent = call.intents.get(k)
      const rev = ackedRevision(call)
      const label = `#${call.id} on ${k}`
      if (mine.length > 1) {
        problems.push(
          `${label}: ${mine.length} events (${mine.map((e) => e.seq).join(", ")}), a call writes at most one`
        )
      }
      if (mine.length > 0 && intent === undefined) {
        problems.push(`${label}: wrote ${mine[0]!.op} though it writes nothing there`)
      }
      if (mine.length > 0 && failedWith(call, decisionTags)) {
        problems.push(`${label}: failed with ${(call.outcome as { tag: string }).tag} yet wrote event ${mine[0]!.seq}`)
      }
      const kind = intent?._tag === "value" ? "put" : intent?._tag === "keep" ? "keep-alive" : "delete"
      for (const e of mine) if (intent && e.op !== kind) problems.push(`${label}: wrote ${e.op}, meant ${kind}`)
      // (a) An acknowledged write is in the key's history, under the revision it returned.
      if (!isAcked(call) || intent === undefined) continue
      const optional = intent._tag === "delete" && call.tag === "atomicWrite"
      if (mine.length === 0 && !optional) problems.push(`${label}: acknowledged (${short(rev)}) but not in the history`)
      for (const e of mine) {
        const found = intent._tag === "keep" ? e.valueRevision : e.revision
        if (rev !== undefined && found !== rev) {
          problems.push(`${label}: acknowledged ${short(rev)} but its event ${e.seq} names ${short(found)}`)
        }
      }
    }
    // Acknowledged writes of different rounds are in the history in the order they were made.
    const acked = calls.filter((c) => isAcked(c) && c.intents.has(k)).map((c) => ({
      c,
      seq: events.find((e) => e.op !== "expire" && owner.get(`${k}|${e.revision}`) === c)?.seq
    })).filter((a) => a.seq !== undefined)
    for (const a of acked) {
      for (const b of acked) {
        if (b.c.round > a.c.round && b.seq! < a.seq!) {
          problems.push(`${k}: #${b.c.id} (seq ${b.seq}) lies before the earlier #${a.c.id} (seq ${a.seq})`)
        }
      }
    }
    // Successful reads under faults return a value that was written, under its revision.
    for (const call of calls.filter((c) => c.reads === k && isAcked(c))) {
      const item = (call.outcome as { value: Item }).value
      if (intendedValue(k, item.revision) !== decoder.decode(item.value)) {
        problems.push(`#${call.id}: read ${decoder.decode(item.value)} under ${short(item.revision)}`)
      }
    }

    // (d) A fresh instance reads what the table's last event says...
    const last = events.at(-1)
    const live =
      last && (last.op === "put" || last.op === "keep-alive") && (last.expires === undefined || last.expires > now)
        ? last
        : undefined
    const expected = live
      ? { revision: live.valueRevision ?? live.revision, value: intendedValue(k, live.valueRevision ?? live.revision) }
      : undefined
    const read = reads.get(k)!
    const got = read._tag === "Success"
      ? { revision: (read.value as Item).revision, value: decoder.decode((read.value as Item).value) }
      : undefined
    if (read._tag !== "Success" && !(read._tag === "Failure" && read.tag === "NotFound")) {
      problems.push(`${k}: fresh read failed: ${showOutcome(read)}`)
    } else if (JSON.stringify(got) !== JSON.stringify(expected)) {
      problems.push(`${k}: fresh read ${JSON.stringify(got)}, the table's last event says ${JSON.stringify(expected)}`)
    }
    // ...which is the last acknowledged write's value when no failed write that may have landed came after it.
    const writers = calls.filter((c) => c.intents.has(k))
    const lastRound = Math.max(-1, ...writers.filter(isAcked).map((c) => c.round))
    if (writers.some((c) => c.round >= lastRound && failedWith(c, infraTags))) continue
    // In a concurrent round the later of two acknowledged writes is the one further down the history.
    const seqOf = (c: Call) => acked.find((a) => a.c === c)?.seq ?? 0
    const lastAcked = writers.filter((c) => isAcked(c) && c.round === lastRound).sort((a, b) => seqOf(b) - seqOf(a))[0]
    const intent = lastAcked?.intents.get(k)
    const value = intent?._tag === "value"
      ? intent.value
      : intent?._tag === "keep"
      ? intendedValue(k, ackedRevision(lastAcked!) ?? "")
      : undefined
    const stillLive = intent !== undefined && intent._tag !== "delete" &&
      (intent.expires === undefined || intent.expires > now)
    if ((stillLive ? value : undefined) !== got?.value) {
      problems.push(
        `${k}: fresh read ${got?.value ?? "nothing"}, but the last acknowledged write (#${lastAcked?.id ?? "-"}) left ${
          stillLive ? value : "nothing"
        }`
      )
    }
  }
  return problems
}

describe("the store under DynamoDB faults", () => {
  it(
    "loses no acknowledged write, doubles none, fails only with typed errors, and reads consistently afterwards",
    async () => {
      let runs = 0
      const stats = { calls: 0, acked: 0, failed: 0, injected: 0 }
      const property = fc.asyncProperty(workload, async (rounds) => {
        const { calls, log, problems } = await Effect.runPromise(runWorkload(rounds))
        runs++
        stats.calls += calls.length
        stats.acked += calls.filter(isAcked).length
        stats.failed += calls.filter((c) => failedWith(c, infraTags)).length
        stats.injected += calls.reduce((n, c) => n + c.injected.length, 0)
        if (process.env["FC_DEBUG"]) console.log(log)
        if (problems.length > 0) {
          throw new Error(`${problems.length} violation(s):\n${problems.map((p) => `  ✗ ${p}`).join("\n")}\n${log}`)
        }
      })
      // fast-check reports the shrunk run's error (its violations and operation log) as the cause.
      await fc.assert(property, fcParameters(15))
      // The runs really exercised faults, recoveries and failures.
      if (process.env["FC_DEBUG"]) console.log(`runs ${runs}: ${JSON.stringify(stats)}`)
      expect(runs).toBeGreaterThanOrEqual(fcParameters(15).numRuns)
      if (runs < 10) return
      expect(stats.injected).toBeGreaterThan(stats.calls / 4)
      expect(stats.acked).toBeGreaterThan(stats.calls / 4)
      expect(stats.failed).toBeGreaterThan(stats.calls / 50)
    },
    Math.max(120_000, fcParameters(15).numRuns * 5_000)
  )
})
