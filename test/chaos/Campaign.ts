/**
 * The fault campaign's controller: it provisions a table, starts one fault proxy and one process per writer and
 * per worker, drives the writers with seeded random operations (recording each call and answer on one logical
 * clock), injects proxy faults, kills, pauses and restarts as a seeded schedule says, then heals everything and
 * hands what it recorded to the checks (Checks.ts).
 *
 * Fence settings, and why compaction's settle time is safe with them: writers decide from a state at most
 * `maxStateAge` old and give an append `writeTimeout`. On this one machine there is no clock skew between
 * processes; a request reaches DynamoDB Local at most `maxLatency` after it was sent (the proxy never forwards
 * what it swallowed), and a writer paused between deciding and sending sends at most `maxPause` late. So the
 * late-delivery margin is `maxPause + maxLatency`, and `WriteFence.isSafe(settle, fence, margins)` is asserted
 * before the campaign starts.
 */
import { PutItemCommand } from "@aws-sdk/client-dynamodb"
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { Effect } from "effect"
import { randomBytes, randomUUID } from "node:crypto"
import { isSafe, minimumSettleMillis } from "../../src/domain/WriteFence.ts"
import type { Margins, WriteFence } from "../../src/domain/WriteFence.ts"
import { Dynamo } from "../../src/infra/Dynamo.ts"
import * as TableProvisioner from "../../src/infra/TableProvisioner.ts"
import type { History } from "../properties/linearizability/History.ts"
import { makeRecorder } from "../properties/linearizability/History.ts"
import type { KvAtomicEntry, KvInput, KvOutput } from "../properties/linearizability/KvModel.ts"
import * as Children from "./Children.ts"
import type { Child } from "./Children.ts"
import * as FaultProxy from "./FaultProxy.ts"
import type { FaultKind, FaultRates } from "./FaultProxy.ts"
import * as Prng from "./Prng.ts"
import type { ChaosInput, ChildEnv, PutTtl } from "./Protocol.ts"

/** What to run. */
export interface CampaignOptions {
  readonly seed: number
  /** How long faults and operations run (the heal and the checks come after). */
  readonly seconds: number
  readonly writers: number
  /** DynamoDB Local, e.g. http://127.0.0.1:8000. */
  readonly endpoint: string
  /** A raw client on DynamoDB Local (not proxied) for provisioning and the checks. */
  readonly client: DynamoDBClient
  readonly log?: ((line: string) => void) | undefined
}

/** The fence of the writers (and the worker's start-up check). */
export const fence: WriteFence = { maxStateAgeMillis: 1000, writeTimeoutMillis: 1000 }
/** The longest a writer is kept paused (longer than the write timeout, as the campaign means to test). */
export const maxPauseMillis = 2500
/** The proxy's faults while the campaign runs. */
export const rates: FaultRates = {
  latency: 0.05,
  maxLatencyMillis: 150,
  reset: 0.01,
  blackhole: 0.005,
  maxBlackholeMillis: 1500,
  lostResponse: 0.01
}

/** Late delivery on a local proxy: see the module's comment. */
export const margins: Margins = { skewMillis: 0, lateDeliveryMillis: maxPauseMillis + rates.maxLatencyMillis }
/** Compaction's settle time, above `minimumSettleMillis(fence, margins)`. */
export const settleMillis = minimumSettleMillis(fence, margins) + 2000

/**
 * How long one set of keys is used. Keys are retired as the run goes on (as Jepsen's independent keys are), so
 * each of the checker's partitions holds a bounded stretch of history however long the run: the search is
 * exponential in the pending operations of a partition.
 */
export const epochMillis = 10_000

/** The linearizability keys of an epoch; atomic writes pair the first with the second, the third with the fourth. */
export const kvKeysOf = (epoch: number): ReadonlyArray<string> =>
  Array.from({ length: 8 }, (_, i) => `/kv/e${epoch}-k${i}`)
/** Keys written with short expiries, for the expiry check. */
export const ttlKeys = Array.from({ length: 4 }, (_, i) => `/ttl/t${i}`)

/** One operation outside the linearizability model (a write with an expiry), with its answer. */
export interface TtlOp {
  readonly input: PutTtl
  readonly status: "ok" | "failed" | "indeterminate"
  readonly revision?: string | undefined
}

/** What a campaign did. */
export interface CampaignRecord {
  readonly seed: number
  readonly table: string
  readonly namespace: string
  /** The raw AES key every process used (base64), for the checks' own store. */
  readonly key: string
  readonly history: History<KvInput, KvOutput>
  /** Every linearizability key the run used. */
  readonly kvKeys: ReadonlyArray<string>
  readonly ttlOps: ReadonlyArray<TtlOp>
  /** Every value written (the plaintext check looks for each). */
  readonly values: ReadonlyArray<string>
  readonly operations: { ok: number; failed: number; indeterminate: number }
  /** Indeterminate operations by what the writer (or the controller) saw. */
  readonly indeterminateBy: Record<string, number>
  /** A few of the errors behind indeterminate operations. */
  readonly samples: ReadonlyArray<string>
  readonly faults: Record<FaultKind, number>
  readonly kills: number
  readonly pauses: number
  readonly restarts: number
  readonly workers: ReadonlyArray<Child>
  readonly proxies: ReadonlyArray<FaultProxy.FaultProxy>
}

const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

const dynamoTarget = (endpoint: string) => {
  const url = new URL(endpoint)
  if (url.hostname !== "127.0.0.1" && url.hostname !== "localhost") {
    throw new Error(`the fault campaign only targets loopback, not ${url.hostname}`)
  }
  return { host: "127.0.0.1", port: Number(url.port) }
}

/** What a writer client learned, to make conditions that can hold. */
interface Knowledge {
  readonly values: Map<string, Array<string>>
  readonly revisions: Map<string, Array<string>>
}

const learn = (known: Knowledge, key: string, output: KvOutput | undefined, value?: string) => {
  if (output === undefined || output._tag !== "Ok") return
  const remember = (map: Map<string, Array<string>>, item: string) => {
    const list = map.get(key) ?? []
    list.push(item)
    if (list.length > 6) list.shift()
    map.set(key, list)
  }
  const v = output.value ?? value
  if (v !== undefined) remember(known.values, v)
  if (output.revision !== undefined) remember(known.revisions, output.revision)
}

const nextInput = (
  prng: Prng.Prng,
  known: Knowledge,
  kvKeys: ReadonlyArray<string>,
  value: () => string
): ChaosInput => {
  const roll = prng.next()
  if (roll < 0.08) return { _tag: "PutTtl", key: prng.pick(ttlKeys), value: value(), ttlMillis: prng.int(500, 2500) }
  const key = prng.pick(kvKeys)
  const revision = () => prng.pick(known.revisions.get(key) ?? ["0"])
  if (roll < 0.3) return { _tag: "Get", key }
  if (roll < 0.45) return { _tag: "Put", key, value: value() }
  if (roll < 0.52) return { _tag: "Create", key, value: value() }
  if (roll < 0.58) return { _tag: "Update", key, value: value() }
  if (roll < 0.64) return { _tag: "Delete", key }
  if (roll < 0.72) {
    return { _tag: "CompareAndSwap", key, expected: prng.pick(known.values.get(key) ?? ["none"]), value: value() }
  }
  if (roll < 0.82) return { _tag: "ConditionalUpdate", key, revision: revision(), value: value() }
  if (roll < 0.86) return { _tag: "ConditionalDelete", key, revision: revision() }
  const pair = prng.chance(0.5) ? kvKeys.slice(0, 2) : kvKeys.slice(2, 4)
  const entries = pair.map((k): KvAtomicEntry => {
    const revisions = known.revisions.get(k)
    const condition = prng.chance(0.4) && revisions !== undefined
      ? { _tag: "Revision" as const, revision: prng.pick(revisions) }
      : prng.pick([{ _tag: "Whatever" as const }, { _tag: "Exists" as const }, { _tag: "NotExists" as const }])
    const action = prng.chance(0.75) ? { _tag: "Put" as const, value: value() } : { _tag: "Delete" as const }
    return { key: k, condition, action }
  })
  return { _tag: "AtomicWrite", entries }
}

/** Runs a campaign; `stop` (the returned record's processes are still up) is for the checks, then `close`. */
export const run = async (
  options: CampaignOptions
): Promise<{ record: CampaignRecord; close: () => Promise<void> }> => {
  const log = options.log ?? (() => {})
  if (!isSafe(settleMillis, fence, margins)) throw new Error("the campaign's settle time is unsafe for its fence")
  const prng = Prng.make(options.seed)
  const target = dynamoTarget(options.endpoint)
  const table = `chaos-${randomUUID()}`
  const namespace = "chaos"
  const key = randomBytes(32).toString("base64")
  await Effect.runPromise(
    TableProvisioner.ensureTable({ table, billingMode: "pay_per_request", readCapacityUnits: 5, writeCapacityUnits: 5 })
      .pipe(Effect.provideService(Dynamo, Dynamo.fromClient(options.client)))
  )
  // DynamoDB Local numbers stream records across tables: a first record keeps readers from a spurious trimmed shard.
  await options.client.send(
    new PutItemCommand({ TableName: table, Item: { pk: { S: "warm-up" }, sk: { B: new Uint8Array([0]) } } })
  )
  const env: Omit<ChildEnv, "CHAOS_ENDPOINT"> = {
    CHAOS_TABLE: table,
    CHAOS_NAMESPACE: namespace,
    CHAOS_KEY: key,
    CHAOS_MAX_STATE_AGE: String(fence.maxStateAgeMillis),
    CHAOS_WRITE_TIMEOUT: String(fence.writeTimeoutMillis),
    CHAOS_OP_TIMEOUT: "4000",
    CHAOS_SETTLE: String(settleMillis),
    CHAOS_LEASE_TABLE: `${table}.projections`,
    CHAOS_LEASE_MILLIS: "2000"
  }
  const proxies: Array<FaultProxy.FaultProxy> = []
  const children: Array<Child> = []
  const close = async () => {
    Children.killAll()
    await Promise.all(proxies.map((proxy) => proxy.close()))
  }
  try {
    for (let i = 0; i < options.writers + 2; i++) {
      const proxy = await FaultProxy.start(target, prng.fork())
      proxies.push(proxy)
      const kind = i < options.writers ? "writer" : "worker"
      children.push(
        Children.make(kind === "writer" ? `writer-${i}` : `worker-${i - options.writers}`, kind, proxy, env)
      )
    }
    // Every process at once, as a deployment starts them: both workers make the same lease and view tables.
    await Promise.all(children.map((child) => child.start()))
    log(`seed ${options.seed}: ${options.writers} writers and 2 workers ready on ${table}`)
    const writers = children.filter((child) => child.kind === "writer")
    const workers = children.filter((child) => child.kind === "worker")

    const recorder = makeRecorder<KvInput, KvOutput>()
    const ttlOps: Array<TtlOp> = []
    const values: Array<string> = []
    const operations = { ok: 0, failed: 0, indeterminate: 0 }
    const indeterminateBy: Record<string, number> = {}
    const samples: Array<string> = []
    const known: Knowledge = { values: new Map(), revisions: new Map() }
    let nextId = 0
    let kills = 0
    let pauses = 0
    let restarts = 0
    const value = () => {
      const v = `plain-${options.seed}-${nextId}-${randomUUID().slice(0, 8)}`
      values.push(v)
      return v
    }
    const started = Date.now()
    const deadline = started + options.seconds * 1000
    for (const proxy of proxies) proxy.setRates(rates)

    // Two clients a writer, each one operation at a time.
    const client = async (writer: Child, slot: number, clientPrng: Prng.Prng) => {
      const process = `${writer.name}/${slot}`
      while (Date.now() < deadline) {
        if (!writer.ready()) {
          await sleep(100)
          continue
        }
        const input = nextInput(clientPrng, known, kvKeysOf(Math.floor((Date.now() - started) / epochMillis)), value)
        const id = nextId++
        const respond = input._tag === "PutTtl" ? undefined : recorder.invoke(process, input)
        const answer = await writer.request(id, input, 4000 + maxPauseMillis + 2000)
        operations[answer.status]++
        if (answer.status === "indeterminate") {
          const why = answer.error ?? "unknown"
          indeterminateBy[why] = (indeterminateBy[why] ?? 0) + 1
          if (answer.reason !== undefined && samples.length < 5) samples.push(`${why}: ${answer.reason}`)
        }
        if (input._tag === "PutTtl") {
          ttlOps.push({
            input,
            status: answer.status,
            revision: answer.output?._tag === "Ok" ? answer.output.revision : undefined
          })
        } else if (answer.status !== "indeterminate" && answer.output !== undefined) {
          respond!(answer.output)
          if (input._tag !== "AtomicWrite") {
            learn(known, input.key, answer.output, "value" in input ? input.value : undefined)
          }
        }
        // A client backs off after an operation it cannot judge, as applications do: a partition then leaves a few
        // indeterminate writes, not hundreds (each stays in flight forever for the checker).
        await sleep(answer.status === "indeterminate" ? clientPrng.int(200, 600) : clientPrng.int(0, 30))
      }
    }

    const restart = async (child: Child) => {
      await sleep(prng.int(300, 1500))
      await child.start().then(() => restarts++, (error: unknown) => log(`restart of ${child.name}: ${error}`))
    }

    // The nemesis: one fault a turn, turns 1 to 2 s apart, each fault over before the next.
    const nemesis = async () => {
      while (Date.now() < deadline - 3000) {
        await sleep(prng.int(1000, 2000))
        const victim = prng.pick(children)
        if (!victim.ready()) continue
        const roll = prng.next()
        if (roll < 0.3) {
          victim.proxy.partition()
          await sleep(prng.int(500, 2500))
          victim.proxy.heal()
        } else if (roll < 0.6) {
          kills++
          log(`kill ${victim.name}`)
          victim.kill()
          await restart(victim)
        } else {
          pauses++
          victim.pause()
          await sleep(prng.int(fence.writeTimeoutMillis + 500, maxPauseMillis))
          victim.resume()
        }
      }
    }

    await Promise.all([
      nemesis(),
      ...writers.flatMap((writer) => [0, 1].map((slot) => client(writer, slot, prng.fork())))
    ])

    // Heal: no more faults, everything resumed and running, then time for what is still on the wire to land.
    for (const proxy of proxies) {
      proxy.setRates(FaultProxy.noFaults)
      proxy.heal()
    }
    for (const child of children) {
      child.resume()
      if (!child.ready()) await child.start().then(() => restarts++)
    }
    await sleep(margins.lateDeliveryMillis + 2 * fence.writeTimeoutMillis)
    log(`healed ${Date.now() - deadline} ms after the faults stopped`)
    const faults = { ...proxies[0]!.counts }
    for (const proxy of proxies.slice(1)) {
      for (const kind of FaultProxy.faultKinds) faults[kind] += proxy.counts[kind]
    }
    return {
      record: {
        seed: options.seed,
        table,
        namespace,
        key,
        history: recorder.history(),
        kvKeys: Array.from({ length: Math.ceil(options.seconds * 1000 / epochMillis) }, (_, e) => kvKeysOf(e)).flat(),
        ttlOps,
        values,
        operations,
        indeterminateBy,
        samples,
        faults,
        kills,
        pauses,
        restarts,
        workers,
        proxies
      },
      close
    }
  } catch (error) {
    await close()
    throw error
  }
}
