/**
 * `npm run test:chaos`: a long fault campaign (test/chaos/Campaign.ts) with its checks and figures.
 * CHAOS_SEED (default: random, printed), CHAOS_SECONDS (default 300), CHAOS_WRITERS (default 3);
 * DYNAMO_ENDPOINT reuses a running DynamoDB Local on loopback, else one is started in memory for the run.
 * Exits 1 when a check found a violation.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { Effect } from "effect"
import * as DynamoDBLocal from "../src/infra/local/DynamoDBLocal.ts"
import { localCredentials } from "../src/programs/app/StoreLive.ts"
import * as Campaign from "../test/chaos/Campaign.ts"
import { checkAll } from "../test/chaos/Checks.ts"
import { killAll } from "../test/chaos/Children.ts"
import { report } from "../test/chaos/Report.ts"

const seed = Number(process.env["CHAOS_SEED"] ?? Math.floor(Math.random() * 2 ** 31))
const seconds = Number(process.env["CHAOS_SECONDS"] ?? 300)
const writers = Number(process.env["CHAOS_WRITERS"] ?? 3)
if (![seed, seconds, writers].every(Number.isSafeInteger) || seconds <= 0 || writers <= 0) {
  console.error("CHAOS_SEED, CHAOS_SECONDS and CHAOS_WRITERS must be whole numbers (the last two positive)")
  process.exit(2)
}

// Stopped from outside (Ctrl-C, a timeout): take the child processes down too (the "exit" hook does not run then).
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

const main = async (): Promise<number> => {
  const external = process.env["DYNAMO_ENDPOINT"]
  const local = external === undefined || external === ""
    ? await Effect.runPromise(
      DynamoDBLocal.ensureDistribution.pipe(Effect.andThen(DynamoDBLocal.start({ inMemory: true })))
    )
    : undefined
  const endpoint = local?.endpoint ?? external!
  const client = new DynamoDBClient({ endpoint, region: "us-east-1", credentials: localCredentials, maxAttempts: 5 })
  console.log(`chaos: seed ${seed}, ${seconds} s, ${writers} writers, DynamoDB Local at ${endpoint}`)
  try {
    const { close, record } = await Campaign.run({ seed, seconds, writers, endpoint, client, log: console.log })
    try {
      const outcomes = await checkAll(record, endpoint, client, console.log)
      console.log(report(record, outcomes, seconds))
      return outcomes.some((o) => o.violations.length > 0) ? 1 : 0
    } finally {
      await close()
    }
  } finally {
    client.destroy()
    if (local !== undefined) await Effect.runPromise(local.stop)
  }
}

main().then((code) => process.exit(code), (error: unknown) => {
  console.error(`chaos: ${error instanceof Error ? error.stack : String(error)}`)
  process.exit(1)
})
