/**
 * One DynamoDB Local per data directory (`SharedDynamoDBLocal`): simultaneous users share one JVM, the keeper stops
 * it once the last lease is gone (leases of dead processes do not count), and a stale record (dead keeper, or from
 * before a reboot) is taken over.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { answers } from "../../src/infra/local/DynamoDBLocal.ts"
import * as LocalRegistry from "../../src/infra/local/LocalRegistry.ts"
import * as SharedDynamoDBLocal from "../../src/infra/local/SharedDynamoDBLocal.ts"

const freshDir = () => fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-shared-"))

/** A pid that belonged to a process which has exited. */
const deadPid = (): number => {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" })
  return Number(child.stdout)
}

const waitFor = (condition: () => boolean, timeoutMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (!condition()) {
      if (Date.now() > deadline) return false
      yield* Effect.sleep("100 millis")
    }
    return true
  })

describe("SharedDynamoDBLocal", () => {
  it.live(
    "simultaneous users share one instance, which stops once the last lease is gone",
    () =>
      Effect.gen(function*() {
        const dataDir = freshDir()
        // A lease left by a process that died must not keep the instance alive.
        fs.mkdirSync(LocalRegistry.paths(dataDir).leases, { recursive: true })
        const dead = deadPid()
        fs.writeFileSync(path.join(LocalRegistry.paths(dataDir).leases, `${dead}-dead`), String(dead))

        const first = yield* Scope.make()
        const second = yield* Scope.make()
        const options = { dataDir, idleMillis: 300 }
        const [a, b] = yield* Effect.all([
          SharedDynamoDBLocal.acquire(options).pipe(Scope.provide(first)),
          SharedDynamoDBLocal.acquire(options).pipe(Scope.provide(second))
        ], { concurrency: 2 })
        expect(a.endpoint).toBe(b.endpoint)
        expect([a.started, b.started].filter(Boolean)).toHaveLength(1)
        expect(LocalRegistry.readRecord(dataDir)?.endpoint).toBe(a.endpoint)
        expect(LocalRegistry.liveLeases(dataDir)).toBe(2)

        // A third user joins the running instance quickly, without starting anything.
        const joinedAt = Date.now()
        const third = yield* Effect.scoped(SharedDynamoDBLocal.acquire(options))
        expect(third).toMatchObject({ endpoint: a.endpoint, started: false })
        // Starting a JVM takes seconds; joining is one request, which a loaded machine may still slow down.
        expect(Date.now() - joinedAt).toBeLessThan(5_000)

        yield* Scope.close(first, Exit.void)
        yield* Effect.sleep("1500 millis")
        expect(yield* answers(a.endpoint)).toBe(true) // the second user still holds its lease

        yield* Scope.close(second, Exit.void)
        expect(yield* waitFor(() => LocalRegistry.readRecord(dataDir) === undefined, 15_000)).toBe(true)
        expect(yield* waitFor(() => !LocalRegistry.isAlive(a.keeperPid), 15_000)).toBe(true)
        expect(yield* answers(a.endpoint)).toBe(false)
        expect(fs.readdirSync(LocalRegistry.paths(dataDir).leases)).toEqual([])
        fs.rmSync(dataDir, { recursive: true, force: true })
      }),
    90_000
  )

  it("a record is current while its keeper lives and the machine has not rebooted", () => {
    const record = { endpoint: "http://127.0.0.1:9", port: 9, keeperPid: process.pid, startedAt: "" }
    expect(LocalRegistry.isCurrent(record)).toBe(true)
    expect(LocalRegistry.isCurrent({ ...record, bootedAt: LocalRegistry.bootedAt() })).toBe(true)
    expect(LocalRegistry.isCurrent({ ...record, keeperPid: deadPid() })).toBe(false)
    expect(LocalRegistry.isCurrent({ ...record, bootedAt: LocalRegistry.bootedAt() - 3600 })).toBe(false)
  })

  it.live(
    "a record from before a reboot (its pid now someone else's) is taken over by a new instance",
    () =>
      Effect.gen(function*() {
        const dataDir = freshDir()
        // This test's own pid is alive, as a reused pid would be; the boot time says the record is from before.
        LocalRegistry.writeRecord(dataDir, {
          endpoint: "http://127.0.0.1:9",
          port: 9,
          keeperPid: process.pid,
          startedAt: new Date().toISOString(),
          bootedAt: LocalRegistry.bootedAt() - 86_400
        })
        const instance = yield* Effect.scoped(Effect.gen(function*() {
          const instance = yield* SharedDynamoDBLocal.acquire({ dataDir, idleMillis: 0 })
          expect(instance.started).toBe(true)
          expect(instance.keeperPid).not.toBe(process.pid)
          expect(yield* answers(instance.endpoint)).toBe(true)
          return instance
        }))
        expect(yield* waitFor(() => !LocalRegistry.isAlive(instance.keeperPid), 15_000)).toBe(true)
        fs.rmSync(dataDir, { recursive: true, force: true })
      }),
    90_000
  )
})
