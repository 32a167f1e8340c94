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
import type { WriteContention } from "../../domain/Errors.ts"
import { StorageFailure } from "../../domain/Errors.ts"
import type { ValueTooLarge } from "../../domain/Errors.ts"
import type { Event } from "../../domain/Event.ts"
import type { Lease } from "../../domain/Item.ts"
import * as KeyState from "../../domain/KeyState.ts"
import { defaultWriteFence } from "../../domain/WriteFence.ts"
import type { LateWriteUndone } from "../../domain/WriteFence.ts"
import type { WriteFence, WriteMode } from "../../domain/WriteFence.ts"
import { EventTable } from "../../infra/EventTable.ts"
import type { ReadError } from "../../infra/EventTable.ts"
import * as ActorState from "./ActorState.ts"
import type { Actor } from "./ActorState.ts"
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

  /** Drops the least recently used idle actors until `room` more fit. */
  const makeRoom = (room: number) => {
    // Map order is least recently used first (within a margin, see `actorFor`); so this stops at once when there is
    // room.
    for (const actor of actors.values()) {
      if (actors.size + room <= options.maxActors) break
      if (ActorState.isIdle(actor)) actors.delete(actor.key)
    }
  }

  /**
   * Drops idle actors past their idle time, then makes room as above. It visits every actor, so it runs on the
   * timer only: run for every new key, it cost a pass over up to `maxActors` actors per first write of a key.
   */
  const passivate = (now: number) => {
    for (const actor of actors.values()) {
      if (ActorState.isIdle(actor) && now - actor.lastActive >= options.idleMillis) actors.delete(actor.key)
    }
    makeRoom(0)
  }

  /** Actors placed at the end of the map's order so far: at most how many others lie after one placed earlier. */
  let placements = 0
  const place = (actor: Actor) => {
    actors.set(actor.key, actor)
    actor.placedAt = ++placements
  }
  // An actor placed fewer than half the limit's worth of placements ago is far from the front, where room is made:
  // it stays where it is, so the order is least recently used first within that margin, and most uses of a key
  // cost a lookup rather than a delete and a re-insert.
  const stayMargin = options.maxActors / 2

  const actorFor = (key: string, now: number): Actor => {
    let actor = actors.get(key)
    if (actor === undefined) {
      makeRoom(1)
      actor = ActorState.make(key, now)
      place(actor)
    } else if (placements - actor.placedAt > stayMargin) {
      actors.delete(key)
      place(actor)
    }
    return actor
  }

  const drain = (actor: Actor): Effect.Effect<void> =>
    Effect.gen(function*() {
      while (actor.mailbox.length > 0) yield* actor.mailbox.shift()!.run
      actor.running = false
      actor.lastActive = yield* Clock.currentTimeMillis
    })

  const deadlineOf = (now: number) => ({ at: now + options.fence.writeTimeoutMillis, failure: timedOut })

  /**
   * Runs a command in the actor's loop: reading the key when its state is unknown or too old, deciding, appending
   * each event, and deciding again after a conflict. `conflicts` counts those the command already had.
   */
  const process = (actor: Actor, command: Command, ticket: number, conflicts = 0) => {
    /** Every event this command appended, across retries: each is in the table whatever the command's outcome. */
    const appended: Array<Event> = []
    return Effect.gen(function*() {
      let fresh = false
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
        if (decision.failure !== undefined && !fresh && !ActorState.establishedSince(actor, ticket, decision, now)) {
          yield* reload()
          continue
        }
        let current = state
        let lostOne = false
        for (const draft of decision.events) {
          const sentAt = actor.tickets
          const event = ActorState.eventOf(actor, command, draft, current, now)
          const deadline = deadlineOf(now)
          const outcome = yield* Effect.result(
            strict
              ? table.appendAfter(event, table.predecessor(current.latest), deadline)
              : table.append(event, deadline)
          )
          if (outcome._tag === "Success") {
            // A strict append checked its predecessor in the same transaction: where it landed needs no check.
            if (!strict) yield* LateLanding.confirm(table, options.fence, [event], event.timestamp)
            appended.push(event)
            current = ActorState.landed(actor, current, event, sentAt)
            continue
          }
          const error = outcome.failure
          if (error._tag !== "AppendConflict") return yield* Effect.fail(error)
          const contention = ActorState.lost(actor, error, ++conflicts, options.maxConflicts)
          if (contention !== undefined) return yield* contention
          fresh = false
          lostOne = true
          break
        }
        if (lostOne) continue
        if (decision.failure !== undefined) return yield* Effect.fail(decision.failure)
        return ActorState.leaseOf(actor, current)
      }
    }).pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          // Published before the caller is answered, so whoever it tells can already wait for exactly these events.
          acks.publish(exit._tag === "Success" ? exit.value.revision : undefined, appended)
        })
      )
    )
  }

  let closed = false
  const closedError = () => new StorageFailure({ operation: "store", reason: "the store was closed" })

  /** After a command ran in its caller's fiber: the actor goes on with the commands queued meanwhile, or idles. */
  const handOn = (actor: Actor, clock: Clock.Clock): Effect.Effect<void> => {
    if (actor.mailbox.length > 0) return Effect.asVoid(Effect.forkIn(drain(actor), scope, { startImmediately: true }))
    actor.running = false
    actor.lastActive = clock.currentTimeMillisUnsafe()
    return Effect.void
  }

  /**
   * The common write, run without the loop of {@link process}: the cached state is fresh enough, and the command
   * decides on it into one append. Undefined when the command needs the loop: no state or too old a one, a failure
   * to confirm by reading, more than one event, an expiry to record, strict appends. A lost append goes on in the
   * loop. The loop's generator, its clock reads and its per-append steps were a tenth of a cached write's CPU.
   */
  const quickly = (
    actor: Actor,
    command: Command,
    ticket: number,
    clock: Clock.Clock,
    now: number
  ): Effect.Effect<Lease, CommandError | WriteError> | undefined => {
    const state = actor.state
    if (
      strict || state === undefined || command._tag === "Expire" ||
      now - actor.confirmedAt > options.fence.maxStateAgeMillis
    ) return undefined
    const decision = decide(command, state, now)
    if (decision.failure !== undefined || decision.events.length !== 1) return undefined
    const sentAt = actor.tickets
    const event = ActorState.eventOf(actor, command, decision.events[0]!, state, now)
    const succeeded = (): Lease => {
      const lease = ActorState.leaseOf(actor, ActorState.landed(actor, state, event, sentAt))
      // Published before the caller is answered, as the loop does.
      acks.publish(lease.revision, [event])
      return lease
    }
    return Effect.matchEffect(table.append(event, deadlineOf(now)), {
      onFailure: (error) => {
        if (error._tag !== "AppendConflict") return Effect.fail(error)
        const contention = ActorState.lost(actor, error, 1, options.maxConflicts)
        return contention === undefined ? process(actor, command, ticket, 1) : Effect.fail(contention)
      },
      onSuccess: () => {
        const late = LateLanding.confirmAt(table, options.fence, [event], now, clock.currentTimeMillisUnsafe())
        return late === undefined ? Effect.succeed(succeeded()) : Effect.map(late, succeeded)
      }
    })
  }

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
        return Effect.onExit(quickly(actor, command, ticket, clock, now) ?? process(actor, command, ticket), (exit) => {
          ActorState.forgetIfUnexpected(actor, exit)
          return handOn(actor, clock)
        })
      }
      return Effect.flatMap(Deferred.make<Lease, CommandError | WriteError>(), (reply) => {
        actor.mailbox.push({
          // onExit also answers when the store closes mid-command, so no caller waits forever.
          run: process(actor, command, ticket).pipe(
            Effect.onExit((exit) => {
              ActorState.forgetIfUnexpected(actor, exit)
              return Deferred.done(reply, exit)
            }),
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
        Effect.catchIf(ActorState.isCommandError, (error) => Effect.die(error))
      ),
    observe: (event) => {
      const actor = actors.get(event.key)
      if (actor?.state && ActorState.isIdle(actor)) {
        actor.state = KeyState.evolve(actor.state, event)
        actor.establishedAt = 0
      }
    },
    invalidate: (key) => {
      const actor = actors.get(key)
      if (actor) ActorState.forget(actor)
    },
    size: () => actors.size
  })
})

/** What a caller is told when an append got no answer in time: it may or may not have been written. */
export const writeTimedOut = (fence: WriteFence): string =>
  `no answer within ${fence.writeTimeoutMillis} ms; the write may or may not have happened (read the key to find out)`
