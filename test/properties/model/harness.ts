/**
 * Shared plumbing of the model-based and TTL property tests: one TestClock
 * runtime and one table per test file, a fresh namespace (so a fresh, empty
 * store) per property run, two store instances per run (separate actor
 * systems, as two processes), compaction of its namespace, raw views of the table, and fast-check settings
 * from the environment (FC_SEED, FC_RUNS, FC_PATH, FC_REPLAY_PATH).
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { Clock, Effect, Exit, ManagedRuntime, Scope } from "effect"
import type { Result } from "effect"
import { TestClock } from "effect/testing"
import fc from "fast-check"
import { randomUUID } from "node:crypto"
import type { Layout } from "../../../src/domain/Partitioning.ts"
import type { Retention } from "../../../src/domain/Retention.ts"
import type { SealedPrefix } from "../../../src/domain/SealedKeys.ts"
import { defaultSettleMillis, defaultWriteFence } from "../../../src/domain/WriteFence.ts"
import type { WriteFence } from "../../../src/domain/WriteFence.ts"
import { Attr } from "../../../src/infra/EventRecord.ts"
import type { Store } from "../../../src/programs/store/Store.ts"
import { defaultStoreOptions } from "../../../src/programs/store/Store.ts"
import { rawGraveSeq, rawKeyItems } from "../../support/RawTable.ts"
import {
  freshTableName,
  makeClient,
  openCompaction,
  openStore,
  provisionTable,
  storedKeyOf
} from "../../support/TestStore.ts"
import type { TestTable } from "../../support/TestStore.ts"

export type StoreService = Store["Service"]

/** fast-check settings: a fixed seed, a run count, and a failure's path to replay. */
export const fcParameters = (defaultRuns = 30) => {
  const path = process.env["FC_PATH"]
  return {
    seed: Number(process.env["FC_SEED"] ?? 20261125),
    numRuns: Number(process.env["FC_RUNS"] ?? defaultRuns),
    ...(path !== undefined && path !== "" ? { path } : {})
  }
}

/**
 * fast-check settings and a vitest timeout for a property: the timeout grows
 * with the run count (soaks), never below the suite's 60 s, and fast-check
 * stops 15 s before it, so a long shrink still reports the smallest
 * counterexample found so far instead of timing out silently.
 */
export const budget = (defaultRuns: number, millisPerRun: number) => {
  const parameters = fcParameters(defaultRuns)
  const timeout = Math.max(60_000, parameters.numRuns * millisPerRun)
  return { timeout, parameters: { ...parameters, plugins: [fc.interruptAfterTimeLimit(timeout - 15_000)] } }
}

/** The `replayPath` of `fc.commands` printed with a failing command sequence (`/*replayPath="…"*\/`). */
export const replayPath = (): { readonly replayPath?: string } => {
  const value = process.env["FC_REPLAY_PATH"]
  return value !== undefined && value !== "" ? { replayPath: value } : {}
}

/** The start of the test clock: a realistic epoch, so expiries near it are ordinary timestamps. */
export const epoch = Date.UTC(2026, 10, 25)

/** One run: a fresh namespace with two store instances on it, sharing the file's TestClock. */
export interface Run {
  readonly location: TestTable
  /** The two instances; `restart` replaces one. */
  readonly stores: [StoreService, StoreService]
  /** Replaces instance `via` by a fresh one (a restarted process: no cached key state). */
  readonly restart: (via: number) => Promise<void>
  /** Runs an effect under the TestClock; typed failures come back as a Result, defects reject. */
  readonly exec: <A, E>(effect: Effect.Effect<A, E>) => Promise<Result.Result<A, E>>
  /** The TestClock's time. */
  readonly now: () => Promise<number>
  /** Moves the TestClock (and so every expiry) forward. */
  readonly advance: (millis: number) => Promise<void>
  /** Compacts the whole namespace (the history projection's rebuild); returns how many keys it looked at. */
  readonly compact: (retention: Retention) => Promise<Result.Result<number, unknown>>
  /** The seqs of a key's live events, oldest first, and the seq of its grave. */
  readonly seqs: (key: string) => Promise<{ readonly live: ReadonlyArray<number>; readonly grave: number | undefined }>
  /** How many raw `expire` events the key has in the table. */
  readonly expireCount: (key: string) => Promise<number>
  readonly close: () => Promise<void>
}

/** The file's runtime and table. Call `dispose` in afterAll. */
export interface PropertyEnvironment {
  readonly openRun: () => Promise<Run>
  readonly dispose: () => Promise<void>
}

/**
 * How a file's runs fence writers against compaction (see `WriteFence`), in TestClock time: stores decide only on
 * states at most `fence.maxStateAgeMillis` old, and `compact` moves only events settled for `settleMillis`.
 */
export interface FenceSettings {
  readonly fence: WriteFence
  readonly settleMillis: number
}

/** The store defaults, with compaction as safe as they allow. */
export const defaultFenceSettings: FenceSettings = { fence: defaultWriteFence, settleMillis: defaultSettleMillis }

export const makeEnvironment = (
  label: string,
  settings: FenceSettings = defaultFenceSettings,
  /** Sealed prefixes the stores run with (see `SealedKeys`); raw reads then look keys up by their stored form. */
  sealed: ReadonlyArray<SealedPrefix> = [],
  /** Partitioned prefixes the stores run with (see `Partitioning`); raw reads route by them too. */
  partitions?: Layout | undefined
): PropertyEnvironment => {
  const runtime = ManagedRuntime.make(TestClock.layer({ warningDelay: "1 hour" }))
  const client = makeClient()
  let table: Promise<TestTable> | undefined
  let started = false
  const openRun = async (): Promise<Run> => {
    table ??= runtime.runPromise(Effect.orDie(provisionTable(client, freshTableName(label))))
    const location: TestTable = { table: (await table).table, namespace: `run-${randomUUID()}`, partitions }
    if (!started) {
      started = true
      await runtime.runPromise(TestClock.setTime(epoch))
    }
    const scope = Scope.makeUnsafe()
    const storeOptions = {
      actors: { ...defaultStoreOptions.actors, fence: settings.fence },
      atomicWrite: { ...defaultStoreOptions.atomicWrite, fence: settings.fence },
      sealed
    }
    const storedKeys = new Map<string, string>()
    const stored = async (key: string): Promise<string> => {
      if (sealed.length === 0) return key
      const known = storedKeys.get(key) ?? await runtime.runPromise(storedKeyOf(location, sealed, key, client))
      storedKeys.set(key, known)
      return known
    }
    const open = openStore(location, { client, storeOptions }).pipe(Scope.provide(scope))
    const stores: [StoreService, StoreService] = await runtime.runPromise(Effect.all([open, open]))
    const compaction = await runtime.runPromise(
      openCompaction(location, client).pipe(Scope.provide(scope))
    )
    return {
      location,
      stores,
      exec: (effect) => runtime.runPromise(Effect.result(effect)),
      now: () => runtime.runPromise(Clock.currentTimeMillis),
      advance: (millis) => runtime.runPromise(TestClock.adjust(millis)),
      restart: async (via) => {
        stores[via] = await runtime.runPromise(open)
      },
      compact: (retention) =>
        runtime.runPromise(
          Effect.result(Effect.map(
            compaction.all(() => Effect.void, { retention, settleMillis: settings.settleMillis }),
            (pass) => pass.keys
          ))
        ),
      seqs: async (key) => ({
        live: (await rawKeyItems(client, location, await stored(key))).map((item) => Number(item[Attr.seq]!.N))
          .reverse(),
        grave: await rawGraveSeq(client, location, await stored(key))
      }),
      expireCount: async (key) =>
        (await rawOps(client, location, await stored(key))).filter((op) => op === "expire").length,
      close: () => runtime.runPromise(Scope.close(scope, Exit.void))
    }
  }
  return {
    openRun,
    dispose: async () => {
      await runtime.dispose()
      client.destroy()
    }
  }
}

/** The ops of a key's raw events, oldest first: a consistent Query on pk = namespace over the key's sort keys. */
export const rawOps = async (client: DynamoDBClient, location: TestTable, key: string): Promise<Array<string>> =>
  (await rawKeyItems(client, location, key)).map((item) => item[Attr.op]?.S ?? "?").reverse()

/** A short readable rendering of a value: its length and first bytes. */
export const showBytes = (value: Uint8Array): string => {
  const hex = Buffer.from(value.subarray(0, 4)).toString("hex")
  return `${value.length}B${value.length > 0 ? `:${hex}${value.length > 4 ? "…" : ""}` : ""}`
}

/** A readable rendering of an expiry relative to the clock at which the command ran. */
export const showExpiry = (
  delta: number | undefined
): string => (delta === undefined ? "∞" : `now${delta < 0 ? "" : "+"}${delta}`)
