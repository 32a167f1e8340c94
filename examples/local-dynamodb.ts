/**
 * Starts the official DynamoDB Local from `dynastate/local` (fetched once into the per-user cache; Java 17+),
 * prints its endpoint on stdout and keeps it running until the process is stopped. Point a store at it with
 * `DYNASTATE_ENDPOINT=<endpoint>`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { DynamoDBLocal } from "dynastate/local"
import { Effect } from "effect"

const main = Effect.scoped(
  Effect.gen(function*() {
    const local = yield* DynamoDBLocal.scoped({ inMemory: true })
    console.log(local.endpoint)
    return yield* Effect.never
  })
)

// runMain interrupts the program on SIGINT/SIGTERM, which stops the JVM with the scope.
NodeRuntime.runMain(main)
