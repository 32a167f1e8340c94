/**
 * The model-based test (see storeModel.test.ts) against the in-memory store:
 * the same commands, model and checks, with a fixed seed, and no DynamoDB.
 * Compaction and restarts have no meaning in memory (memoryHarness.ts says
 * what they become); everything a caller can observe is checked as on DynamoDB.
 * Being cheap, it makes more runs by default.
 *
 * Replay a failure: FC_SEED=<seed> FC_PATH=<path> [FC_REPLAY_PATH=<replayPath>].
 */
import { afterAll, describe, it } from "vitest"
import { budget } from "./harness.ts"
import { makeMemoryEnvironment } from "./memoryHarness.ts"
import { agreesWithModel } from "./property.ts"

const environment = makeMemoryEnvironment()
afterAll(() => environment.dispose())

const maxCommands = Number(process.env["FC_MAX_COMMANDS"] ?? 60)
const { parameters, timeout } = budget(100, maxCommands * 20)

describe("the in-memory store against the reference model", () => {
  it("agrees with the model on every step of random command sequences", async () => {
    await agreesWithModel(environment, maxCommands, parameters)
  }, timeout)
})
