/**
 * Vitest global setup: a few in-memory DynamoDB Locals for the whole run, shared by the test files through
 * `endpoint()` in `support/TestStore.ts` (files isolate themselves with their own tables).
 *
 * Why several: DynamoDB Local (2.x) scans its stream log, which all its tables share, on every write to a
 * stream-enabled table, back to that table's first record (see the bench's `streamStartKey`), and deleting a
 * table does not shorten the log. On one instance every test file paid for the records of all files before it:
 * the DynamoDB contract suite took 26 s on a fresh instance and 70 s after 20,000 records elsewhere. Spread over
 * `DYNAMO_LOCALS` instances (3 unless set), each log holds a share of the run's records.
 *
 * Set DYNAMO_ENDPOINT to send every file to an already running endpoint instead.
 */
import { Effect, Exit, Scope } from "effect"
import type { TestProject } from "vitest/node"
import * as DynamoDBLocal from "../src/infra/local/DynamoDBLocal.ts"

declare module "vitest" {
  export interface ProvidedContext {
    /** One or more endpoints; a test file keeps to one of them (`endpoint()` in `support/TestStore.ts`). */
    dynamoEndpoints: ReadonlyArray<string>
  }
}

const instanceCount = (): number => {
  const configured = process.env["DYNAMO_LOCALS"] ?? "3"
  const count = Number(configured)
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`DYNAMO_LOCALS must be a whole number from 1, not ${configured}`)
  }
  return count
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env["DYNAMO_ENDPOINT"]
  if (external !== undefined && external !== "") {
    project.provide("dynamoEndpoints", [external])
    return async () => {}
  }
  const count = instanceCount()
  // Fetched (on a first run) once, before the instances start side by side.
  await Effect.runPromise(DynamoDBLocal.ensureDistribution)
  // Started in one scope, so that if one fails to start the others are stopped too.
  const scope = await Effect.runPromise(Scope.make())
  const close = () => Effect.runPromise(Scope.close(scope, Exit.void))
  try {
    const instances = await Effect.runPromise(
      Effect.all(Array.from({ length: count }, () => DynamoDBLocal.scoped({ inMemory: true })), {
        concurrency: "unbounded"
      }).pipe(Scope.provide(scope))
    )
    project.provide("dynamoEndpoints", instances.map((instance) => instance.endpoint))
  } catch (cause) {
    await close()
    throw cause
  }
  return close
}
