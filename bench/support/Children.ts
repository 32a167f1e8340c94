/**
 * Child processes of the bench (the counter's second process, the memory probe): the same Node binary, JSON lines
 * on stdout, killed when the scope closes whatever happened.
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { spawn } from "node:child_process"
import * as readline from "node:readline"

/** A running child. */
export interface Child {
  /** The first JSON line with `ready: true`. */
  readonly ready: Effect.Effect<void, Error>
  /** The first JSON line with a `result`. */
  readonly result: Effect.Effect<unknown, Error>
  /** Writes one line to its stdin. */
  readonly send: (line: string) => void
}

/** Starts `node [nodeArgs] script` with `env` added to the environment. */
export const start = (
  script: URL,
  env: Record<string, string>,
  nodeArgs: ReadonlyArray<string> = []
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, [...nodeArgs, script.pathname], {
          env: { ...process.env, ...env },
          stdio: ["pipe", "pipe", "pipe"]
        })
      ),
      (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
    )
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-4000)
    })
    const messages: Array<Record<string, unknown>> = []
    const waiting: Array<() => void> = []
    let exited = false
    readline.createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        messages.push(JSON.parse(line) as Record<string, unknown>)
      } catch {
        // Not a message: a stray log line.
      }
      waiting.splice(0).forEach((wake) => wake())
    })
    child.on("exit", () => {
      exited = true
      waiting.splice(0).forEach((wake) => wake())
    })
    const awaitMessage = (field: string) =>
      Effect.callback<unknown, Error>((resume) => {
        const check = () => {
          const message = messages.find((m) => field in m)
          if (message !== undefined) return resume(Effect.succeed(message[field]))
          if (exited) {
            return resume(
              Effect.fail(new Error(`${script.pathname} exited (${child.exitCode}) without "${field}": ${stderr}`))
            )
          }
          waiting.push(check)
        }
        check()
      })
    return {
      ready: Effect.asVoid(awaitMessage("ready")),
      result: awaitMessage("result"),
      send: (line) => void child.stdin.write(`${line}\n`)
    }
  })
