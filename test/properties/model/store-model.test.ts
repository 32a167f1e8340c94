/**
 * Model-based test of the store's whole contract: random command sequences
 * (fc.commands) run against two store instances on DynamoDB Local and,
 * step by step, against the independent reference model; every result must
 * agree. The TestClock drives expiry for the store and the model alike. Each
 * run gets a fresh namespace, so runs are independent.
 *
 * Replay a failure: FC_SEED=<seed> FC_PATH=<path> [FC_REPLAY_PATH=<replayPath>].
 */
import fc from "fast-check"
import { afterAll, describe, expect, it } from "vitest"
import { expectItems } from "./checks.ts"
import { isSafe } from "../../../src/domain/WriteFence.ts"
import { allCommands } from "./commands.ts"
import type { Real } from "./commands.ts"
import { budget, makeEnvironment, replayPath } from "./harness.ts"
import { ReferenceModel } from "./ReferenceModel.ts"

/**
 * A fence short enough for the clock advances the commands make (1–60 ms), so compaction really moves and buries
 * events between commands while both instances keep writing from their caches: settle (25) > state age (10) + 2 × timeout (5).
 */
const fenceSettings = { fence: { maxStateAgeMillis: 10, writeTimeoutMillis: 5 }, settleMillis: 25 }
const environment = makeEnvironment("property-model", fenceSettings)
afterAll(() => environment.dispose())

const maxCommands = Number(process.env["FC_MAX_COMMANDS"] ?? 60)
const { parameters, timeout } = budget(30, maxCommands * 60)

/**
 * After the commands: both instances see exactly the model's live items, every key ever written reads as the
 * model says, and every key's numbering went on densely across compactions (live seqs consecutive, all above
 * the seq of its grave, if it was deleted and buried).
 */
const finalCheck = async (model: ReferenceModel, real: Real) => {
  for (const key of model.lastKnown.keys()) {
    const { live, grave } = await real.run.seqs(key)
    expect(live, `live seqs of ${key} are consecutive`).toEqual(live.map((_, i) => live[0]! + i))
    if (grave !== undefined && live.length > 0) expect(live[0]!, `${key} continues after its grave`).toBeGreaterThan(grave)
  }
  for (const store of real.run.stores) {
    const all = await real.run.exec(store.getRange("/", "\u{10FFFF}"))
    expect(all._tag, "final scan succeeds").toBe("Success")
    if (all._tag === "Success") expectItems(all.success, model.range({ start: "/", end: "\u{10FFFF}" }), "final scan")
    for (const key of model.lastKnown.keys()) {
      const expected = model.get(key)
      const got = await real.run.exec(store.get(key))
      if (expected._tag === "Ok") {
        expect(got._tag, `final get(${key})`).toBe("Success")
        if (got._tag === "Success") expectItems([got.success], [expected.item], `final get(${key})`)
      } else {
        expect(got._tag === "Failure" ? got.failure._tag : "Success", `final get(${key})`).toBe("NotFound")
      }
    }
  }
}

describe("the store against the reference model", () => {
  it("runs with a fence that is safe by WriteFence's own rule", () => {
    expect(isSafe(fenceSettings.settleMillis, fenceSettings.fence, 0)).toBe(true)
  })

  it("agrees with the model on every step of random command sequences", async () => {
    let lastFailingTrace: ReadonlyArray<string> = []
    const outcomes = { succeeded: 0, failed: 0 }
    const property = fc.asyncProperty(fc.commands([...allCommands], { maxCommands, size: "max", ...replayPath() }), async (commands) => {
      const run = await environment.openRun()
      const start = await run.now()
      const model = new ReferenceModel(start)
      const real: Real = { run, trace: [], start }
      try {
        await fc.asyncModelRun(() => ({ model, real }), commands)
        await finalCheck(model, real)
        for (const line of real.trace) {
          if (line.includes("→ ✓")) outcomes.succeeded++
          else if (line.includes("→ ✗")) outcomes.failed++
        }
        if (process.env["FC_DEBUG"]) console.log(real.trace.join("\n"))
      } catch (error) {
        lastFailingTrace = real.trace
        throw error
      } finally {
        await run.close()
      }
    })
    try {
      await fc.assert(property, parameters)
    } catch (error) {
      const trace = lastFailingTrace.map((line, i) => `  ${String(i + 1).padStart(2)}. ${line}`).join("\n")
      if (error instanceof Error) error.message += `\n\nResolved trace of the shrunk run (t = ms since its start):\n${trace}\n`
      throw error
    }
    // the runs really exercised the store: calls that succeeded and calls that failed with a typed error
    expect(outcomes.succeeded).toBeGreaterThan(0)
    expect(outcomes.failed).toBeGreaterThan(0)
  }, timeout)
})
