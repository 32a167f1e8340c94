/**
 * The README's tour of the store API, as a program that runs to its end: against the store the configuration
 * names (`node tour.ts`: DYNASTATE_CONFIG / DYNASTATE_* variables, the embedded DynamoDB Local by default), or
 * against the in-memory store of `dynastate/testing` (`node tour.ts --memory`).
 */
import { AtomicWrite, Key, Store, StoreLive } from "dynastate"
import { MemoryStore } from "dynastate/testing"
import { Deferred, Effect, Fiber, Stream } from "effect"

const { Action, Condition } = AtomicWrite
const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => new TextDecoder().decode(b)

export const program = Effect.gen(function*() {
  const store = yield* Store.Store
  const run = Date.now().toString(36) // keys of this run only
  const users = `/tour-${run}/users/`
  const key = Key.join(`tour-${run}`, "users", "alice") // "/tour-…/users/alice"

  // A live feed of the prefix: Init (from then on nothing is missed), then Put / Delete / Expire in per-key order.
  const watching = yield* Deferred.make<void>()
  const watcher = yield* store.watch({ prefixes: [users] }).pipe(
    Stream.tap((event) => event._tag === "Init" ? Deferred.succeed(watching, undefined) : Effect.void),
    Stream.filter((event) => event._tag !== "Init"),
    Stream.take(4),
    Stream.runCollect,
    Effect.forkChild
  )
  yield* Deferred.await(watching)

  const lease = yield* store.create({ key, value: bytes("v1") }) // AlreadyExists if live
  const item = yield* store.get(key) // { key, value, expires?, revision }
  const swapped = yield* store.compareAndSwap(item, { key, value: bytes("v2") }) // CompareFailed if it changed
  const stale = yield* Effect.flip(store.conditionalUpdate({ ...item, value: bytes("v3") }))
  console.log(stale._tag) // IncorrectRevision: the revision moved on
  yield* store.conditionalUpdate({ key, value: bytes("v3"), revision: swapped.revision })

  const session = `/tour-${run}/sessions/s1`
  const kept = yield* store.put({ key: session, value: bytes("t"), expires: Date.now() + 60_000 })
  yield* store.keepAlive(kept, Date.now() + 120_000) // same revision, later expiry

  yield* store.put({ key: `/tour-${run}/locks/x`, value: bytes("held") })
  const current = yield* store.get(key)
  const revision = yield* store.atomicWrite([ // all or nothing, one shared revision
    { key, condition: Condition.revision(current.revision), action: Action.put(bytes("v4")) },
    { key: `${users}bob`, condition: Condition.notExists, action: Action.put(bytes("b")) },
    { key: `/tour-${run}/locks/x`, condition: Condition.exists, action: Action.nop }
  ]) // ConditionFailed if any condition fails

  const listed = yield* store.getRange(users, Key.rangeEnd(users), { limit: 100 }) // inclusive ends
  console.log(listed.map((user) => `${user.key}=${text(user.value)}`).join(" "))
  yield* store.items({ start: users, end: Key.rangeEnd(users), descending: true }).pipe(
    Stream.runForEach((user) => Effect.sync(() => console.log("descending:", user.key))) // lazily paged
  )

  yield* store.delete(`${users}bob`) // NotFound if absent or expired
  const deleted = yield* store.deleteRange(`/tour-${run}/`, Key.rangeEnd(`/tour-${run}/`))

  const seen = yield* Fiber.join(watcher).pipe(Effect.timeout("30 seconds"))
  console.log("watched:", seen.map((event) => event._tag).join(", "))
  const history = yield* Stream.runCollect(store.history(key)) // every kept event, oldest first
  console.log("history:", history.map((event) => `${event.seq}:${event.op}`).join(" "))
  const first = yield* store.getAt(key, { _tag: "Revision", revision: lease.revision })
  console.log(`at ${lease.revision}: ${text(first.value)}; atomic write ${revision}; deleted ${deleted}`)
})

const layer = process.argv.includes("--memory") ? MemoryStore.layer() : StoreLive.layerFile()

Effect.runPromise(program.pipe(Effect.provide(layer))).then(
  () => console.log("tour finished"),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
