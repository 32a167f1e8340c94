/**
 * Per-key actors: every command for a key runs through that key's mailbox, in
 * order, against the key's cached state, so most writes need no read first.
 *
 * The cache is only a hint. Appends are conditional on the next seq being
 * free, so a stale cache costs a conflict and a retry, never a wrong write;
 * a command that would *fail* on cached state is re-decided on a fresh read
 * first, so failures are never reported from stale state either; and a state
 * older than the write fence allows is read again (see `WriteFence`), so
 * compaction freeing old sort keys cannot let a stale append through.
 */
import { Clock, Context, Deferred, Effect, Layer, Option, Schedule } from "effect"
import type { Command } from "../../domain/Command.ts"
import { keyOf } from "../../domain/Command.ts"
import type { CommandError } from "../../domain/Decide.ts"
import { decide } from "../../domain/Decide.ts"
import type { Decision } from "../../domain/Decide.ts"
import { WriteContention } from "../../domain/Errors.ts"
import { StorageFailure } from "../../domain/Errors.ts"
import type { ValueTooLarge } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import { itemRevision } from "../../domain/Event.ts"
import type { Lease } from "../../domain/Item.ts"
import * as KeyState from "../../domain/KeyState.ts"
import { defaultWriteFence } from "../../domain/WriteFence.ts"
import type { LateWriteUndone } from "../../domain/WriteFence.ts"
import type { WriteFence, WriteMode } from "../../domain/WriteFence.ts"
import { EventTable } from "../../infra/EventTable.ts"
import type { ReadError } from "../../infra/EventTable.ts"
import * as Revisions from "../../infra/Revisions.ts"
import * as LateLanding from "./LateLanding.ts"
import { WriteAcks } from "./WriteAcks.ts"

/** Limits of the actor system. */
export interface ActorOptions {
  /** At most this many idle actors are kept; the least recently used go first. */
  readonly maxActors: number
  /** An actor idle this long is passivated. */
  readonly idleMillis: number
  /** Conflicting appends tolerated per command before `WriteContention`. */
  readonly maxConflicts: number
  /** How old a cached state may be, and how long an append may take. */
  readonly fence: WriteFence
  /** Fenced single-item appends (the default), or strict ones that check their predecessor (see `WriteMode`). */
  readonly writeMode?: WriteMode | undefined
}

/** Defaults that keep memory flat for any number of keys. */
export const defaultActorOptions: ActorOptions = {
  maxActors: 10_000,
  idleMillis: 60_000,
  maxConflicts: 16,
  fence: defaultWriteFence
}

/** Failures of a write besides the command's own. */
export type WriteError = WriteContention | ValueTooLarge | LateWriteUndone | ReadError

interface Actor {
  readonly key: string
  state: KeyState.KeyState | undefined
  /** When `state` was known to be the newest (any later event has a later timestamp). */
  confirmedAt: number
  /** Commands handed to this actor so far; each command's ticket is the count when it came. */
  tickets: number
  /**
   * The ticket count when the read or append that established `state` was sent (0: unknown, a hint): `state` was
   * the key's newest at some moment after every command with a ticket up to this one was invoked.
   */
  establishedAt: number
  readonly mailbox: Array<{ readonly run: Effect.Effect<void>; readonly abandon: Effect.Effect<void> }>
  running: boolean
  lastActive: number
}

/** The actors of one store instance. */
export class KeyActors extends Context.Service<KeyActors, {
  /** Runs a command in its key's actor; the lease names the command's event. */
  readonly execute: (command: Command) => Effect.Effect<Lease, CommandError | WriteError>
  /** Records the expiry of the key's item if it has expired and nobody has recorded it yet. */
  readonly expire: (key: string) => Effect.Effect<void, WriteError>
  /** Tells the key's actor about an event read elsewhere (a hint; older events are ignored). */
  readonly observe: (event: Event) => void
  /** Drops the key's cached state (after a write that bypassed the actor). */
  readonly invalidate: (key: string) => void
  /** How many actors are alive, for tests and metrics. */
  readonly size: () => number
}>()("dynastate/KeyActors") {
  /**
   * The actor system, passivating idle actors in the background while the layer lives; it publishes what each
   * command appended to the store instance's `WriteAcks`.
   */
  static readonly layer = (options: ActorOptions): Layer.Layer<KeyActors, never, EventTable | WriteAcks> =>
    Layer.effect(KeyActors, make(options))
}

const make = Effect.fnUntraced(function*(options: ActorOptions) {
  const table = yield* EventTable
  const acks = yield* WriteAcks
  const scope = yield* Effect.scope
  const actors = new Map<string, Actor>()
  const strict = options.writeMode === "strict"

  const timedOut = () => new StorageFailure({ operation: "append", reason: writeTimedOut(options.fence) })

  const isIdle = (actor: Actor) => !actor.running && actor.mailbox.length === 0

  /** Drops the least recently used idle actors until `room` more fit. */
  const makeRoom = (room: number) => {
    // Map order is least recently used first, because every use re-inserts; so this stops at once when there is room.
    for (const actor of actors.values()) {
      if (actors.size + room <= options.maxActors) break
      if (isIdle(actor)) actors.delete(actor.key)
    }
  }

  /**
   * Drops idle actors past their idle time, then makes room as above. It visits every actor, so it runs on the
   * timer only: run for every new key, it cost a pass over up to `maxActors` actors per first write of a key.
   */
  const passivate = (now: number) => {
    for (const actor of actors.values()) {
      if (isIdle(actor) && now - actor.lastActive >= options.idleMillis) actors.delete(actor.key)
    }
    makeRoom(0)
  }

  const actorFor = (key: string, now: number): Actor => {
    let actor = actors.get(key)
    if (actor) {
      actors.delete(key)
    } else {
      actor = {
        key,
        state: undefined,
        confirmedAt: 0,
        tickets: 0,
        establishedAt: 0,
        mailbox: [],
        running: false,
        lastActive: now
      }
      makeRoom(1)
    }
    actors.set(key, actor)
    return actor
  }

  const drain = (actor: Actor): Effect.Effect<void> =>
    Effect.gen(function*() {
      while (actor.mailbox.length > 0) yield* actor.mailbox.shift()!.run
      actor.running = false
      actor.lastActive = yield* Clock.currentTimeMillis
    })

  const process = (actor: Actor, command: Command, ticket: number) => {
    /** Every event this command appended, across retries: each is in the table whatever the command's outcome. */
    const appended: Array<Event> = []
    return Effect.gen(function*() {
      let fresh = false
      let conflicts = 0
      // Built only when wanted: most commands never read.
      const reload = () =>
        Effect.gen(function*() {
          const readAt = yield* Clock.currentTimeMillis
          const sentAt = actor.tickets
          const latest = yield* table.latestState(actor.key)
          actor.state = KeyState.fromLatest(actor.key, Option.getOrUndefined(latest))
          actor.confirmedAt = readAt
          actor.establishedAt = sentAt
          fresh = true
          return actor.state
        })
      // Recording an expiry is the one decision that can succeed without writing, so it must not trust the cache.
      if (command._tag === "Expire") yield* reload()
      let slowReads = 0
      while (true) {
        if (actor.state === undefined) yield* reload()
        const now = yield* Clock.currentTimeMillis
        // Too old to decide on, cached or just read (a read can be slow): read again (see WriteFence).
        if (now - actor.confirmedAt > options.fence.maxStateAgeMillis) {
          if (++slowReads > options.maxConflicts) {
            return yield* new StorageFailure({
              operation: "read",
              reason: "reading the key keeps taking longer than the write fence allows"
            })
          }
          actor.state = undefined
          continue
        }
        const state = actor.state!
        const decision = decide(command, state, now)
        if (decision.failure !== undefined && !fresh && !establishedSince(actor, ticket, decision, now)) {
          yield* reload()
          continue
        }
        let current = state
        let lost = false
        for (const draft of decision.events) {
          const sentAt = actor.tickets
          const event: Event = {
            ...draft,
            key: actor.key,
            // A sealed key's events carry its real key; a command naming the stored form keeps the one it had.
            realKey: command.realKey ?? current.latest?.realKey,
            seq: current.seq + 1,
            // Wall-clock time, as `Revisions.next`: ids stay unique and ordered whatever clock the fiber has.
            revision: Revisions.uuidv7(Date.now()),
            timestamp: now
          }
          const deadline = { at: now + options.fence.writeTimeoutMillis, failure: timedOut }
          const outcome = yield* Effect.result(
            strict
              ? table.appendAfter(event, table.predecessor(current.latest), deadline)
              : table.append(event, deadline)
          )
          if (outcome._tag === "Success") {
            // A strict append checked its predecessor in the same transaction: where it landed needs no check.
            if (!strict) yield* LateLanding.confirm(table, options.fence, [event], event.timestamp)
            appended.push(event)
            current = KeyState.evolve(current, event)
            actor.state = current
            actor.confirmedAt = event.timestamp
            actor.establishedAt = sentAt
            continue
          }
          const error = outcome.failure
          if (error._tag !== "AppendConflict") return yield* Effect.fail(error)
          conflicts++
          if (conflicts > options.maxConflicts) {
            return yield* new WriteContention({ key: actor.key, attempts: conflicts })
          }
          // The first conflict usually means one competing write: take its event. After that, read.
          actor.state = conflicts === 1 && error.winner ? KeyState.fromLatest(actor.key, error.winner) : undefined
          // Events after the winner are later than it, so its timestamp bounds what the hint can have missed.
          actor.confirmedAt = error.winner?.timestamp ?? 0
          actor.establishedAt = 0
          fresh = false
          lost = true
          break
        }
        if (lost) continue
        if (decision.failure !== undefined) return yield* Effect.fail(decision.failure)
        const last = current.latest
        return { key: actor.key, revision: last ? itemRevision(last) : "" }
      }
    }).pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          // After an unexpected failure we cannot tell what was written: forget the cache.
          if (
            exit._tag === "Failure" &&
            exit.cause.reasons.some((reason) => reason._tag !== "Fail" || !isCommandError(reason.error))
          ) {
            actor.state = undefined
            actor.establishedAt = 0
          }
          // Published before the caller is answered, so whoever it tells can already wait for exactly these events.
          acks.publish(exit._tag === "Success" ? exit.value.revision : undefined, appended)
        })
      )
    )
  }

  let closed = false
  const closedError = () => new StorageFailure({ operation: "store", reason: "the store was closed" })

  /** After a command ran in its caller's fiber: the actor goes on with the commands queued meanwhile, or idles. */
  const handOn = (actor: Actor): Effect.Effect<void> =>
    actor.mailbox.length > 0
      ? Effect.asVoid(Effect.forkIn(drain(actor), scope, { startImmediately: true }))
      : Clock.clockWith((clock) => {
        actor.running = false
        actor.lastActive = clock.currentTimeMillisUnsafe()
        return Effect.void
      })

  const execute = (command: Command): Effect.Effect<Lease, CommandError | WriteError> =>
    // The clock read in place (`clockWith`), not as an effect of its own: every write starts here.
    Clock.clockWith((clock) => {
      const now = clock.currentTimeMillisUnsafe()
      if (closed) return Effect.fail(closedError())
      const actor = actorFor(keyOf(command), now)
      const ticket = ++actor.tickets
      // An idle actor (nothing queued) runs the command in the caller's fiber: a fiber forked per command and a
      // reply to wait for cost more than the rest of a cached write's own work. Interrupting the caller then
      // interrupts the command, whose outcome is unknown as after any interrupted write (its cache is dropped).
      if (!actor.running) {
        actor.running = true
        return process(actor, command, ticket).pipe(Effect.onExit(() => handOn(actor)))
      }
      return Effect.flatMap(Deferred.make<Lease, CommandError | WriteError>(), (reply) => {
        actor.mailbox.push({
          // onExit also answers when the store closes mid-command, so no caller waits forever.
          run: process(actor, command, ticket).pipe(
            Effect.onExit((exit) => Deferred.done(reply, exit)),
            Effect.exit,
            Effect.asVoid
          ),
          // Made only if the store closes first: a schema-checked error per command cost more than its append.
          abandon: Effect.suspend(() => Deferred.fail(reply, closedError()))
        })
        return Deferred.await(reply)
      })
    })

  // Closing the store answers every queued command, so no caller waits for a reply that will never come.
  yield* Effect.addFinalizer(() =>
    Effect.suspend(() => {
      closed = true
      const pending = [...actors.values()].flatMap((actor) => actor.mailbox.splice(0))
      return Effect.forEach(pending, (entry) => entry.abandon, { discard: true })
    })
  )

  yield* Clock.currentTimeMillis.pipe(
    Effect.map(passivate),
    Effect.repeat(Schedule.spaced(Math.max(1000, Math.floor(options.idleMillis / 2)))),
    Effect.forkIn(scope)
  )

  return KeyActors.of({
    execute,
    expire: (key) =>
      execute({ _tag: "Expire", key }).pipe(
        Effect.asVoid,
        // Deciding an expiry never fails; a command error here would be a bug in decide.
        Effect.catchIf(isCommandError, (error) => Effect.die(error))
      ),
    observe: (event) => {
      const actor = actors.get(event.key)
      if (actor?.state && isIdle(actor)) {
        actor.state = KeyState.evolve(actor.state, event)
        actor.establishedAt = 0
      }
    },
    invalidate: (key) => {
      const actor = actors.get(key)
      if (actor) {
        actor.state = undefined
        actor.establishedAt = 0
      }
    },
    size: () => actors.size
  })
})

/**
 * Whether a command may fail on the actor's cached state without reading it again: the read or append that
 * established the state was sent after the command came, so the state was the key's newest at a moment within
 * the command's own span, where its failure takes effect (a read answers from what it read). Only when the
 * failure does not hang on time: the decision records no expiry and the newest item is not past its expiry, so it
 * was decided alike at that moment (expiry turns an item from live to expired, never back). Commands queued
 * behind a write that changed the key (the 15 losers of 16 compare-and-swaps of one counter) share one read: the
 * first of them reads (the write was sent before they came), and the others fail on what it read.
 */
const establishedSince = (actor: Actor, ticket: number, decision: Decision, now: number): boolean => {
  if (ticket > actor.establishedAt || decision.events.length > 0) return false
  const latest = actor.state?.latest
  return latest?.expires === undefined || latest.expires > now
}

/** What a caller is told when an append got no answer in time: it may or may not have been written. */
export const writeTimedOut = (fence: WriteFence): string =>
  `no answer within ${fence.writeTimeoutMillis} ms; the write may or may not have happened (read the key to find out)`

const commandErrorTags = new Set(["AlreadyExists", "NotFound", "CompareFailed", "IncorrectRevision"])
const isCommandError = (error: unknown): error is CommandError =>
  typeof error === "object" && error !== null && commandErrorTags.has((error as { _tag?: string })._tag ?? "")
