/**
 * Large values: what a value costs per MiB written and read, whole in one item (350 KB, beside the peer, which
 * stores nothing larger) and in chunks (1, 4 and 16 MiB; the peer refuses them), one operation at a time so the
 * latency is the value's own, with the capacity units DynamoDB reports per MiB (the store's own requests; no worker
 * runs here, so a superseded version's move into history is not in them). A chunked put writes its chunks (8 at a
 * time) and then its event; a get reads the event and then its chunks in one Query.
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { chunkBytes } from "../../src/infra/ValueChunks.ts"
import type { BenchEnv, Workload } from "../Env.ts"
import { phase } from "../Env.ts"
import type { Figure, Row } from "../Report.ts"
import type { BenchClients } from "../support/Clients.ts"
import { since, snapshot } from "../support/Clients.ts"
import type { PhaseSize } from "../support/Measure.ts"

const mib = 1024 * 1024

/** A phase's p50 as milliseconds per MiB of value, with the phase's own figures and its units per MiB beside it. */
const perMib = (measured: { readonly figure: Figure; readonly units: Units }, bytes: number): Figure => ({
  value: (measured.figure.p50 ?? NaN) / (bytes / mib),
  unit: "ms/MiB",
  p50: measured.figure.p50,
  p99: measured.figure.p99,
  requestsPerOp: measured.figure.requestsPerOp,
  detail: `${(measured.units.writeUnits / (bytes / mib)).toFixed(0)} WRU + ${
    (measured.units.readUnits / (bytes / mib)).toFixed(0)
  } RRU per MiB`
})

/** Capacity units of one operation of a phase. */
interface Units {
  readonly writeUnits: number
  readonly readUnits: number
}

/** A phase with the capacity units DynamoDB reported per operation. */
const costed = <E, R>(clients: BenchClients, size: PhaseSize, op: (i: number) => Effect.Effect<unknown, E, R>) =>
  Effect.gen(function*() {
    const before = snapshot(clients.counters)
    const figure = yield* phase(clients, size, op)
    const used = since(clients.counters, before)
    return {
      figure,
      units: { writeUnits: used.writeUnits / size.operations, readUnits: used.readUnits / size.operations }
    }
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
        const peerPut = chunked ? undefined : yield* costed(
          env.peerClients,
          size,
          (i) => env.peer.put(keyOf(bytes, i), value)
        )
        const put = yield* costed(env.dynastateClients, size, (i) => env.dynastate.put({ key: keyOf(bytes, i), value }))
        rows.push({
          workload: `large value put (${label}), ms per MiB`,
          peer: peerPut === undefined ? undefined : perMib(peerPut, bytes),
          dynastate: perMib(put, bytes),
          better: "lower",
          note: chunked ? "the peer stores at most 400 KB per item" : undefined
        })
        const peerGet = chunked ? undefined : yield* costed(env.peerClients, size, (i) => env.peer.get(keyOf(bytes, i)))
        const get = yield* costed(env.dynastateClients, size, (i) => env.dynastate.get(keyOf(bytes, i)))
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
