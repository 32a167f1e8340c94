/**
 * The campaign's child processes: a writer or worker program run by Node 24 (`node_modules/.bin/node`), each behind
 * its own fault proxy, that the controller can kill (SIGKILL), pause (SIGSTOP/SIGCONT) and restart. A writer's
 * requests are answered through promises; a request whose process dies, or that outlives its deadline, resolves as
 * indeterminate. Every child ever spawned is remembered so {@link killAll} (also run on `process.on("exit")`) leaves
 * none behind.
 */
import type { ChildProcess } from "node:child_process"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import type { FaultProxy } from "./FaultProxy.ts"
import type { ChaosInput, ChildEnv, Dump, Response } from "./Protocol.ts"
import { marker } from "./Protocol.ts"

const root = path.resolve(import.meta.dirname, "../..")
const nodeBin = path.join(root, "node_modules/.bin/node")
const programs = {
  writer: path.join(import.meta.dirname, "writerProcess.ts"),
  worker: path.join(import.meta.dirname, "workerProcess.ts")
}

const everyChild = new Set<ChildProcess>()

/**
 * With CHAOS_LOG_DIR set, every line a child logs goes to `<dir>/<name>.log` with the controller's clock, so a long
 * run's projection lag can be traced afterwards (the report keeps only the last 20 lines).
 */
const logDir = process.env["CHAOS_LOG_DIR"]
const keepLine = (name: string, line: string) => {
  if (logDir !== undefined && logDir !== "") {
    fs.appendFileSync(path.join(logDir, `${name}.log`), `${new Date().toISOString()} ${line}\n`)
  }
}

/** SIGKILLs every child still running (and SIGCONTs it first, so a paused one dies at once). */
export const killAll = (): void => {
  for (const child of everyChild) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGCONT")
      child.kill("SIGKILL")
    }
  }
  everyChild.clear()
}

process.on("exit", killAll)

/** A child process slot: the process in it comes and goes, the proxy stays. */
export interface Child {
  readonly name: string
  readonly kind: "writer" | "worker"
  readonly proxy: FaultProxy
  /** Whether a process is up and announced it is ready. */
  readonly ready: () => boolean
  readonly paused: () => boolean
  /** Starts a process in the slot; resolves once it is ready (rejects if it dies first). */
  readonly start: () => Promise<void>
  readonly kill: () => void
  readonly pause: () => void
  readonly resume: () => void
  /** Asks a writer to run an operation; resolves with its answer, or indeterminate (process died, deadline passed). */
  readonly request: (id: number, input: ChaosInput, deadlineMillis: number) => Promise<Response>
  /** Asks a worker for its replica. */
  readonly dump: (deadlineMillis: number) => Promise<Dump | undefined>
  /** The last lines the process logged (stderr, and stdout lines that are not protocol), for reports. */
  readonly stderrTail: () => ReadonlyArray<string>
}

/** A slot for a child of `kind` named `name`, talking to DynamoDB through `proxy`. */
export const make = (
  name: string,
  kind: "writer" | "worker",
  proxy: FaultProxy,
  env: Omit<ChildEnv, "CHAOS_ENDPOINT">
): Child => {
  let proc: ChildProcess | undefined
  let isReady = false
  let isPaused = false
  const waiting = new Map<number, (response: Response) => void>()
  const dumps: Array<(dump: Dump | undefined) => void> = []
  const tail: Array<string> = []

  const abandonAll = () => {
    for (const [id, resolve] of waiting) resolve({ id, status: "indeterminate", error: "ProcessDied" })
    waiting.clear()
    for (const resolve of dumps.splice(0)) resolve(undefined)
  }

  const start = () =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(nodeBin, [programs[kind]], {
        cwd: root,
        env: { ...process.env, ...env, CHAOS_ENDPOINT: `http://127.0.0.1:${proxy.port}` },
        stdio: ["pipe", "pipe", "pipe"]
      })
      everyChild.add(child)
      proc = child
      isReady = false
      isPaused = false
      child.stdin.on("error", () => {})
      readline.createInterface({ input: child.stdout }).on("line", (line) => {
        if (!line.startsWith(marker)) {
          // The process's own logs (errors only unless CHAOS_LOG_LEVEL says more): kept for the report, as its
          // stderr is.
          keepLine(name, line)
          tail.push(line)
          if (tail.length > 20) tail.shift()
          return
        }
        const message = JSON.parse(line.slice(marker.length)) as Response | Dump | { ready: true }
        if ("ready" in message) {
          isReady = true
          resolve()
        } else if ("dump" in message) {
          dumps.shift()?.(message)
        } else {
          const answer = waiting.get(message.id)
          waiting.delete(message.id)
          answer?.(message)
        }
      })
      readline.createInterface({ input: child.stderr }).on("line", (line) => {
        keepLine(name, line)
        tail.push(line)
        if (tail.length > 20) tail.shift()
      })
      child.on("exit", (code, signal) => {
        keepLine(name, `exited (${signal ?? code})`)
        everyChild.delete(child)
        if (proc === child) {
          proc = undefined
          isReady = false
          abandonAll()
        }
        reject(new Error(`${name} exited (${signal ?? code}) before it was ready: ${tail.join("\n")}`))
      })
    })

  const signal = (sig: NodeJS.Signals) => {
    if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) proc.kill(sig)
  }

  return {
    name,
    kind,
    proxy,
    ready: () => isReady,
    paused: () => isPaused,
    start,
    kill: () => {
      signal("SIGCONT")
      signal("SIGKILL")
    },
    pause: () => {
      isPaused = true
      signal("SIGSTOP")
    },
    resume: () => {
      isPaused = false
      signal("SIGCONT")
    },
    request: (id, input, deadlineMillis) =>
      new Promise<Response>((resolve) => {
        if (proc === undefined || !isReady) {
          resolve({ id, status: "indeterminate", error: "NotRunning" })
          return
        }
        const timer = setTimeout(() => {
          waiting.delete(id)
          resolve({ id, status: "indeterminate", error: "ControllerDeadline" })
        }, deadlineMillis)
        waiting.set(id, (response) => {
          clearTimeout(timer)
          resolve(response)
        })
        proc.stdin!.write(`${JSON.stringify({ id, input })}\n`)
      }),
    dump: (deadlineMillis) =>
      new Promise((resolve) => {
        if (proc === undefined || !isReady) {
          resolve(undefined)
          return
        }
        const timer = setTimeout(() => resolve(undefined), deadlineMillis)
        dumps.push((dump) => {
          clearTimeout(timer)
          resolve(dump)
        })
        proc.stdin!.write("dump\n")
      }),
    stderrTail: () => [...tail]
  }
}
