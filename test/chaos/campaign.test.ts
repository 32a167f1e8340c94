/**
 * The fault campaign, short: writer and worker processes behind fault proxies on one DynamoDB Local table, with
 * kills, pauses and partitions, then every check of Checks.ts. The seed is fixed (CHAOS_SEED overrides it) and
 * printed with the figures; `npm run test:chaos` runs long campaigns.
 */
import { afterAll, describe, expect, it } from "vitest"
import { endpoint, makeClient } from "../support/TestStore.ts"
import * as Campaign from "./Campaign.ts"
import { checkAll } from "./Checks.ts"
import type { CheckOutcome } from "./Checks.ts"
import { killAll } from "./Children.ts"
import { report } from "./Report.ts"

const seed = Number(process.env["CHAOS_SEED"] ?? 20261202)
// About 65 s in all on an idle 2-core machine (setup, 25 s of faults, healing, checks); more when it is busy.
const seconds = 25
const client = makeClient()

afterAll(() => {
  killAll()
  client.destroy()
})

describe("fault campaign with real processes", () => {
  it(`seed ${seed}: histories stay linearizable and nothing acknowledged is lost`, { timeout: 300_000 }, async () => {
    const { close, record } = await Campaign.run({ seed, seconds, writers: 3, endpoint: endpoint(), client })
    let outcomes: ReadonlyArray<CheckOutcome> = []
    try {
      outcomes = await checkAll(record, endpoint(), client)
    } finally {
      await close()
    }
    const figures = report(record, outcomes, seconds)
    console.log(figures)
    // The campaign must have done what it claims, or a green run proves nothing.
    expect(record.operations.ok, figures).toBeGreaterThan(50)
    expect(record.kills + record.pauses, figures).toBeGreaterThan(0)
    expect(record.faults.lostResponse + record.faults.reset + record.faults.blackhole, figures).toBeGreaterThan(0)
    expect(outcomes.map((o) => o.name).sort()).toEqual(
      ["expiry", "historyFold", "index", "linearizable", "lostWrites", "plaintext", "replica"]
    )
    for (const outcome of outcomes) expect(outcome.violations, `seed ${seed}\n${figures}`).toEqual([])
  })
})
