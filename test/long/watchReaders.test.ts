/**
 * Ten watching processes and a worker serving their watches, each process behind its own port of a proxy that
 * counts the stream's readers (`StreamProxy`): DynamoDB Streams serves at most two readers per shard, and with the
 * worker's relay only the worker reads it (its projections and the relay: two readings), however many processes
 * watch. Every process still gets every event, in per-key order, each once; a killed worker sends the processes to
 * their own readings and a new one takes them back; without the relay, the control shows the limit exceeded.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as StoreConfig from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import { Store } from "../../src/programs/store/Store.ts"
import { freePort } from "../support/FreePort.ts"
import * as StreamProxy from "../support/StreamProxy.ts"
import { endpoint, freshTableName } from "../support/TestStore.ts"

const root = path.resolve(import.meta.dirname, "../..")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-watch-readers-"))
const children: Array<ChildProcess> = []
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL")
  fs.rmSync(dir, { recursive: true, force: true })
})

/** A child process running `program`, its output kept. */
const spawnChild = (program: string, env: Record<string, string>) => {
  const child = spawn(path.join(root, "node_modules/.bin/node"), [path.join(root, program)], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.push(child)
  const output = { text: "" }
  child.stdout!.on("data", (chunk: Buffer) => (output.text += chunk.toString()))
  child.stderr!.on("data", (chunk: Buffer) => (output.text += chunk.toString()))
  return { child, output }
}

/** The deliveries a watcher printed (`WATCH {json}` lines). */
const deliveries = (text: string) =>
  text.split("\n").filter((line) => line.startsWith("WATCH ")).map((line) =>
    JSON.parse(line.slice(6)) as { tag: string; key?: string; seq?: number; value?: string }
  )

const waitFor = (condition: () => boolean, millis: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + millis
    while (!condition()) {
      if (Date.now() > deadline) return false
      yield* Effect.sleep("100 millis")
    }
    return true
  })

/**
 * A worker serving watches and `count` watching processes (through the worker when `relayed`), each behind its own
 * port of the counting proxy, all of them `Init`ialised; the store writes as another process.
 */
const setup = (count: number, relayed: boolean) =>
  Effect.gen(function*() {
    const proxy = StreamProxy.start(endpoint())
    yield* Effect.addFinalizer(() => Effect.promise(() => proxy.close()))
    const watchPort = yield* freePort
    const base = {
      DYNASTATE_TABLE_NAME: freshTableName("watch-readers"),
      DYNASTATE_KEYRING_FILE: path.join(dir, "keyring.key")
    }
    // The table and the key file exist before the processes start, as after `provision`.
    const config = yield* StoreConfig.load({ env: { ...base, DYNASTATE_ENDPOINT: endpoint() } })
    const context = yield* Layer.build(StoreLive.layer(config))
    const writer = yield* Store.use((service) => Effect.succeed(service)).pipe(Effect.provideContext(context))
    // A record first: DynamoDB Local refuses the iterators of an empty shard once its first record comes (every
    // reader then starts its reading again), which would blur the count of readings.
    yield* writer.put({ key: "/seed", value: new TextEncoder().encode("seed") })

    const startWorker = Effect.gen(function*() {
      const worker = spawnChild("test/app/workerProcess.ts", {
        ...base,
        DYNASTATE_ENDPOINT: yield* Effect.promise(() => proxy.endpointFor("worker")),
        DYNASTATE_WATCH_PORT: String(watchPort)
      })
      expect(yield* waitFor(() => worker.output.text.includes("serving watches at"), 30_000)).toBe(true)
      return worker
    })
    const worker = yield* startWorker

    const watchers: Array<ReturnType<typeof spawnChild>> = []
    for (let i = 0; i < count; i++) {
      watchers.push(spawnChild("test/app/watcherProcess.ts", {
        ...base,
        DYNASTATE_ENDPOINT: yield* Effect.promise(() => proxy.endpointFor(`watcher-${i}`)),
        ...(relayed ? { DYNASTATE_WATCH_ENDPOINT: `127.0.0.1:${watchPort}` } : {}),
        WATCH_PREFIX: "/w/"
      }))
    }
    const initialised = yield* waitFor(
      () => watchers.every((watcher) => deliveries(watcher.output.text).some((line) => line.tag === "Init")),
      90_000
    )
    if (!initialised) {
      const stuck = watchers.find((watcher) => !watcher.output.text.includes("WATCH "))
      expect(stuck?.output.text.slice(-2000)).toBe("")
    }
    return { proxy, writer, watchers, worker, startWorker }
  })

const encoder = new TextEncoder()

const describeLine = (line: ReturnType<typeof deliveries>[number]) =>
  line.tag === "Put" ? `Put ${line.key}#${line.seq}=${line.value}` : `${line.tag} ${line.key}#${line.seq}`

/** Writes round `round` of five keys (`/w/0` to `/w/4`), recording the lines every watcher must show. */
const writeRound = (writer: Store["Service"], round: number, expected: Map<string, Array<string>>) =>
  Effect.gen(function*() {
    for (let k = 0; k < 5; k++) {
      const key = `/w/${k}`
      const lines = expected.get(key) ?? []
      if (round === 4) {
        yield* writer.delete(key)
        lines.push(`Delete ${key}#${round}`)
      } else {
        yield* writer.put({ key, value: encoder.encode(`r${round}`) })
        lines.push(`Put ${key}#${round}=r${round}`)
      }
      expected.set(key, lines)
    }
  })

/** Every watcher shows exactly the expected lines of each key, in order, and nothing else. */
const expectDelivered = (
  watchers: ReadonlyArray<ReturnType<typeof spawnChild>>,
  expected: Map<string, Array<string>>
) => {
  const total = [...expected.values()].reduce((sum, lines) => sum + lines.length, 0)
  for (const watcher of watchers) {
    const changes = deliveries(watcher.output.text).filter((line) => line.tag !== "Init")
    expect(changes).toHaveLength(total)
    for (const [key, lines] of expected) {
      expect(changes.filter((line) => line.key === key).map(describeLine)).toEqual(lines)
    }
  }
}

/** Waits until every watcher printed `count` changes. */
const allReceived = (watchers: ReadonlyArray<ReturnType<typeof spawnChild>>, count: number) =>
  waitFor(() => watchers.every((watcher) => deliveries(watcher.output.text).length >= count + 1), 60_000)

describe("watches served by the worker, ten watching processes", () => {
  it.live(
    "the stream keeps at most two readers per shard, and every process gets every event in per-key order",
    () =>
      Effect.gen(function*() {
        const { proxy, watchers, writer } = yield* setup(10, true)

        // Five keys, six events each (the fourth a delete), interleaved.
        const expected = new Map<string, Array<string>>()
        for (let round = 1; round <= 6; round++) yield* writeRound(writer, round, expected)
        yield* writer.put({ key: "/other", value: encoder.encode("unwatched") })
        expect(yield* allReceived(watchers, 30)).toBe(true)
        yield* Effect.sleep("1 second") // room for a (wrong) repeat to show up
        expectDelivered(watchers, expected)

        // The readers: only the worker's process ever asked for the shard's records, with two readings at most.
        expect(proxy.shards.size).toBeGreaterThan(0)
        for (const [shardId, readers] of proxy.shards) {
          expect([shardId, [...readers.processes]]).toEqual([shardId, ["worker"]])
          expect(readers.maxConcurrent).toBeLessThanOrEqual(2)
        }
      }),
    180_000
  )

  it.live(
    "the worker killed: the processes read the stream themselves, a new worker takes them back, nothing lost or repeated",
    () =>
      Effect.gen(function*() {
        const { proxy, startWorker, watchers, worker, writer } = yield* setup(2, true)
        const expected = new Map<string, Array<string>>()
        yield* writeRound(writer, 1, expected)
        expect(yield* allReceived(watchers, 5)).toBe(true)

        worker.child.kill("SIGKILL")
        yield* writeRound(writer, 2, expected)
        yield* writeRound(writer, 3, expected)
        expect(yield* allReceived(watchers, 15)).toBe(true)
        const fellBack = [...proxy.shards.values()].flatMap((readers) => [...readers.processes])
        expect(fellBack).toEqual(expect.arrayContaining(["watcher-0", "watcher-1"]))

        yield* startWorker
        const back = (text: string) => text.includes("back on the worker's relay")
        expect(yield* waitFor(() => watchers.every((watcher) => back(watcher.output.text)), 60_000)).toBe(true)
        yield* Effect.sleep("1 second")
        const now = Date.now()
        for (const name of ["watcher-0", "watcher-1"]) {
          expect(now - (proxy.lastPoll.get(name) ?? 0)).toBeGreaterThan(900)
        }

        for (let round = 4; round <= 6; round++) yield* writeRound(writer, round, expected)
        expect(yield* allReceived(watchers, 30)).toBe(true)
        yield* Effect.sleep("1 second")
        expectDelivered(watchers, expected)
      }),
    180_000
  )

  it.live(
    "the control: two processes reading the stream themselves take the shard beyond two readers",
    () =>
      Effect.gen(function*() {
        const { proxy, watchers, writer } = yield* setup(2, false)
        yield* Effect.sleep("1 second") // every reading polling
        yield* writer.put({ key: "/w/a", value: encoder.encode("one") })
        expect(yield* waitFor(() => watchers.every((watcher) => deliveries(watcher.output.text).length >= 2), 30_000))
          .toBe(true)
        const [readers] = [...proxy.shards.values()]
        expect([...readers!.processes].sort()).toEqual(["watcher-0", "watcher-1", "worker"])
        // Beyond the stream's limit: the processes' own and the worker's (its two may not overlap both in so short a run).
        // Beyond the stream's limit: one reading per process and the worker's (whose two need not overlap both).
        expect(readers!.maxConcurrent).toBeGreaterThan(2)
      }),
    120_000
  )
})
