/**
 * Model-based test of the store's whole contract: random command sequences
 * (fc.commands) run against two store instances on DynamoDB Local and,
 * step by step, against the independent reference model; every result must
 * agree. The TestClock drives expiry for the store and the model alike. Each
 * run gets a fresh namespace, so runs are independent.
 *
 * Replay a failure: FC_SEED=<seed> FC_PATH=<path> [FC_REPLAY_PATH=<replayPath>].
 */
import { afterAll, describe, expect, it } from "vitest"
import { isSafe } from "../../../src/domain/WriteFence.ts"
import { budget, makeEnvironment } from "./harness.ts"
import { agreesWithModel } from "./property.ts"

/**
 * A fence short enough for the clock advances the commands make (1–60 ms), so compaction really moves and buries
 * events between commands while both instances keep writing from their caches: settle (25) > state age (10) + 2 × timeout (5).
 */
const fenceSettings = { fence: { maxStateAgeMillis: 10, writeTimeoutMillis: 5 }, settleMillis: 25 }
const environment = makeEnvironment("property-model", fenceSettings)
afterAll(() => environment.dispose())

const maxCommands = Number(process.env["FC_MAX_COMMANDS"] ?? 60)
const { parameters, timeout } = budget(30, maxCommands * 60)

describe("the store against the reference model", () => {
  it("runs with a fence that is safe by WriteFence's own rule", () => {
    expect(isSafe(fenceSettings.settleMillis, fenceSettings.fence, { skewMillis: 0, lateDeliveryMillis: 0 })).toBe(true)
  })

  it("agrees with the model on every step of random command sequences", async () => {
    await agreesWithModel(environment, maxCommands, parameters)
  }, timeout)
})
