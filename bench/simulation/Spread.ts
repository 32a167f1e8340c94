/**
 * How a run's units of one kind spread over the partition-key values of one area (the chunks of large values, the
 * history copies, the live events): over how many values, and how much of them the busiest carries. A layout that
 * files an area beside each bucket shows it here: one value holding every chunk of a namespace, or the chunks spread
 * with their keys. Pure: computed from the loads the partition model sums (`PartitionModel.loadsOf`).
 */
import type { Load } from "./PartitionModel.ts"
import type { Kind } from "./Touches.ts"

/** An area's units over its partition-key values. */
export interface Spread {
  /** Values that carried any of the units. */
  readonly partitions: number
  readonly units: number
  /** The busiest value's share of the units (0 when there are none). */
  readonly busiestShare: number
}

/** The partition keys of an area: those ending in `NUL ‖ area` (`<live partition>\0chunks`, as the store files them). */
export const inArea = (area: string) => (load: Load): boolean => load.pk.endsWith(`\u0000${area}`)

/** How the `kind` units of the loads `select` accepts spread over their partition-key values. */
export const spreadOf = (loads: ReadonlyArray<Load>, select: (load: Load) => boolean, kind: Kind): Spread => {
  const units = loads.filter(select).map((load) => kind === "write" ? load.writeUnits : load.readUnits)
    .filter((u) => u > 0)
  const total = units.reduce((sum, u) => sum + u, 0)
  return {
    partitions: units.length,
    units: total,
    busiestShare: total === 0 ? 0 : Math.max(...units) / total
  }
}
