/**
 * A model of DynamoDB's per-partition throughput limits, which DynamoDB Local does not enforce: given the requests a
 * run sent (`Touches`), the highest rate of logical operations the same request pattern can sustain before some
 * partition-key value is throttled, which value limits it, and a time-stepped replay showing throttling above it.
 *
 * The documented figures it rests on:
 * - Each partition serves at most 3,000 read units and 1,000 write units per second, whatever the table's capacity
 *   (bp-partition-key-design.html: "every partition in the table will strive to deliver the full capacity of 3,000 RCU
 *   and 1,000 WCU"; warm-throughput-scenarios.html: "each individual partition is limited to 1000 write units per
 *   second and 3000 read units per second").
 * - Reads and writes are throttled independently (throttling-key-range-limit-exceeded-mitigation.html: "a partition
 *   may throttle reads while writes continue normally, or vice versa").
 * - Adaptive capacity can isolate a hot item (or a hot partition-key value) on a partition of its own, but that
 *   partition is still capped at the same limits (burst-adaptive-capacity.html, "Isolate frequently accessed items").
 * - Split for heat may divide one value's item collection by sort-key ranges when its traffic is spread over them
 *   (AWS Database Blog, "Scaling DynamoDB: How partitions, hot keys, and split for heat impact performance"), but it
 *   is reactive, comes with no documented figure, and does not help one hot key or writes at one end of a range.
 *
 * The model's assumptions, so its figures read as what they are:
 * - One partition-key value is served by at most one partition's limits (the conservative reading of the above: no
 *   split of one value's item collection is counted on, so the single-partition ceiling is what a namespace is sure
 *   of, not the most it might see), and distinct values never slow each other (the optimistic reading: every value
 *   may end up isolated on a partition of its own). The ceiling is therefore set by the busiest value alone.
 * - Burst capacity (up to 300 s of unused provisioned capacity) and table-level limits (provisioned or on-demand
 *   maxima, account quotas) are not modelled: only the per-partition ceiling, which no table setting lifts.
 * - The request pattern scales linearly: N times the operations send N times each value's units.
 *
 * Links: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ + the page names above.
 */
import type { Kind, TracedRequest } from "./Touches.ts"

/** Units per second one partition serves. */
export interface Limits {
  readonly readUnitsPerSecond: number
  readonly writeUnitsPerSecond: number
}

/** DynamoDB's documented per-partition limits. */
export const documentedLimits: Limits = { readUnitsPerSecond: 3000, writeUnitsPerSecond: 1000 }

const limitOf = (limits: Limits, kind: Kind): number =>
  kind === "read" ? limits.readUnitsPerSecond : limits.writeUnitsPerSecond

/** What one partition-key value of one table received over a trace. */
export interface Load {
  readonly table: string
  readonly pk: string
  readonly readUnits: number
  readonly writeUnits: number
}

const id = (table: string, pk: string) => `${table}\u0000${pk}`

/** Units per partition-key value over a trace, busiest writes first. */
export const loadsOf = (requests: ReadonlyArray<TracedRequest>): Array<Load> => {
  const loads = new Map<string, { table: string; pk: string; readUnits: number; writeUnits: number }>()
  for (const request of requests) {
    for (const touch of request.touches) {
      const load = loads.get(id(touch.table, touch.pk)) ??
        { table: touch.table, pk: touch.pk, readUnits: 0, writeUnits: 0 }
      loads.set(id(touch.table, touch.pk), load)
      if (touch.kind === "read") load.readUnits += touch.units
      else load.writeUnits += touch.units
    }
  }
  return [...loads.values()].sort((a, b) => b.writeUnits - a.writeUnits || b.readUnits - a.readUnits)
}

/** The value that limits the rate, and how much of its kind's units it takes. */
export interface Bottleneck {
  readonly table: string
  readonly pk: string
  readonly kind: Kind
  readonly unitsPerOperation: number
  /** Its share of all units of its kind (1 when every write goes to it). */
  readonly share: number
}

/** The sustained ceiling of a trace's request pattern. */
export interface Ceiling {
  /** Logical operations per second at which the busiest value reaches its limit (Infinity with no units at all). */
  readonly operationsPerSecond: number
  readonly bottleneck: Bottleneck | undefined
  /** All tables' write and read units per second at that rate. */
  readonly writeUnitsPerSecond: number
  readonly readUnitsPerSecond: number
  readonly writeUnitsPerOperation: number
  readonly readUnitsPerOperation: number
  /** Distinct partition-key values the trace touched. */
  readonly partitions: number
}

/**
 * The highest rate of logical operations (the trace holds `operations` of them) at which no partition-key value
 * exceeds its limit: min over values and kinds of limit / units per operation.
 */
export const ceiling = (
  requests: ReadonlyArray<TracedRequest>,
  operations: number,
  limits: Limits = documentedLimits
): Ceiling => {
  if (!(operations > 0)) throw new RangeError(`a ceiling needs a positive number of operations, got ${operations}`)
  const loads = loadsOf(requests)
  const total = { read: 0, write: 0 }
  for (const load of loads) {
    total.read += load.readUnits
    total.write += load.writeUnits
  }
  let best: { rate: number; bottleneck: Bottleneck } | undefined
  for (const load of loads) {
    for (const kind of ["write", "read"] as const) {
      const units = kind === "read" ? load.readUnits : load.writeUnits
      if (units <= 0) continue
      const rate = limitOf(limits, kind) / (units / operations)
      if (best === undefined || rate < best.rate) {
        best = {
          rate,
          bottleneck: {
            table: load.table,
            pk: load.pk,
            kind,
            unitsPerOperation: units / operations,
            share: units / total[kind]
          }
        }
      }
    }
  }
  const rate = best?.rate ?? Infinity
  return {
    operationsPerSecond: rate,
    bottleneck: best?.bottleneck,
    writeUnitsPerSecond: (rate * total.write) / operations,
    readUnitsPerSecond: (rate * total.read) / operations,
    writeUnitsPerOperation: total.write / operations,
    readUnitsPerOperation: total.read / operations,
    partitions: loads.length
  }
}

/** What a replay at an offered rate found. */
export interface Replay {
  readonly offeredOperationsPerSecond: number
  readonly seconds: number
  /** Share of the write (read) units that came in above some value's limit in their step. */
  readonly throttledWriteShare: number
  readonly throttledReadShare: number
  /** Steps (of `stepMillis`) in which some value exceeded its limit. */
  readonly throttledSteps: number
  readonly steps: number
  /** The value with the most throttled units. */
  readonly worst: { readonly table: string; readonly pk: string; readonly kind: Kind } | undefined
}

/** How to replay a trace. */
export interface ReplayOptions {
  /** Logical operations the trace holds. */
  readonly operations: number
  /** The rate to replay at: the trace's timeline is compressed (or stretched) to send this many per second. */
  readonly offeredOperationsPerSecond: number
  /** Simulated time; the trace repeats until it is filled. */
  readonly seconds: number
  readonly stepMillis?: number | undefined
  readonly limits?: Limits | undefined
}

/**
 * Replays a trace's requests, with their own timing, at `offeredOperationsPerSecond`: the timeline is scaled so the
 * trace's operations arrive at that rate and repeated to fill `seconds`; each partition-key value may take its limit
 * per second in each step, and what comes in above it counts as throttled (not retried: the share is of the
 * offered units). Bursty traffic throttles below the steady-state ceiling; a smooth one only above it.
 */
export const replay = (requests: ReadonlyArray<TracedRequest>, options: ReplayOptions): Replay => {
  const stepMillis = options.stepMillis ?? 1000
  const limits = options.limits ?? documentedLimits
  const steps = Math.max(1, Math.ceil((options.seconds * 1000) / stepMillis))
  const empty: Replay = {
    offeredOperationsPerSecond: options.offeredOperationsPerSecond,
    seconds: options.seconds,
    throttledWriteShare: 0,
    throttledReadShare: 0,
    throttledSteps: 0,
    steps,
    worst: undefined
  }
  if (requests.length === 0 || !(options.operations > 0) || !(options.offeredOperationsPerSecond > 0)) return empty
  const first = Math.min(...requests.map((r) => r.at))
  const last = Math.max(...requests.map((r) => r.at))
  // The trace lasts as long as its operations take at the offered rate; its requests keep their relative timing.
  const span = (options.operations / options.offeredOperationsPerSecond) * 1000
  const scale = last > first ? span / (last - first) : 0
  const horizon = steps * stepMillis
  if ((horizon / span) * requests.length > 50_000_000) {
    throw new RangeError(
      `replaying ${requests.length} requests ${Math.ceil(horizon / span)} times is too long a replay`
    )
  }
  const perStep = new Map<string, { table: string; pk: string; kind: Kind; units: Array<number> }>()
  const total = { read: 0, write: 0 }
  for (let origin = 0; origin < horizon; origin += span) {
    for (const request of requests) {
      const t = origin + (request.at - first) * scale
      if (t >= horizon) continue
      const step = Math.floor(t / stepMillis)
      for (const touch of request.touches) {
        const key = `${id(touch.table, touch.pk)}\u0000${touch.kind}`
        const entry = perStep.get(key) ?? { table: touch.table, pk: touch.pk, kind: touch.kind, units: [] }
        perStep.set(key, entry)
        entry.units[step] = (entry.units[step] ?? 0) + touch.units
        total[touch.kind] += touch.units
      }
    }
  }
  const throttled = { read: 0, write: 0 }
  const throttledSteps = new Set<number>()
  let worst: { entry: { table: string; pk: string; kind: Kind }; units: number } | undefined
  for (const entry of perStep.values()) {
    const allowed = (limitOf(limits, entry.kind) * stepMillis) / 1000
    let over = 0
    entry.units.forEach((units, step) => {
      if (units > allowed) {
        over += units - allowed
        throttledSteps.add(step)
      }
    })
    throttled[entry.kind] += over
    if (over > 0 && (worst === undefined || over > worst.units)) worst = { entry, units: over }
  }
  return {
    ...empty,
    throttledWriteShare: total.write === 0 ? 0 : throttled.write / total.write,
    throttledReadShare: total.read === 0 ? 0 : throttled.read / total.read,
    throttledSteps: throttledSteps.size,
    worst: worst === undefined ? undefined : { table: worst.entry.table, pk: worst.entry.pk, kind: worst.entry.kind }
  }
}
