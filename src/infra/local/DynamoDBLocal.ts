/**
 * Runs the official DynamoDB Local (Java) as a child process, for tests and local development.
 *
 * The distribution itself is fetched and cached by `DynamoDBLocalDistribution.ts`; this module
 * only picks a port, launches the JVM, waits until it really answers DynamoDB requests, and makes
 * sure the JVM never outlives us.
 */
import type { Scope } from "effect"
import { Effect, Result } from "effect"
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import type { AddressInfo, Socket } from "node:net"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { DynamoDBLocalError, ensureDistribution } from "./DynamoDBLocalDistribution.ts"

export { DynamoDBLocalError, ensureDistribution }

/** How to run DynamoDB Local. In-memory unless `dataDir` is given (or `inMemory: false`). */
export interface DynamoDBLocalOptions {
  readonly inMemory?: boolean
  /** Where `-dbPath` keeps the sqlite file; defaults to `.dynastate/dynamodb-local` (working directory) when persisting. */
  readonly dataDir?: string
  /** Fixed port; by default a free one is picked. */
  readonly port?: number
}

/** A running DynamoDB Local. `stop` is idempotent and never fails. */
export interface DynamoDBLocalInstance {
  readonly endpoint: string
  readonly port: number
  readonly stop: Effect.Effect<void>
}

const STARTUP_DEADLINE_MS = 30_000
const POLL_INTERVAL = "100 millis"
const STOP_GRACE_MS = 5_000
const OUTPUT_TAIL_CHARS = 4_000
// Only auto-picked ports are retried: a fixed port that is taken is the caller's problem.
const PORT_ATTEMPTS = 3

// Relative to the working directory, like the configuration's `data_dir`: never inside an installed package.
const defaultDataDir = join(".dynastate", "dynamodb-local")

// Jetty inside DynamoDB Local logs this when the port is taken, but the JVM then keeps running
// (non-daemon threads), so the early-exit check alone would never notice.
const BIND_FAILURE = /BindException|Failed to bind/

interface Child {
  readonly proc: ChildProcess
  readonly exited: Promise<void>
  readonly output: () => string
  readonly exitInfo: () => string | undefined
  readonly spawnError: () => NodeJS.ErrnoException | undefined
  readonly release: () => void
}

// A single process-wide hook (not one per child) so many instances don't trip the listener limit.
const liveChildren = new Set<ChildProcess>()
let exitHookInstalled = false
const killLiveChildren = () => {
  for (const proc of liveChildren) proc.kill("SIGKILL")
}

// The 'exit' hook cannot run when we are SIGKILLed or crash hard, so a tiny sidecar holds the read
// end of a pipe from us: the kernel closes it when we die however we die, and the sidecar then
// terminates the JVM. It also quits by itself once the JVM is gone.
const WATCHDOG_SOURCE = `
const pid = Number(process.argv[1]);
const kill = (signal) => { try { process.kill(pid, signal) } catch {} };
setInterval(() => { try { process.kill(pid, 0) } catch { process.exit(0) } }, 1000);
process.stdin.on("end", () => { kill("SIGTERM"); setTimeout(() => { kill("SIGKILL"); process.exit(0) }, ${STOP_GRACE_MS}) });
process.stdin.resume();
`

const spawnWatchdog = (pid: number): ChildProcess => {
  const watchdog = spawn(process.execPath, ["-e", WATCHDOG_SOURCE, String(pid)], {
    stdio: ["pipe", "ignore", "ignore"]
  })
  watchdog.on("error", () => undefined)
  watchdog.unref()
  ;(watchdog.stdin as unknown as Socket | null)?.unref()
  return watchdog
}

const spawnChild = (dir: string, port: number, dataDir: string | undefined): Child => {
  const args = [
    `-Djava.library.path=${join(dir, "DynamoDBLocal_lib")}`,
    "-jar",
    join(dir, "DynamoDBLocal.jar"),
    "-port",
    String(port),
    "-sharedDb",
    // Since 1.24 DynamoDB Local phones home by default; tests and CI must not.
    "-disableTelemetry",
    ...(dataDir === undefined ? ["-inMemory"] : ["-dbPath", dataDir])
  ]
  const proc = spawn("java", args, { cwd: dataDir ?? tmpdir(), stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  const append = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-OUTPUT_TAIL_CHARS)
  }
  proc.stdout?.on("data", append)
  proc.stderr?.on("data", append)
  let exitInfo: string | undefined
  let spawnError: NodeJS.ErrnoException | undefined
  const exited = new Promise<void>((resolveExit) => {
    proc.once("exit", (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${code}`
      resolveExit()
    })
    proc.once("error", (error) => {
      spawnError = error
      exitInfo ??= `spawn error ${error.message}`
      resolveExit()
    })
  })
  liveChildren.add(proc)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.on("exit", killLiveChildren)
  }
  const watchdog = proc.pid === undefined ? undefined : spawnWatchdog(proc.pid)
  const release = () => {
    liveChildren.delete(proc)
    watchdog?.kill("SIGKILL")
  }
  void exited.then(release)
  return { proc, exited, output: () => output, exitInfo: () => exitInfo, spawnError: () => spawnError, release }
}

const stopChild = (child: Child): Effect.Effect<void> =>
  Effect.promise(async () => {
    if (child.exitInfo() === undefined) {
      child.proc.kill("SIGTERM")
      let timer: NodeJS.Timeout | undefined
      const timedOut = await Promise.race([
        child.exited.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), STOP_GRACE_MS)))
      ])
      clearTimeout(timer)
      if (timedOut) {
        child.proc.kill("SIGKILL")
        await child.exited
      }
    }
    child.release()
  }).pipe(Effect.uninterruptible)

// Binding every interface (no host) mirrors Jetty, which binds 0.0.0.0: a port that is only busy
// on another interface would still make the JVM fail.
const probePort = (port: number) =>
  Effect.tryPromise({
    try: () =>
      new Promise<number>((resolvePort, reject) => {
        const server = createServer()
        server.unref()
        server.once("error", reject)
        server.listen({ port }, () => {
          const picked = (server.address() as AddressInfo).port
          server.close(() => resolvePort(picked))
        })
      }),
    catch: (cause) =>
      new DynamoDBLocalError({ reason: "PortUnavailable", message: `port ${port} is not available: ${String(cause)}` })
  })

/** Whether a DynamoDB endpoint answers: any 200 with a TableNames list proves it is one, not some other server. */
export const answers = (endpoint: string): Effect.Effect<boolean> =>
  Effect.promise(() =>
    fetch(endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "DynamoDB_20120810.ListTables",
        authorization:
          "AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0"
      },
      body: "{}",
      signal: AbortSignal.timeout(2_000)
    }).then(
      async (response) => response.ok && (await response.text()).includes("TableNames"),
      () => false
    )
  )

const waitUntilReady = Effect.fnUntraced(function*(child: Child, endpoint: string) {
  const deadline = Date.now() + STARTUP_DEADLINE_MS
  const fail = (reason: DynamoDBLocalError["reason"], message: string) =>
    new DynamoDBLocalError({ reason, message: `${message}\n--- DynamoDB Local output (tail) ---\n${child.output()}` })
  while (true) {
    if (child.spawnError()?.code === "ENOENT") {
      return yield* new DynamoDBLocalError({
        reason: "JavaNotFound",
        message:
          "`java` is not on PATH. DynamoDB Local needs Java 17+ (e.g. `apt-get install -y default-jre-headless`)."
      })
    }
    if (BIND_FAILURE.test(child.output())) {
      return yield* fail("PortUnavailable", `DynamoDB Local could not bind ${endpoint}`)
    }
    const exitInfo = child.exitInfo()
    if (exitInfo !== undefined) return yield* fail("StartFailed", `DynamoDB Local exited during startup (${exitInfo})`)
    if (yield* answers(endpoint)) {
      // The answer could come from a squatter on the port if our bind failed at the same moment.
      if (BIND_FAILURE.test(child.output())) {
        return yield* fail("PortUnavailable", `DynamoDB Local could not bind ${endpoint}`)
      }
      return
    }
    if (Date.now() > deadline) {
      return yield* fail(
        "StartTimeout",
        `DynamoDB Local did not answer on ${endpoint} within ${STARTUP_DEADLINE_MS / 1000} s`
      )
    }
    yield* Effect.sleep(POLL_INTERVAL)
  }
})

const launch = (dir: string, port: number, dataDir: string | undefined) =>
  Effect.uninterruptibleMask((restore) => {
    const child = spawnChild(dir, port, dataDir)
    const endpoint = `http://127.0.0.1:${port}`
    return restore(waitUntilReady(child, endpoint)).pipe(
      // Also on interruption: a half-started JVM must not survive a cancelled start.
      Effect.onError(() => stopChild(child)),
      Effect.as<DynamoDBLocalInstance>({ endpoint, port, stop: stopChild(child) })
    )
  })

/**
 * Starts a DynamoDB Local (downloading it on first use) and resolves once it answers requests.
 * The caller owns the instance and must run `instance.stop`; prefer `scoped` inside Effect code.
 * Uses real time for its startup deadline, so under `@effect/vitest` run it with `it.live`.
 */
export const start = Effect.fn("DynamoDBLocal.start")(function*(options: DynamoDBLocalOptions = {}) {
  const dir = yield* ensureDistribution
  const inMemory = options.inMemory ?? options.dataDir === undefined
  const dataDir = inMemory ? undefined : resolve(options.dataDir ?? defaultDataDir)
  if (dataDir !== undefined) {
    yield* Effect.tryPromise({
      try: () => fs.mkdir(dataDir, { recursive: true }),
      catch: (cause) =>
        new DynamoDBLocalError({ reason: "StartFailed", message: `cannot create ${dataDir}: ${String(cause)}` })
    })
  }
  const startedAt = Date.now()
  for (let attempt = 1;; attempt++) {
    const port = yield* probePort(options.port ?? 0)
    const result = yield* Effect.result(launch(dir, port, dataDir))
    if (Result.isSuccess(result)) {
      const mode = dataDir === undefined ? "in memory" : `dbPath ${dataDir}`
      yield* Effect.log(
        `DynamoDB Local started on ${result.success.endpoint} (${mode}) in ${Date.now() - startedAt} ms`
      )
      return result.success
    }
    if (result.failure.reason !== "PortUnavailable" || options.port !== undefined || attempt >= PORT_ATTEMPTS) {
      return yield* result.failure
    }
    yield* Effect.logDebug(`DynamoDB Local lost port ${port} to another process, retrying on a new port`)
  }
})

/**
 * Starts a DynamoDB Local tied to the current scope: it is stopped (SIGTERM, then SIGKILL after a
 * grace period) when the scope closes. The usual way to get a private instance in Effect code.
 */
export const scoped = Effect.fn("DynamoDBLocal.scoped")(function*(
  options: DynamoDBLocalOptions = {}
): Effect.fn.Return<DynamoDBLocalInstance, DynamoDBLocalError, Scope.Scope> {
  return yield* Effect.acquireRelease(start(options), (instance) => instance.stop)
})
