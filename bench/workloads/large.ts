/**
 * Large values: what a value costs per MiB written and read, whole in one item (350 KB, beside the peer, which
 * stores nothing larger) and in chunks (1, 4 and 16 MiB; the peer refuses them), one operation at a time so the
 * latency is the value's own. A chunked put writes its chunks (8 at a time) and then its event; a get reads the
 * event and then its chunks in one Query.
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { chunkBytes } from "../../src/infra/ValueChunks.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import { phase } from "../Env.ts"
import type { Figure, Row } from "../Report.ts"

const mib = 1024 * 1024

/** A phase's p50 as milliseconds per MiB of value, with the phase's own figures beside it. */
const perMib = (figure: Figure, bytes: number): Figure => ({
  value: (figure.p50 ?? NaN) / (bytes / mib),
  unit: "ms/MiB",
  p50: figure.p50,
  p99: figure.p99,
  requestsPerOp: figure.requestsPerOp
})

const operationsOf = (env: BenchEnv, bytes: number) =>
  env.options.quick ? 2 : bytes >= 16 * mib ? 3 : bytes >= 4 * mib ? 4 : 8

/** Put and get of whole and chunked values, in ms per MiB. */
export const largeValues: Workload = {
  name: "large",
  run: (env) =>
    Effect.gen(function*() {
      const rows: Array<Row> = []
      // Two keys per size, written in turn: every put is a new event with chunks of its own.
      const keyOf = (bytes: number, i: number) => `/large/${bytes}/${i % 2}`
      const whole = 350 * 1024
      const sizes = env.options.quick ? [whole, mib] : [whole, mib, 4 * mib, 16 * mib]
      for (const bytes of sizes) {
        const value = new Uint8Array(randomBytes(bytes))
        const size = { operations: operationsOf(env, bytes), concurrency: 1 }
        const chunked = bytes > whole
        const label = chunked ? `${bytes / mib} MiB, ${Math.ceil(bytes / chunkBytes)} chunks` : "350 KB, one item"
        const peerPut = chunked ? undefined : yield* phase(
          env.peerClients,
          size,
          (i) => env.peer.put(keyOf(bytes, i), value)
        )
        const put = yield* phase(env.dynastateClients, size, (i) => env.dynastate.put({ key: keyOf(bytes, i), value }))
        rows.push({
          workload: `large value put (${label}), ms per MiB`,
          peer: peerPut === undefined ? undefined : perMib(peerPut, bytes),
          dynastate: perMib(put, bytes),
          better: "lower",
          note: chunked ? "the peer stores at most 400 KB per item" : undefined
        })
        const peerGet = chunked ? undefined : yield* phase(env.peerClients, size, (i) => env.peer.get(keyOf(bytes, i)))
        const get = yield* phase(env.dynastateClients, size, (i) => env.dynastate.get(keyOf(bytes, i)))
        rows.push({
          workload: `large value get (${label}), ms per MiB`,
          peer: peerGet === undefined ? undefined : perMib(peerGet, bytes),
          dynastate: perMib(get, bytes),
          better: "lower"
        })
      }
      return rows
    })
}
