/**
 * Runs the sessions module against DynamoDB (`node app/main.ts`: DYNASTATE_CONFIG / DYNASTATE_* variables, the
 * embedded DynamoDB Local by default) or against the in-memory store (`node app/main.ts --memory`).
 */
import { StoreLive } from "dynastate"
import { MemoryStore } from "dynastate/testing"
import { Effect } from "effect"
import * as Sessions from "./Sessions.ts"

const program = Effect.gen(function*() {
  const user = `user-${Date.now().toString(36)}`
  const first = yield* Sessions.open(user, ["read"])
  const second = yield* Sessions.open(user, ["read", "write"])
  const touched = yield* Sessions.touch(first)
  console.log(`${user}: session ${first} opened at ${touched.openedAt.toISOString()} with ${touched.scopes.join(",")}`)
  yield* Sessions.revoke(second)
  const live = yield* Sessions.ofUser(user)
  console.log(`${user}: ${live.length} live session(s) after revoking one`)
  if (live.length !== 1 || live[0]?.key !== first) return yield* Effect.die(`expected only ${first} to be live`)
  yield* Sessions.revoke(first)
})

const store = process.argv.includes("--memory") ? MemoryStore.layer() : StoreLive.layerFile()

Effect.runPromise(program.pipe(Effect.provide(store))).then(
  () => console.log("sessions example finished"),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
