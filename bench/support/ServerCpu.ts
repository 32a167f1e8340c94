/**
 * The CPU time of the DynamoDB Local servers this process started (its `java` children), read from `/proc`. On one
 * machine the server and the client share the cores, so a phase's throughput follows the two CPU costs together:
 * a store whose requests cost the server more is slower there even at equal client CPU. Where there is no `/proc`
 * (not Linux) or no such child (a remote `--endpoint`), there is no reading.
 */
import { readdirSync, readFileSync } from "node:fs"

/** Clock ticks a second of `/proc/<pid>/stat`'s CPU times (`USER_HZ`, 100 on every Linux the bench runs on). */
const ticksPerSecond = 100

/**
 * The least server CPU time (µs) a phase must have used for its figure to mean something: twenty clock ticks, so the
 * tick the reading is rounded to is at most 5% of it. A quick run's phases of one or two operations fall below it.
 */
export const leastMeaningfulMicros = (20 * 1_000_000) / ticksPerSecond

/** The server's CPU time per operation (µs) of a phase that used `micros` of it, when that is enough to read. */
export const perOperation = (micros: number | undefined, operations: number): number | undefined =>
  micros === undefined || micros < leastMeaningfulMicros ? undefined : micros / Math.max(1, operations)

/** The fields of a `/proc/<pid>/stat` line after its command name, which may hold spaces and parentheses. */
const statFields = (pid: string): { readonly command: string; readonly fields: ReadonlyArray<string> } | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const close = stat.lastIndexOf(")")
    return { command: stat.slice(stat.indexOf("(") + 1, close), fields: stat.slice(close + 2).split(" ") }
  } catch {
    // The process ended between the listing and the read.
    return undefined
  }
}

/**
 * The user + system CPU time (µs) of this process's `java` children so far (or those of another command and
 * parent), or undefined when none can be read. Read before and after a phase: the difference is what the server spent
 * on it.
 */
export const serverCpuMicros = (command = "java", parentPid = process.pid): number | undefined => {
  let entries: Array<string>
  try {
    entries = readdirSync("/proc")
  } catch {
    return undefined
  }
  const parent = String(parentPid)
  let ticks: number | undefined
  for (const entry of entries) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue
    const stat = statFields(entry)
    // After the name: state, ppid, …; utime and stime are the 14th and 15th fields of the whole line.
    if (stat === undefined || stat.command !== command || stat.fields[1] !== parent) continue
    ticks = (ticks ?? 0) + Number(stat.fields[11]) + Number(stat.fields[12])
  }
  return ticks === undefined ? undefined : (ticks * 1_000_000) / ticksPerSecond
}

/** The server CPU time (µs) spent since a reading of {@link serverCpuMicros}, when both readings exist. */
export const serverCpuSince = (before: number | undefined): number | undefined => {
  if (before === undefined) return undefined
  const now = serverCpuMicros()
  return now === undefined ? undefined : now - before
}
