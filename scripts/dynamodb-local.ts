/**
 * DynamoDB Local helper CLI.
 *   node scripts/dynamodb-local.ts prepare             download, verify and cache the distribution (CI)
 *   node scripts/dynamodb-local.ts start [port] [--in-memory]   run one until Ctrl-C (data in .dynastate/)
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import * as DynamoDBLocal from "../src/infra/local/DynamoDBLocal.ts"

const [command, ...rest] = process.argv.slice(2)
const port = rest.find((arg) => /^\d+$/.test(arg))

const program = command === "prepare"
  ? DynamoDBLocal.ensureDistribution.pipe(Effect.flatMap((dir) => Effect.log(`DynamoDB Local is ready in ${dir}`)))
  : command === "start"
  ? Effect.scoped(
    DynamoDBLocal.scoped({
      inMemory: rest.includes("--in-memory"),
      ...(port === undefined ? {} : { port: Number(port) })
    }).pipe(Effect.andThen(Effect.never))
  )
  : Effect.die(`usage: node scripts/dynamodb-local.ts prepare | start [port] [--in-memory]`)

NodeRuntime.runMain(program)
