/**
 * A child process of the contended-counter workload: opens the peer or a dynastate store instance of its own on
 * the parent's table, prints `{"ready":true}`, waits for a line on stdin, increments the counter for the given
 * time, and prints its result as one JSON line.
 *
 * Settings come as one JSON document in BENCH_COUNTER (see {@link CounterSettings}).
 */
import { Effect, References } from "effect"
import * as readline from "node:readline"
import * as TeleportStore from "../peer/TeleportStore.ts"
import { makeClients } from "../support/Clients.ts"
import * as Counter from "../support/Counter.ts"
import * as Dynastate from "../support/Dynastate.ts"

/** What the parent tells a child. */
export interface CounterSettings {
  readonly endpoint: string
  readonly store: "peer" | "dynastate"
  readonly table: string
  readonly namespace: string
  /** dynastate's raw AES key (base64). */
  readonly key: string
  readonly counter: string
  readonly fibers: number
  readonly seconds: number
}

const settings = JSON.parse(process.env["BENCH_COUNTER"] ?? "{}") as CounterSettings

const waitForGo = Effect.callback<void>((resume) => {
  const lines = readline.createInterface({ input: process.stdin })
  lines.once("line", () => {
    lines.close()
    resume(Effect.void)
  })
})

const program = Effect.gen(function*() {
  const clients = yield* Effect.acquireRelease(
    Effect.sync(() => makeClients(settings.endpoint)),
    (c) => Effect.sync(c.destroy)
  )
  const target = settings.store === "peer"
    ? Counter.peerTarget(TeleportStore.make(clients.dynamodb, settings.table), settings.counter)
    : Counter.dynastateTarget(
      (yield* Dynastate.open({
        clients,
        location: { table: settings.table, namespace: settings.namespace },
        key: settings.key,
        calls: { generate: 0, wrap: 0, unwrap: 0 }
      })).store,
      settings.counter
    )
  // One read before the start, so connection setup is not timed.
  yield* target.read
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`)
  yield* waitForGo
  const result = yield* Counter.run(target, settings.fibers, settings.seconds)
  process.stdout.write(`${JSON.stringify({ result })}\n`)
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provideService(References.MinimumLogLevel, "Error"))).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`counter process failed: ${String(error)}\n`)
    process.exit(1)
  }
)
