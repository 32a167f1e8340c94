/**
 * Timing of a phase: a number of operations (or a duration) run by a number of fibers, each operation timed.
 */
import { Effect } from "effect"
import { serverCpuMicros, serverCpuSince } from "./ServerCpu.ts"

/** What a phase did: how many operations, in how long, and each one's latency (ms, sorted). */
export interface Sample {
  readonly operations: number
  readonly seconds: number
  readonly latencies: ReadonlyArray<number>
  /** The process's CPU time (user + system, µs) while the phase ran, when it was timed by {@link measure}. */
  readonly cpuMicros?: number | undefined
  /**
   * The DynamoDB Local server's CPU time (µs) over the phase, when it is this process's child (see `ServerCpu`); it
   * counts every client's requests in that time, so only a phase that runs alone is measured by it.
   */
  readonly serverCpuMicros?: number | undefined
}

/** How long and how wide a phase runs. */
export interface PhaseSize {
  readonly operations: number
  readonly concurrency: number
  /** When set, the phase runs this long (and `operations` is ignored). */
  readonly seconds?: number | undefined
}

/** The p-th percentile (0–100) of sorted values, NaN when there are none. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

/** Operations per second of a sample. */
export const throughput = (sample: Sample): number => sample.operations / sample.seconds

/**
 * Runs `op(i)` for i = 0, 1, … on `concurrency` fibers until `operations` were run (or `seconds` passed), timing
 * each. A failing operation fails the phase: the bench reports breakage, it does not average it away.
 */
export const measure = <E, R>(size: PhaseSize, op: (i: number) => Effect.Effect<unknown, E, R>) =>
  Effect.gen(function*() {
    const latencies: Array<number> = []
    let next = 0
    const serverBefore = serverCpuMicros()
    const cpuBefore = process.cpuUsage()
    const started = performance.now()
    const deadline = size.seconds === undefined ? Infinity : started + size.seconds * 1000
    const more = () => (size.seconds === undefined ? next < size.operations : performance.now() < deadline)
    const fiber = Effect.gen(function*() {
      while (more()) {
        const i = next++
        const t0 = performance.now()
        yield* op(i)
        latencies.push(performance.now() - t0)
      }
    })
    yield* Effect.all(Array.from({ length: size.concurrency }, () => fiber), {
      concurrency: "unbounded",
      discard: true
    })
    const seconds = (performance.now() - started) / 1000
    const cpu = process.cpuUsage(cpuBefore)
    return {
      operations: latencies.length,
      seconds,
      latencies: latencies.sort((a, b) => a - b),
      cpuMicros: cpu.user + cpu.system,
      serverCpuMicros: serverCpuSince(serverBefore)
    } satisfies Sample
  })

/** Times one effect (ms). */
export const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const t0 = performance.now()
    const value = yield* effect
    return { value, millis: performance.now() - t0 }
  })

/** Sorted copy of some latencies, as a sample over `seconds`. */
export const sampleOf = (latencies: ReadonlyArray<number>, seconds: number): Sample => ({
  operations: latencies.length,
  seconds,
  latencies: [...latencies].sort((a, b) => a - b)
})
