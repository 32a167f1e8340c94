/**
 * A writer process of the fault campaign: its own store instance (`StoreLive.layer`, configured like an
 * application, talking to DynamoDB through its fault proxy), running the operations the controller sends on stdin
 * and answering each on stdout (see Protocol.ts). It runs operations as they come, concurrently; the controller
 * decides how many are in flight. It ends when stdin closes (or when it is killed, which is the point).
 */
import { Context, Effect, Exit, Layer, Option, References } from "effect"
import * as readline from "node:readline"
import { load } from "../../src/infra/StoreConfig.ts"
import * as StoreLive from "../../src/programs/app/StoreLive.ts"
import { Store } from "../../src/programs/store/Store.ts"
import type { KvErrorTag, KvOutput } from "../properties/linearizability/KvModel.ts"
import { bytes, callFor, refusals } from "../properties/linearizability/storeHistory.ts"
import type { Request, Response } from "./Protocol.ts"
import { logLevel, numberSetting, send, storeEnvironment } from "./Protocol.ts"

const opTimeoutMillis = numberSetting("CHAOS_OP_TIMEOUT")

const run = (store: Store["Service"], request: Request): Effect.Effect<Response> => {
  const input = request.input
  const call: Effect.Effect<KvOutput, { readonly _tag: string }> = input._tag === "PutTtl"
    ? Effect.map(
      store.put({ key: input.key, value: bytes(input.value), expires: Date.now() + input.ttlMillis }),
      (lease): KvOutput => ({ _tag: "Ok", revision: lease.revision })
    )
    : callFor(store, input)
  return call.pipe(
    Effect.timeoutOption(opTimeoutMillis),
    Effect.exit,
    Effect.map((exit): Response => {
      if (Exit.isSuccess(exit)) {
        return Option.isSome(exit.value)
          ? { id: request.id, status: "ok", output: exit.value.value }
          : { id: request.id, status: "indeterminate", error: "Timeout" }
      }
      const error = Exit.findErrorOption(exit)
      if (Option.isSome(error) && refusals.has(error.value._tag)) {
        return { id: request.id, status: "failed", output: { _tag: "Err", tag: error.value._tag as KvErrorTag } }
      }
      const reason = Option.isSome(error) ? (error.value as { readonly reason?: unknown }).reason : undefined
      return {
        id: request.id,
        status: "indeterminate",
        error: Option.isSome(error) ? error.value._tag : "Defect",
        ...(typeof reason === "string" ? { reason: reason.slice(0, 200) } : {})
      }
    })
  )
}

const program = Effect.gen(function*() {
  const config = yield* load({ env: storeEnvironment() })
  const context = yield* Layer.build(StoreLive.layer(config))
  const store = Context.get(context, Store)
  send({ ready: true })
  const lines = readline.createInterface({ input: process.stdin })
  yield* Effect.callback<void>((resume) => {
    lines.on("line", (line) => {
      if (line.trim() === "") return
      const request = JSON.parse(line) as Request
      Effect.runFork(Effect.map(run(store, request), send))
    })
    lines.on("close", () => resume(Effect.void))
  })
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provideService(References.MinimumLogLevel, logLevel()))).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`writer failed: ${String(error)}\n`)
    process.exit(1)
  }
)
