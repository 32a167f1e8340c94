/**
 * The model-based test (see storeModel.test.ts) on a partitioned key space: `/a/` in a partition of its own (`/a/a`,
 * `/a/é`, `/a/é/𝄞`) and `/𝄞` spread over three hash buckets (`/𝄞`, `/𝄞/ab`, `/𝄞/ﬀ`, `/𝄞/ab/a`), every other key
 * in the default partition, so ranges merge several partitions' queries and compaction moves events into each
 * partition's own history and graves. Fewer runs than the plain test: the commands and checks are the same, only
 * the partition keys differ.
 *
 * Replay a failure: FC_SEED=<seed> FC_PATH=<path> [FC_REPLAY_PATH=<replayPath>].
 */
import { afterAll, describe, it } from "vitest"
import { budget, makeEnvironment } from "./harness.ts"
import { agreesWithModel } from "./property.ts"

const fenceSettings = { fence: { maxStateAgeMillis: 10, writeTimeoutMillis: 5 }, settleMillis: 25 }
const environment = makeEnvironment("property-model-partitioned", fenceSettings, [], [
  { prefix: "/a/", name: "a" },
  { prefix: "/𝄞", name: "clef", buckets: 3 }
])
afterAll(() => environment.dispose())

const maxCommands = Number(process.env["FC_MAX_COMMANDS"] ?? 60)
const { parameters, timeout } = budget(10, maxCommands * 60)

describe("the store on a partitioned key space against the reference model", () => {
  it("agrees with the model on every step of random command sequences", async () => {
    await agreesWithModel(environment, maxCommands, parameters)
  }, timeout)
})
