import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as DynamoDBLocal from "../../src/infra/local/DynamoDBLocal.ts"
import { endpoint } from "../support/TestStore.ts"

const listTables = (endpoint: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() =>
      new DynamoDBClient({
        endpoint,
        region: "us-east-1",
        credentials: { accessKeyId: "local", secretAccessKey: "local" },
        maxAttempts: 1
      })
    ),
    (client) => Effect.tryPromise(() => client.send(new ListTablesCommand({}))),
    (client) => Effect.sync(() => client.destroy())
  )

describe("DynamoDBLocal", () => {
  it.live("the shared endpoint from the global setup answers ListTables", () =>
    Effect.gen(function*() {
      const response = yield* listTables(endpoint())
      expect(Array.isArray(response.TableNames)).toBe(true)
    }))

  it.live("scoped starts a private instance and stops it when the scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const instance = yield* DynamoDBLocal.scoped().pipe(Scope.provide(scope))
      expect(instance.endpoint).toBe(`http://127.0.0.1:${instance.port}`)
      expect(instance.endpoint).not.toBe(endpoint())
      expect((yield* listTables(instance.endpoint)).TableNames).toEqual([])
      const clash = yield* Effect.flip(DynamoDBLocal.start({ port: instance.port }))
      expect(clash.reason).toBe("PortUnavailable")

      yield* Scope.close(scope, Exit.void)
      yield* instance.stop // idempotent after the scope already stopped it

      const error = yield* Effect.flip(
        Effect.tryPromise(() => fetch(instance.endpoint, { method: "POST", body: "{}" }))
      )
      const cause = (error.cause as { cause?: { code?: string } } | undefined)?.cause
      expect(cause?.code).toBe("ECONNREFUSED")
    }))

  it.live("fails with JavaNotFound when java is not on PATH", () =>
    Effect.gen(function*() {
      const error = yield* Effect.acquireUseRelease(
        Effect.sync(() => {
          const saved = process.env["PATH"]
          process.env["PATH"] = "/nonexistent"
          return saved
        }),
        () => Effect.flip(DynamoDBLocal.start()),
        (saved) =>
          Effect.sync(() => {
            process.env["PATH"] = saved
          })
      )
      expect(error.reason).toBe("JavaNotFound")
      expect(error.message).toContain("default-jre-headless")
    }))
})
