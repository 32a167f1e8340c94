/**
 * Resident memory after touching many distinct keys (a write to each), each count in a fresh child process with a
 * stub transport, after garbage collection: whether idle actors are passivated, so memory stays flat however
 * many keys a process has written.
 */
import { Effect } from "effect"
import type { Workload } from "../Env.ts"
import type { MemoryResult, MemorySettings } from "../processes/memoryProcess.ts"
import type { Figure, Row } from "../Report.ts"
import * as Children from "../support/Children.ts"

/** Native memory, with what is known of it: malloc's main arena, and the most seen while writing. */
const native = (result: MemoryResult): ReadonlyArray<string> => {
  if (result.nativeAfter === undefined) return []
  const arena = result.mainArenaAfter === undefined ? "" : ` (malloc's main arena ${result.mainArenaAfter.toFixed(0)})`
  const peak = result.nativePeak === undefined ? "" : `, at most ${result.nativePeak.toFixed(0)} while writing`
  const settled = result.nativeSettled === undefined ? "" : `, ${result.nativeSettled.toFixed(0)} two seconds later`
  return [`native ${result.nativeAfter.toFixed(0)} MiB${arena}${peak}${settled}`]
}

const figure = (result: MemoryResult): Figure => ({
  value: result.rssAfter,
  unit: "MiB RSS",
  detail: [
    `heap ${result.heapAfter.toFixed(0)} MiB used`,
    `young generation ${result.youngAfter.toFixed(0)} MiB`,
    `V8 ${result.v8After.toFixed(0)} MiB resident`,
    ...native(result),
    ...(result.fileAfter === undefined ? [] : [`files ${result.fileAfter.toFixed(0)} MiB`]),
    `${(result.rssAfter - result.rssBefore).toFixed(0)} MiB grown in ${result.seconds.toFixed(0)} s`
  ].join(", ")
})

/** The same child's RSS once V8 gave back what it keeps for reuse. */
const released = (result: MemoryResult): Figure => ({
  value: result.rssReleased,
  unit: "MiB RSS",
  detail: result.nativeReleased === undefined ? undefined : `native ${result.nativeReleased.toFixed(0)} MiB`
})

/** RSS after each of `--memory-keys` distinct keys, peer and dynastate. */
export const memory: Workload = {
  name: "memory",
  run: (env) =>
    Effect.gen(function*() {
      const probe = (store: "peer" | "dynastate", keys: number) =>
        Effect.scoped(Effect.gen(function*() {
          const settings: MemorySettings = {
            store,
            keys,
            table: store === "peer" ? env.peer.table : env.dynastateTable,
            key: env.key,
            valueBytes: env.options.valueBytes
          }
          const child = yield* Children.start(
            new URL("../processes/memoryProcess.ts", import.meta.url),
            { BENCH_MEMORY: JSON.stringify(settings) },
            ["--expose-gc"]
          )
          return (yield* child.result) as MemoryResult
        }))
      const rows: Array<Row> = []
      for (const keys of env.options.memoryKeys) {
        const peer = yield* probe("peer", keys)
        const dynastate = yield* probe("dynastate", keys)
        const count = keys.toLocaleString("en-US")
        rows.push({
          workload: `resident memory after ${count} distinct keys (stub transport, after GC)`,
          peer: figure(peer),
          dynastate: figure(dynastate),
          better: "lower"
        }, {
          workload: `resident memory after ${count} distinct keys, once V8 gave back what it keeps for reuse ` +
            "(a last-resort collection, as under memory pressure)",
          peer: released(peer),
          dynastate: released(dynastate),
          better: "lower"
        })
      }
      return rows
    })
}
