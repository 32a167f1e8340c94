/**
 * The model-based property, independent of the store under test: random
 * command sequences (fc.commands) run against a run's two store instances and,
 * step by step, against the reference model; every result must agree, and at
 * the end both instances must see exactly the model's items. Each runner
 * (DynamoDB Local, memory) gives it an environment.
 */
import fc from "fast-check"
import { expect } from "vitest"
import { expectItems } from "./checks.ts"
import { allCommands } from "./commands.ts"
import type { Real } from "./commands.ts"
import { replayPath } from "./harness.ts"
import type { budget } from "./harness.ts"
import type { PropertyEnvironment } from "./harness.ts"
import { ReferenceModel } from "./ReferenceModel.ts"

/**
 * After the commands: both instances see exactly the model's live items, every key ever written reads as the
 * model says, and every key's numbering went on densely across compactions (live seqs consecutive, all above
 * the seq of its grave, if it was deleted and buried).
 */
export const finalCheck = async (model: ReferenceModel, real: Real) => {
  for (const key of model.lastKnown.keys()) {
    const { live, grave } = await real.run.seqs(key)
    expect(live, `live seqs of ${key} are consecutive`).toEqual(live.map((_, i) => live[0]! + i))
    if (grave !== undefined && live.length > 0) {
      expect(live[0]!, `${key} continues after its grave`).toBeGreaterThan(grave)
    }
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

/**
 * Checks the store of `environment` against the model with fast-check's `parameters` (a fixed seed), and that the
 * runs really exercised it: calls that succeeded and calls that failed with a typed error. A failure's message
 * ends with the resolved trace of the shrunk run.
 */
export const agreesWithModel = async (
  environment: PropertyEnvironment,
  maxCommands: number,
  parameters: ReturnType<typeof budget>["parameters"]
): Promise<void> => {
  let lastFailingTrace: ReadonlyArray<string> = []
  const outcomes = { succeeded: 0, failed: 0 }
  const property = fc.asyncProperty(
    fc.commands([...allCommands], { maxCommands, size: "max", ...replayPath() }),
    async (commands) => {
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
    }
  )
  try {
    await fc.assert(property, parameters)
  } catch (error) {
    const trace = lastFailingTrace.map((line, i) => `  ${String(i + 1).padStart(2)}. ${line}`).join("\n")
    if (error instanceof Error) {
      error.message += `\n\nResolved trace of the shrunk run (t = ms since its start):\n${trace}\n`
    }
    throw error
  }
  expect(outcomes.succeeded).toBeGreaterThan(0)
  expect(outcomes.failed).toBeGreaterThan(0)
}
