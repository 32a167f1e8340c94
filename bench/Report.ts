/**
 * The bench's results: one row per measured figure, each with the raw SDK baseline (where there is one), the
 * teleport-shaped peer and dynastate, and the ratio dynastate/peer; printed as one Markdown table and as JSON.
 */
import type { Sample } from "./support/Measure.ts"
import { percentile, throughput } from "./support/Measure.ts"
import { perOperation } from "./support/ServerCpu.ts"

/** One side of a row: a timed phase (throughput, p50, p99) or a single figure with its unit. */
export interface Figure {
  readonly throughput?: number | undefined
  readonly p50?: number | undefined
  readonly p99?: number | undefined
  /** DynamoDB requests per operation, when counted. */
  readonly requestsPerOp?: number | undefined
  /**
   * The process's CPU time per operation (µs, user + system) while a phase ran against a real DynamoDB: the client's
   * whole cost, the HTTP transport included, where the stub-transport rows leave the transport out.
   */
  readonly cpuPerOp?: number | undefined
  /**
   * The DynamoDB Local server's CPU time per operation (µs) in the same phase, when the bench started it (see
   * `ServerCpu`) and the phase was long enough to read it: on one machine throughput follows this and `cpuPerOp`
   * together.
   */
  readonly serverCpuPerOp?: number | undefined
  readonly value?: number | undefined
  readonly unit?: string | undefined
  /** More of the figure, in words (units per operation behind a price, what a lag was sampled from). */
  readonly detail?: string | undefined
}

/** One line of the table. */
export interface Row {
  readonly workload: string
  readonly raw?: Figure | undefined
  readonly peer?: Figure | undefined
  readonly dynastate?: Figure | undefined
  /** Whether a larger ratio is better (throughput) or worse (latency, CPU, memory, capacity). */
  readonly better: "higher" | "lower"
  /** What dynastate is compared with: the peer (default), or the raw SDK where the peer has no such thing. */
  readonly baseline?: "peer" | "raw" | undefined
  readonly note?: string | undefined
}

/**
 * A timed phase as a figure; with the client's and the server's CPU per operation when `cpu` is set (see
 * `Figure.cpuPerOp` and `Figure.serverCpuPerOp`).
 */
export const figureOf = (sample: Sample, requests?: number, cpu = false): Figure => ({
  throughput: throughput(sample),
  p50: percentile(sample.latencies, 50),
  p99: percentile(sample.latencies, 99),
  requestsPerOp: requests === undefined ? undefined : requests / Math.max(1, sample.operations),
  cpuPerOp: cpu && sample.cpuMicros !== undefined ? sample.cpuMicros / Math.max(1, sample.operations) : undefined,
  serverCpuPerOp: cpu ? perOperation(sample.serverCpuMicros, sample.operations) : undefined
})

/** The best of several rounds' figures: highest throughput, or lowest value (or p50 for latency-only figures). */
export const best = (figures: ReadonlyArray<Figure>, better: "higher" | "lower" = "higher"): Figure =>
  figures.reduce((a, b) => {
    const score = (f: Figure) => f.throughput ?? f.value ?? f.p50 ?? 0
    if (better === "higher") return score(b) > score(a) ? b : a
    return score(b) < score(a) ? b : a
  })

const scalar = (figure: Figure | undefined): number | undefined =>
  figure === undefined ? undefined : figure.throughput ?? figure.value ?? figure.p50

/** dynastate/peer of a row's main figure (throughput, else value, else p50). */
export const ratio = (row: Row): number | undefined => {
  const dynastate = scalar(row.dynastate)
  const peer = scalar(row.baseline === "raw" ? row.raw : row.peer)
  return dynastate === undefined || peer === undefined || peer === 0 ? undefined : dynastate / peer
}

const number = (value: number): string =>
  !Number.isFinite(value)
    ? "—"
    : value >= 100
    ? value.toFixed(0)
    : value >= 10
    ? value.toFixed(1)
    : value >= 1
    ? value.toFixed(2)
    : value.toFixed(3)

const cell = (figure: Figure | undefined): string => {
  if (figure === undefined) return ""
  const parts: Array<string> = []
  if (figure.throughput !== undefined) parts.push(`${number(figure.throughput)}/s`)
  if (figure.value !== undefined) parts.push(`${number(figure.value)} ${figure.unit ?? ""}`.trim())
  if (figure.p50 !== undefined) parts.push(`p50 ${number(figure.p50)} ms`)
  if (figure.p99 !== undefined) parts.push(`p99 ${number(figure.p99)} ms`)
  if (figure.requestsPerOp !== undefined) parts.push(`${number(figure.requestsPerOp)} req/op`)
  if (figure.cpuPerOp !== undefined) parts.push(`${number(figure.cpuPerOp)} µs CPU/op`)
  if (figure.serverCpuPerOp !== undefined) parts.push(`${number(figure.serverCpuPerOp)} µs server CPU/op`)
  if (figure.detail !== undefined) parts.push(figure.detail)
  return parts.join(" · ")
}

/** The rows as one Markdown table. */
export const table = (rows: ReadonlyArray<Row>): string => {
  const lines = [
    "| workload | raw SDK | teleport-shaped peer | dynastate | dynastate/peer |",
    "|---|---|---|---|---|"
  ]
  for (const row of rows) {
    const r = ratio(row)
    const ratioText = r === undefined
      ? ""
      : `${number(r)} ${row.better === "higher" ? "↑" : "↓"}${row.baseline === "raw" ? " (of raw)" : ""}`
    const workload = row.note === undefined ? row.workload : `${row.workload} (${row.note})`
    lines.push(`| ${workload} | ${cell(row.raw)} | ${cell(row.peer)} | ${cell(row.dynastate)} | ${ratioText} |`)
  }
  return lines.join("\n")
}

/** The rows as JSON, each with its ratio. */
export const json = (
  rows: ReadonlyArray<Row>,
  context: Record<string, unknown>,
  failures: ReadonlyArray<{ readonly workload: string; readonly error: string }>
): string => JSON.stringify({ ...context, rows: rows.map((row) => ({ ...row, ratio: ratio(row) })), failures }, null, 2)
