/**
 * One DynamoDB Local per data directory, shared by every process that opens it.
 *
 * A process first writes its lease (`leases/<pid>-…`), then, under the start lock, reads `local.json`: if the
 * recorded keeper is alive and its endpoint answers, it connects (a few milliseconds); if the record is stale (its
 * keeper is dead, or the machine rebooted since) or missing, it spawns a detached keeper (`LocalKeeper`) that starts the JVM and records it, and
 * waits for that record. Releasing the scope removes the lease. The keeper stops the JVM once no live process has
 * held a lease for `idleMillis`; leases of processes that died are noticed by their pid and dropped.
 */
import type { Scope } from "effect"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import { extname } from "node:path"
import { fileURLToPath } from "node:url"
import { answers, DynamoDBLocalError, ensureDistribution } from "./DynamoDBLocal.ts"
import * as LocalRegistry from "./LocalRegistry.ts"

/** How to reach (or start) the shared instance of a data directory. */
export interface SharedOptions {
  /** Where DynamoDB Local keeps its sqlite file, and where its record, lock and leases live. */
  readonly dataDir: string
  /** The port to start it on when it is not running yet (a free one by default). */
  readonly port?: number | undefined
  /** How long it stays up after the last user left (default 10 s; `DYNASTATE_LOCAL_IDLE_MS`). */
  readonly idleMillis?: number | undefined
}

/** The shared instance as one process sees it. */
export interface SharedInstance {
  readonly endpoint: string
  readonly port: number
  readonly keeperPid: number
  /** Whether this process started it (it was not running). */
  readonly started: boolean
}

const DEADLINE_MS = 120_000
const RETRY = "100 millis"
const LOG_TAIL_CHARS = 3_000

/** The default idle time: `DYNASTATE_LOCAL_IDLE_MS`, else 10 s. */
export const defaultIdleMillis = (env: Record<string, string | undefined> = process.env): number => {
  const value = Number(env["DYNASTATE_LOCAL_IDLE_MS"])
  return Number.isFinite(value) && value >= 0 ? value : 10_000
}

// The keeper runs from the same tree as this module: .ts from the sources, .js from dist.
const keeperFile = () =>
  fileURLToPath(new URL(`./keeperMain${extname(fileURLToPath(import.meta.url))}`, import.meta.url))

const fail = (reason: DynamoDBLocalError["reason"], message: string) => new DynamoDBLocalError({ reason, message })

const logTail = (dataDir: string): string => {
  try {
    return fs.readFileSync(LocalRegistry.paths(dataDir).log, "utf8").slice(-LOG_TAIL_CHARS)
  } catch {
    return ""
  }
}

/** Spawns a keeper and waits until it records an instance that answers. Runs under the start lock. */
const startKeeper = Effect.fnUntraced(function*(options: SharedOptions, deadline: number) {
  yield* ensureDistribution
  const log = LocalRegistry.paths(options.dataDir).log
  const out = fs.openSync(log, "w", 0o600)
  const child = spawn(
    process.execPath,
    [keeperFile(), options.dataDir, String(options.port ?? 0), String(options.idleMillis ?? defaultIdleMillis())],
    // Detached, in a process group of its own: Ctrl-C in the starter's terminal must not stop the shared instance.
    { detached: true, stdio: ["ignore", out, out], windowsHide: true }
  )
  fs.closeSync(out)
  let exited: string | undefined
  child.once("exit", (code, signal) => (exited = signal ?? `code ${code}`))
  child.once("error", (error) => (exited = error.message))
  child.unref()
  while (true) {
    const record = LocalRegistry.readRecord(options.dataDir)
    if (record !== undefined && record.keeperPid === child.pid && (yield* answers(record.endpoint))) {
      return { ...record, started: true }
    }
    if (exited !== undefined) {
      const tail = logTail(options.dataDir)
      const reason = /JavaNotFound/.test(tail)
        ? "JavaNotFound"
        : /PortUnavailable/.test(tail)
        ? "PortUnavailable"
        : "StartFailed"
      return yield* fail(reason, `DynamoDB Local's keeper exited (${exited}); ${log}:\n${tail}`)
    }
    if (Date.now() > deadline) {
      child.kill("SIGTERM")
      return yield* fail("StartTimeout", `DynamoDB Local did not start within ${DEADLINE_MS / 1000} s; see ${log}`)
    }
    yield* Effect.sleep(RETRY)
  }
})

/** Under the lock: the recorded instance if it answers, a fresh one if the record is missing or stale. */
const connectOrStart = Effect.fnUntraced(function*(options: SharedOptions, deadline: number) {
  const record = LocalRegistry.readRecord(options.dataDir)
  if (record !== undefined && LocalRegistry.isCurrent(record)) {
    if (yield* answers(record.endpoint)) return { ...record, started: false }
    // Its keeper lives but the JVM does not answer (busy, or about to be noticed gone): never start a second JVM
    // on the same sqlite file beside it.
    return undefined
  }
  if (record !== undefined) {
    yield* Effect.logInfo(
      `DynamoDB Local recorded at ${record.endpoint} is gone (keeper ${record.keeperPid}); restarting it`
    )
    fs.rmSync(LocalRegistry.paths(options.dataDir).record, { force: true })
  }
  return yield* startKeeper(options, deadline)
})

/**
 * The shared DynamoDB Local of a data directory, for as long as the scope lasts: connects to the running one or
 * starts it. Uses real time, so under `@effect/vitest` run it with `it.live`.
 */
export const acquire = Effect.fn("SharedDynamoDBLocal.acquire")(function*(
  options: SharedOptions
): Effect.fn.Return<SharedInstance, DynamoDBLocalError, Scope.Scope> {
  yield* Effect.try({
    try: () => fs.mkdirSync(options.dataDir, { recursive: true, mode: 0o700 }),
    catch: (cause) => fail("StartFailed", `cannot create ${options.dataDir}: ${String(cause)}`)
  })
  // The lease comes first: a keeper deciding to stop takes the lock and then counts leases, so it sees this one.
  yield* Effect.acquireRelease(
    Effect.try({
      try: () => LocalRegistry.takeLease(options.dataDir),
      catch: (cause) => fail("StartFailed", `cannot write a lease in ${options.dataDir}: ${String(cause)}`)
    }),
    (lease) => Effect.sync(lease.release)
  )
  const deadline = Date.now() + DEADLINE_MS
  while (true) {
    const lock = LocalRegistry.tryLock(options.dataDir)
    if (lock !== undefined) {
      const found = yield* connectOrStart(options, deadline).pipe(Effect.ensuring(Effect.sync(lock.release)))
      if (found !== undefined) {
        yield* Effect.logDebug(`${found.started ? "started" : "joined"} DynamoDB Local on ${found.endpoint}`)
        return { endpoint: found.endpoint, port: found.port, keeperPid: found.keeperPid, started: found.started }
      }
    }
    if (Date.now() > deadline) {
      const record = LocalRegistry.readRecord(options.dataDir)
      return yield* fail(
        "StartTimeout",
        record === undefined
          ? `another process holds ${LocalRegistry.paths(options.dataDir).lock} and started nothing`
          : `DynamoDB Local recorded at ${record.endpoint} (keeper pid ${record.keeperPid}) does not answer: stop ` +
            `that process or remove ${LocalRegistry.paths(options.dataDir).record}`
      )
    }
    yield* Effect.sleep(RETRY)
  }
})
