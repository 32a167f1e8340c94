/**
 * The model-based test (see storeModel.test.ts) with sealed prefixes in play: `/a/` sealed by segment (`/a/a`,
 * `/a/é`, `/a/é/𝄞`) and `/𝄞/` sealed whole (`/𝄞/ab`, `/𝄞/ﬀ`, `/𝄞/ab/a`), so ranges across them are answered
 * by reading each sealed prefix whole and sorting it by real key. Fewer runs than the plain test: the commands
 * and checks are the same, only the stored keys differ.
 *
 * Replay a failure: FC_SEED=<seed> FC_PATH=<path> [FC_REPLAY_PATH=<replayPath>].
 */
import { afterAll, describe, it } from "vitest"
import { budget, makeEnvironment } from "./harness.ts"
import { agreesWithModel } from "./property.ts"

const fenceSettings = { fence: { maxStateAgeMillis: 10, writeTimeoutMillis: 5 }, settleMillis: 25 }
const environment = makeEnvironment("property-model-sealed", fenceSettings, [
  { prefix: "/a/", seal: "segment" },
  { prefix: "/𝄞/", seal: "rest" }
])
afterAll(() => environment.dispose())

const maxCommands = Number(process.env["FC_MAX_COMMANDS"] ?? 60)
const { parameters, timeout } = budget(10, maxCommands * 60)

describe("the store with sealed prefixes against the reference model", () => {
  it("agrees with the model on every step of random command sequences", async () => {
    await agreesWithModel(environment, maxCommands, parameters)
  }, timeout)
})
