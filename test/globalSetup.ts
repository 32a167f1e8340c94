/**
 * Vitest global setup: one in-memory DynamoDB Local for the whole run, shared by every test file
 * through `inject("dynamoEndpoint")` (files isolate themselves with their own tables).
 * Set DYNAMO_ENDPOINT to reuse an already running endpoint instead of starting one.
 */
import { Effect } from "effect"
import type { TestProject } from "vitest/node"
import * as DynamoDBLocal from "../src/infra/local/DynamoDBLocal.ts"

declare module "vitest" {
  export interface ProvidedContext {
    dynamoEndpoint: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env["DYNAMO_ENDPOINT"]
  if (external !== undefined && external !== "") {
    project.provide("dynamoEndpoint", external)
    return async () => {}
  }
  const instance = await Effect.runPromise(
    DynamoDBLocal.ensureDistribution.pipe(Effect.andThen(DynamoDBLocal.start({ inMemory: true })))
  )
  project.provide("dynamoEndpoint", instance.endpoint)
  return () => Effect.runPromise(instance.stop)
}
