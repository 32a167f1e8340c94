/**
 * The figures of a campaign and its checks, printed at the end of a run (and in a failing test's message).
 */
import type { CampaignRecord } from "./Campaign.ts"
import type { CheckOutcome } from "./Checks.ts"

/** The figures of a campaign and its checks, for the end of a run. */
export const report = (record: CampaignRecord, outcomes: ReadonlyArray<CheckOutcome>, seconds: number): string => {
  const lines = [
    `chaos campaign: seed ${record.seed}, ${seconds} s of faults, table ${record.table}`,
    `operations: ${record.operations.ok} ok, ${record.operations.failed} failed, ${record.operations.indeterminate} indeterminate` +
    ` (${record.ttlOps.length} of them writes with expiries)`,
    `indeterminate: ${Object.entries(record.indeterminateBy).map(([why, n]) => `${why} ${n}`).join(", ") || "none"}`,
    ...record.samples.map((sample) => `  e.g. ${sample}`),
    `faults: ${Object.entries(record.faults).map(([kind, n]) => `${kind} ${n}`).join(", ")}`,
    `processes: ${record.kills} killed, ${record.pauses} paused, ${record.restarts} restarted`
  ]
  for (const outcome of outcomes) {
    lines.push(
      `check ${outcome.name}: ${outcome.violations.length === 0 ? "ok" : `${outcome.violations.length} violation(s)`}${
        outcome.note === undefined ? "" : ` (${outcome.note})`
      }`
    )
    for (const violation of outcome.violations.slice(0, 10)) lines.push(`  ${violation.replaceAll("\n", "\n  ")}`)
  }
  // The workers' last words say why a projection lags or gave up on a key.
  if (outcomes.some((o) => ["expiry", "replica", "index"].includes(o.name) && o.violations.length > 0)) {
    for (const worker of record.workers) {
      lines.push(`last log lines of ${worker.name}:`, ...worker.stderrTail().map((line) => `  ${line.slice(0, 300)}`))
    }
  }
  lines.push(`violations: ${outcomes.reduce((n, o) => n + o.violations.length, 0)}`)
  return lines.join("\n")
}
