/**
 * A short tour of the store that prints what it does: the main job of
 * `npm start` until the projection worker takes that place.
 */
import { Clock, Console, Effect, Redacted } from "effect"
import { Action, Condition } from "../../domain/AtomicWrite.ts"
import * as Key from "../../domain/Key.ts"
import { EventTable } from "../../infra/EventTable.ts"
import * as TableSurvey from "../../infra/TableSurvey.ts"
import { Store } from "../store/Store.ts"

const text = new TextEncoder()
const bytes = (value: string) => text.encode(value)
const show = (value: Uint8Array) => JSON.stringify(new TextDecoder().decode(value))

/** Runs the demonstration against the store in context. */
export const demo = Effect.gen(function*() {
  const store = yield* Store
  const table = yield* EventTable
  const step = (title: string) => Console.log(`\n== ${title}`)
  const prefix = Key.join("demo")
  const alice = Key.join("demo", "users", "alice")
  const bob = Key.join("demo", "users", "bob")
  const secret = `s3cr3t-${Date.now()}`

  yield* step("clean up what a previous run left")
  yield* Console.log(
    `deleteRange ${prefix} .. ${Key.rangeEnd(prefix)} deleted ${yield* store.deleteRange(
      prefix,
      Key.rangeEnd(prefix)
    )} items`
  )

  yield* step("create, get, and create again")
  const created = yield* store.create({ key: alice, value: bytes(`{"name":"alice","note":"${secret}"}`) })
  yield* Console.log(`create ${alice} -> revision ${created.revision}`)
  const read = yield* store.get(alice)
  yield* Console.log(`get ${alice} -> ${show(read.value)} (revision ${read.revision})`)
  const again = yield* Effect.flip(store.create({ key: alice, value: bytes("{}") }))
  yield* Console.log(`create ${alice} again -> ${again._tag}: ${again.message}`)

  yield* step("compare-and-swap and revision-guarded writes")
  const swapped = yield* store.compareAndSwap(read, { key: alice, value: bytes(`{"name":"alice","admin":true}`) })
  yield* Console.log(`compareAndSwap with the value just read -> revision ${swapped.revision}`)
  const stale = yield* Effect.flip(store.compareAndSwap(read, { key: alice, value: bytes("{}") }))
  yield* Console.log(`compareAndSwap with the old value -> ${stale._tag}: ${stale.message}`)
  const staleRevision = yield* Effect.flip(store.conditionalUpdate({ ...read, value: bytes("{}") }))
  yield* Console.log(`conditionalUpdate with the old revision -> ${staleRevision._tag}`)

  yield* step("atomic write across keys, sharing one revision")
  const revision = yield* store.atomicWrite([
    {
      key: alice,
      condition: Condition.revision(swapped.revision),
      action: Action.put(bytes(`{"name":"alice","team":"red"}`))
    },
    { key: bob, condition: Condition.notExists, action: Action.put(bytes(`{"name":"bob","team":"red"}`)) }
  ])
  yield* Console.log(`atomicWrite alice (Revision) + bob (NotExists) -> shared revision ${revision}`)
  for (const item of yield* store.getRange(prefix, Key.rangeEnd(prefix))) {
    yield* Console.log(`  ${item.key} = ${show(item.value)} @ ${item.revision}`)
  }

  yield* step("expiry: an item with a TTL is absent once it expires")
  const now = yield* Clock.currentTimeMillis
  const session = Key.join("demo", "sessions", "s1")
  yield* store.put({ key: session, value: bytes("session token"), expires: now + 500 })
  yield* Console.log(`put ${session} expiring in 500 ms; get -> ${show((yield* store.get(session)).value)}`)
  yield* Effect.sleep("700 millis")
  const expired = yield* Effect.flip(store.get(session))
  yield* Console.log(`700 ms later, get -> ${expired._tag} (and an expire event was appended)`)

  yield* step("delete")
  yield* store.delete(bob)
  yield* Console.log(`delete ${bob}; get -> ${(yield* Effect.flip(store.get(bob)))._tag}`)

  yield* step("what DynamoDB holds: immutable events, values encrypted")
  const survey = yield* TableSurvey.survey(table.location)
  yield* Console.log(
    `${survey.liveEvents} live event items, ${survey.historyEvents} in history, ` +
      `${survey.dataKeys} wrapped data key(s) in table ${table.location.table}`
  )
  yield* Console.log(`the secret appears in plaintext anywhere in the table: ${survey.contains(secret)}`)
  if (survey.sample) {
    const { op, seq, ciphertext } = survey.sample
    const shown = Buffer.from(ciphertext).subarray(0, 24).toString("hex")
    yield* Console.log(`one event: op=${op} seq=${seq} value=${shown}… (${ciphertext.length} bytes of ciphertext)`)
  }
  yield* Console.log(`\nsecrets are never logged: ${Redacted.make(secret)}`)
})
