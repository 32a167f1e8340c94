/**
 * Every workload of the bench, in the order they run.
 */
import type { Workload } from "../Env.ts"
import { atomicWrite } from "./atomic.ts"
import { capacity } from "./capacity.ts"
import { contention } from "./contention.ts"
import { clientCpu } from "./cpu.ts"
import { history } from "./history.ts"
import { keyringCalls } from "./keyring.ts"
import { create, putGet } from "./keyValue.ts"
import { largeValues } from "./large.ts"
import { memory } from "./memory.ts"
import { partitions } from "./partitions.ts"
import { deleteRange, rangeRead } from "./ranges.ts"
import { strictMode } from "./strict.ts"
import { watchLatency } from "./watch.ts"
import { projectionWorker } from "./worker.ts"

/** The workloads, by `--only` name. */
export const workloads: ReadonlyArray<Workload> = [
  putGet,
  create,
  strictMode,
  rangeRead,
  deleteRange,
  contention,
  atomicWrite,
  watchLatency,
  projectionWorker,
  history,
  largeValues,
  keyringCalls,
  clientCpu,
  memory,
  capacity,
  partitions
]
