/**
 * The contended counter: fibers incrementing one key by read, then compare-and-swap, trying again when another
 * fiber won. Written once for both stores, in-process and in the child processes.
 */
import { Effect } from "effect"
import type { StoreService } from "../../src/programs/store/Store.ts"
import type { TeleportStore } from "../peer/TeleportStore.ts"

/** What the counter needs of a store: the current value, and a swap that says whether it won. */
export interface CounterTarget {
  readonly read: Effect.Effect<Uint8Array, unknown>
  readonly swap: (expected: Uint8Array, next: Uint8Array) => Effect.Effect<boolean, unknown>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The counter's value as stored. */
export const encode = (n: number): Uint8Array => encoder.encode(String(n))

/** The stored bytes as a number. */
export const decode = (bytes: Uint8Array): number => Number(decoder.decode(bytes))

/** dynastate's `get` + `compareAndSwap`. */
export const dynastateTarget = (store: StoreService, key: string): CounterTarget => ({
  read: Effect.map(store.get(key), (item) => item.value),
  swap: (expected, next) =>
    store.compareAndSwap({ key, value: expected }, { key, value: next }).pipe(
      Effect.as(true),
      Effect.catchTag("CompareFailed", () => Effect.succeed(false))
    )
})

/** The peer's consistent `GetItem` + `PutItem` conditional on the value. */
export const peerTarget = (peer: TeleportStore, key: string): CounterTarget => ({
  read: Effect.flatMap(
    peer.get(key),
    (item) => item === undefined ? Effect.die(new Error(`counter ${key} is missing`)) : Effect.succeed(item.value)
  ),
  swap: (expected, next) =>
    peer.compareAndSwap(key, expected, next).pipe(
      Effect.as(true),
      Effect.catchTag("PeerConditionFailed", () => Effect.succeed(false))
    )
})

/** What the fibers did: increments that won, attempts that lost, and each increment's latency (ms). */
export interface CounterResult {
  readonly increments: number
  readonly conflicts: number
  readonly latencies: Array<number>
  readonly seconds: number
}

/** `fibers` fibers incrementing for `seconds`. */
export const run = (target: CounterTarget, fibers: number, seconds: number) =>
  Effect.gen(function*() {
    const result = { increments: 0, conflicts: 0, latencies: [] as Array<number> }
    const started = performance.now()
    const deadline = started + seconds * 1000
    const fiber = Effect.gen(function*() {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        while (true) {
          const current = yield* target.read
          if (yield* target.swap(current, encode(decode(current) + 1))) break
          result.conflicts++
        }
        result.increments++
        result.latencies.push(performance.now() - t0)
      }
    })
    yield* Effect.all(Array.from({ length: fibers }, () => fiber), { concurrency: "unbounded", discard: true })
    return { ...result, seconds: (performance.now() - started) / 1000 } satisfies CounterResult
  })
