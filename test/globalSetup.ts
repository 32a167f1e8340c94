/**
 * Vitest global setup: one DynamoDB Local for the whole run, shared by every test file
 * through `inject("dynamoEndpoint")` (files isolate themselves with their own tables).
 * Set DYNAMO_ENDPOINT to reuse an already running endpoint instead of starting one.
 *
 * The instance keeps its data in a file (on `/dev/shm` where there is one) rather than in memory, so that its
 * stream log can be indexed: see `support/StreamLogIndex.ts` for why later test files were slower without it.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import type { TestProject } from "vitest/node"
import * as DynamoDBLocal from "../src/infra/local/DynamoDBLocal.ts"
import { indexStreamLog, makeDataDir } from "./support/StreamLogIndex.ts"

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
  const dataDir = makeDataDir()
  const instance = await Effect.runPromise(
    DynamoDBLocal.ensureDistribution.pipe(Effect.andThen(DynamoDBLocal.start({ dataDir, inMemory: false })))
  )
  const notIndexed = indexStreamLog(dataDir)
  if (notIndexed !== undefined) console.warn(`DynamoDB Local's stream log is not indexed (${notIndexed})`)
  project.provide("dynamoEndpoint", instance.endpoint)
  return async () => {
    await Effect.runPromise(instance.stop)
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}
