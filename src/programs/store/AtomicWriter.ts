/**
 * Atomic multi-key writes through one DynamoDB transaction.
 *
 * Conditions are evaluated on fresh reads of every key; the transaction then
 * appends each key's next event, or checks that no next event exists, so it
 * commits only if no key changed since it was read. A change in between
 * re-reads and re-evaluates; DynamoDB's `TransactionConflict` (another
 * transaction on the same items) is retried with jittered backoff.
 */
import { Clock, Effect, Option, Random } from "effect"
import * as AtomicWrite from "../../domain/AtomicWrite.ts"
import type { ConditionalAction } from "../../domain/AtomicWrite.ts"
import { BadParameter, ConditionFailed, StorageFailure, Throttled, WriteContention } from "../../domain/Errors.ts"
import type { ValueTooLarge } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import { isDueForExpiry, presentRevision } from "../../domain/Event.ts"
import * as KeyState from "../../domain/KeyState.ts"
import { defaultWriteFence } from "../../domain/WriteFence.ts"
import type { WriteFence, WriteMode } from "../../domain/WriteFence.ts"
import type { Deadline } from "../../infra/Dynamo.ts"
import { EventTable, maxTransactionItems, transactionItems } from "../../infra/EventTable.ts"
import type { TransactionWrite } from "../../infra/EventTable.ts"
import * as Revisions from "../../infra/Revisions.ts"
import type { WriteError } from "./KeyActors.ts"
import { KeyActors, writeTimedOut } from "./KeyActors.ts"
import * as LateLanding from "./LateLanding.ts"
import { checkAtomicWrite } from "./StoreInput.ts"
import { WriteAcks } from "./WriteAcks.ts"

/** How hard to try before giving up. */
export interface AtomicWriteOptions {
  /** Attempts after a key changed between read and commit. */
  readonly maxStaleAttempts: number
  /** Attempts after DynamoDB reported a conflict with another transaction. */
  readonly maxConflictAttempts: number
  /** How old the reads a transaction is decided on may be, and how long it may take (see `WriteFence`). */
  readonly fence: WriteFence
  /** In `strict` mode each key's write also checks the event it was decided after is still its newest. */
  readonly writeMode?: WriteMode | undefined
}

/** Defaults that let dozens of concurrent non-conflicting writers all succeed. */
export const defaultAtomicWriteOptions: AtomicWriteOptions = {
  maxStaleAttempts: 16,
  maxConflictAttempts: 24,
  fence: defaultWriteFence
}

type Attempt =
  | { readonly _tag: "Committed" }
  | { readonly _tag: "Stale" }
  | { readonly _tag: "Conflict" }
  | { readonly _tag: "Throttled"; readonly reason: string }

/** Writes every action or none, returning the one revision shared by every written event. */
export const atomicWrite = Effect.fn("Store.atomicWrite")(function*(
  actions: ReadonlyArray<ConditionalAction>,
  options: AtomicWriteOptions,
  /** For keys stored sealed: stored key to real key, which their events carry (see `SealedKeys`). */
  realKeys?: ReadonlyMap<string, string>
): Effect.fn.Return<
  string,
  BadParameter | ValueTooLarge | ConditionFailed | WriteError,
  EventTable | KeyActors | WriteAcks
> {
  const table = yield* EventTable
  yield* checkAtomicWrite(table.location, actions)
  const actors = yield* KeyActors
  const acks = yield* WriteAcks
  const revision = yield* Revisions.next
  let stale = 0
  let conflicts = 0
  let expiries = 0
  while (true) {
    const readAt = yield* Clock.currentTimeMillis
    const states = yield* Effect.forEach(
      actions,
      (entry) =>
        Effect.map(
          table.latestState(entry.key),
          (latest) => KeyState.fromLatest(entry.key, Option.getOrUndefined(latest))
        ),
      { concurrency: 16 }
    )
    const now = yield* Clock.currentTimeMillis
    // Reads that took longer than the fence allows are too old to decide on (see WriteFence).
    if (now - readAt > options.fence.maxStateAgeMillis) {
      if (++stale > options.maxStaleAttempts) {
        return yield* new StorageFailure({
          operation: "atomicWrite",
          reason: "reading the keys keeps taking longer than the write fence allows"
        })
      }
      continue
    }
    const due = states.filter((state) => isDueForExpiry(state.latest, now))
    if (due.length > 0) {
      if (++expiries > options.maxStaleAttempts) {
        return yield* new WriteContention({ key: due[0]!.key, attempts: expiries })
      }
      // Record the expiries first, through the actors, so each gets exactly one expire event.
      yield* Effect.forEach(due, (state) => actors.expire(state.key), { concurrency: 16, discard: true })
      continue
    }
    for (const [index, entry] of actions.entries()) {
      const present = presentRevision(states[index]!.latest, now)
      if (!AtomicWrite.holds(entry.condition, present === undefined ? undefined : { revision: present })) {
        return yield* new ConditionFailed({ key: entry.key, condition: AtomicWrite.describe(entry.condition) })
      }
    }
    const checked = actions.map((entry, index): TransactionWrite => {
      const state = states[index]!
      const live = presentRevision(state.latest, now) !== undefined
      const realKey = realKeys?.get(entry.key) ?? state.latest?.realKey
      const base = { key: entry.key, realKey, seq: state.seq + 1, revision, timestamp: now }
      const after = options.writeMode === "strict" ? table.predecessor(state.latest) : undefined
      if (entry.action._tag === "Put") {
        const event: Event = { ...base, op: "put", value: entry.action.value, expires: entry.action.expires }
        return { _tag: "Append", event, after }
      }
      if (entry.action._tag === "Delete" && live) return { _tag: "Append", event: { ...base, op: "delete" }, after }
      return { _tag: "Unchanged", key: entry.key, seq: state.seq, after }
    })
    // A transaction holds at most 100 items, and each key's predecessor checks take one or two more (see
    // `transactionItems`): a strict write with no room for them falls back to the fence and the late-acknowledgement
    // check.
    const strict = options.writeMode === "strict" && transactionItems(checked) <= maxTransactionItems
    const writes = strict ? checked : checked.map((write) => ({ ...write, after: undefined }))
    const attempt = yield* commit(table, writes, {
      at: now + options.fence.writeTimeoutMillis,
      failure: () => new StorageFailure({ operation: "TransactWriteItems", reason: writeTimedOut(options.fence) })
    })
    if (attempt._tag === "Committed") {
      for (const entry of actions) actors.invalidate(entry.key)
      const appended = writes.flatMap((write) => (write._tag === "Append" ? [write.event] : []))
      if (!strict) yield* LateLanding.confirm(table, options.fence, appended, now)
      // Published before the caller is answered, so whoever it tells can already wait for exactly these events.
      acks.publish(revision, appended)
      return revision
    }
    if (attempt._tag === "Stale" && ++stale > options.maxStaleAttempts) {
      return yield* new WriteContention({ key: actions[0]!.key, attempts: stale })
    }
    if (attempt._tag === "Conflict" || attempt._tag === "Throttled") {
      if (++conflicts > options.maxConflictAttempts) {
        return yield* attempt._tag === "Throttled"
          ? new Throttled({ operation: "TransactWriteItems", reason: attempt.reason })
          : new WriteContention({ key: actions[0]!.key, attempts: conflicts })
      }
      const ceiling = Math.min(1000, 10 * 2 ** Math.min(conflicts, 7))
      yield* Effect.sleep(yield* Random.nextBetween(ceiling / 4, ceiling))
    }
  }
})

const commit = (table: EventTable["Service"], writes: ReadonlyArray<TransactionWrite>, deadline: Deadline) =>
  Effect.gen(function*() {
    const token = yield* Revisions.next
    const outcome = yield* Effect.result(table.transact(writes, token, deadline))
    if (outcome._tag === "Success") return { _tag: "Committed" } as Attempt
    const error = outcome.failure
    if (error._tag !== "TransactionCanceled") return yield* Effect.fail(error)
    const codes = error.reasons.map((reason) => reason.Code ?? "None")
    if (codes.includes("ConditionalCheckFailed")) return { _tag: "Stale" } as Attempt
    if (codes.includes("TransactionConflict")) return { _tag: "Conflict" } as Attempt
    // Throttled cancellations are not retried by the SDK; back off like a conflict.
    const throttled = codes.find((code) =>
      code === "ThrottlingError" || code === "ProvisionedThroughputExceeded" || code === "RequestLimitExceeded"
    )
    if (throttled !== undefined) return { _tag: "Throttled", reason: `transaction cancelled: ${throttled}` } as Attempt
    if (codes.some((code) => code === "ValidationError")) {
      const messages = error.reasons.map((reason) => reason.Message).filter(Boolean).join("; ")
      return yield* new BadParameter({ field: "actions", reason: `DynamoDB rejected the transaction: ${messages}` })
    }
    return yield* new StorageFailure({ operation: "TransactWriteItems", reason: `cancelled: ${codes.join(", ")}` })
  })
