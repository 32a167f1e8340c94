/**
 * Stopping the worker process, against DynamoDB Local: SIGTERM lets it finish the batch in flight and release its
 * leases, then exit (130, an interruption); a batch that outlasts `shutdown_timeout` makes it exit 1 at the
 * deadline, saying so. Run as a real process, since the deadline ends the process.
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
import { endpoint, freshTableName } from "../support/TestStore.ts"

const root = path.resolve(import.meta.dirname, "../..")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-worker-stop-"))
const keyFile = path.join(dir, "keyring.key")
const children: Array<ChildProcess> = []
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL")
  fs.rmSync(dir, { recursive: true, force: true })
})

/** Asks `/readyz` until the worker holds its shard at the tip. */
const readyWithShard = (url: string) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      const body = yield* Effect.promise(() =>
        fetch(`${url}/readyz`).then(
          (response) => response.json() as Promise<{ ready: boolean; shardsHeld: number }>,
          () => undefined
        )
      )
      if (body?.ready === true && body.shardsHeld === 1) return true
      yield* Effect.sleep("200 millis")
    }
    return false
  })

/**
 * Starts the worker process; `printed` waits (up to 30 s) until its output holds a text, `exited` resolves with its
 * status, how long after `stop` it came, and its output.
 */
const startWorker = (env: Record<string, string>) => {
  const child = spawn(path.join(root, "node_modules/.bin/node"), [path.join(root, "test/app/workerProcess.ts")], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.push(child)
  let output = ""
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  let stoppedAt = 0
  const exited = new Promise<{ code: number | null; afterStop: number; output: string }>((resolve) =>
    child.on("exit", (code) => resolve({ code, afterStop: Date.now() - stoppedAt, output }))
  )
  return {
    stop: Effect.sync(() => {
      stoppedAt = Date.now()
      child.kill("SIGTERM")
    }),
    printed: (text: string) =>
      Effect.gen(function*() {
        const deadline = Date.now() + 30_000
        while (!output.includes(text) && Date.now() < deadline) yield* Effect.sleep("50 millis")
        return output.includes(text)
      }),
    exited: Effect.promise(() => exited)
  }
}

const setup = (label: string, extra: Record<string, string>) =>
  Effect.gen(function*() {
    const port = yield* freePort
    const env = {
      DYNASTATE_ENDPOINT: endpoint(),
      DYNASTATE_TABLE_NAME: freshTableName(label),
      DYNASTATE_KEYRING_FILE: keyFile,
      DYNASTATE_METRICS_PORT: String(port),
      ...extra
    }
    const config = yield* StoreConfig.load({ env })
    // The table and the key file exist before the worker starts, as after `provision`.
    const store = yield* Layer.build(StoreLive.layer(config))
    return { env, url: `http://127.0.0.1:${port}`, store }
  })

describe("stopping the worker process", () => {
  it.live(
    "SIGTERM: the batch in flight is finished, the leases released, and the process exits",
    () =>
      Effect.gen(function*() {
        const { env, store, url } = yield* setup("worker-stop", {
          DYNASTATE_SHUTDOWN_TIMEOUT: "20s",
          SLOW_MILLIS: "1500"
        })
        const worker = startWorker(env)
        expect(yield* readyWithShard(url)).toBe(true)
        yield* Store.use((s) => s.put({ key: "/slow/a", value: new TextEncoder().encode("v") })).pipe(
          Effect.provideContext(store)
        )
        expect(yield* worker.printed("slow applying /slow/a")).toBe(true)
        yield* worker.stop
        const { afterStop, code, output } = yield* worker.exited
        expect(code).toBe(130)
        expect(output).toContain("stopping the worker: finishing the batch in flight and releasing its leases")
        expect(output).toContain("slow applied /slow/a")
        expect(output).toContain("released 1 shard leases")
        expect(output).not.toContain("did not stop within")
        expect(afterStop).toBeLessThan(15_000)
      }),
    90_000
  )

  it.live(
    "a batch that outlasts shutdown_timeout: the process exits 1 at the deadline, saying so",
    () =>
      Effect.gen(function*() {
        const { env, store, url } = yield* setup("worker-deadline", {
          DYNASTATE_SHUTDOWN_TIMEOUT: "1s",
          SLOW_MILLIS: "60000"
        })
        const worker = startWorker(env)
        expect(yield* readyWithShard(url)).toBe(true)
        yield* Store.use((s) => s.put({ key: "/slow/a", value: new TextEncoder().encode("v") })).pipe(
          Effect.provideContext(store)
        )
        expect(yield* worker.printed("slow applying /slow/a")).toBe(true)
        yield* worker.stop
        const { afterStop, code, output } = yield* worker.exited
        expect(code).toBe(1)
        expect(output).toContain("did not stop within shutdown_timeout 1s")
        expect(output).not.toContain("released 1 shard leases")
        expect(output).not.toContain("slow applied /slow/a")
        expect(afterStop).toBeGreaterThanOrEqual(900)
        expect(afterStop).toBeLessThan(10_000)
      }),
    90_000
  )
})
