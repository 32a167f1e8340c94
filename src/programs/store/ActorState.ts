/**
 * What a key's actor knows of its key, and how each outcome of a command changes it: an append that landed, one
 * that lost to another write, a failure that leaves the outcome unknown. `KeyActors` runs the commands; both its
 * paths (the loop and the quick write of a cached key) change the record only through these functions.
 */
import type { Effect, Exit } from "effect"
import type { Command } from "../../domain/Command.ts"
import type { CommandError, Decision } from "../../domain/Decide.ts"
import { WriteContention } from "../../domain/Errors.ts"
import type { Event, EventDraft } from "../../domain/Event.ts"
import { itemRevision } from "../../domain/Event.ts"
import type { Lease } from "../../domain/Item.ts"
import * as KeyState from "../../domain/KeyState.ts"
import type { AppendConflict } from "../../infra/EventTable.ts"
import * as Revisions from "../../infra/Revisions.ts"

/** One key's actor: its cached state, the commands waiting for it, and whether one is running. */
export interface Actor {
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
  /** When it was last placed at the end of its actor system's order of use (a count of placements). */
  placedAt: number
}

/** The actor of a key nothing is known of yet. */
export const make = (key: string, now: number): Actor => ({
  key,
  state: undefined,
  confirmedAt: 0,
  tickets: 0,
  establishedAt: 0,
  mailbox: [],
  running: false,
  lastActive: now,
  placedAt: 0
})

/** Whether the actor has nothing to do: it may be passivated, and hints from elsewhere may change its state. */
export const isIdle = (actor: Actor): boolean => !actor.running && actor.mailbox.length === 0

/** The event a command's draft becomes as the key's next after `current`, decided at `now`. */
export const eventOf = (
  actor: Actor,
  command: Command,
  draft: EventDraft,
  current: KeyState.KeyState,
  now: number
): Event => ({
  ...draft,
  key: actor.key,
  // A sealed key's events carry its real key; a command naming the stored form keeps the one it had.
  realKey: command.realKey ?? current.latest?.realKey,
  seq: current.seq + 1,
  // Wall-clock time, as `Revisions.next`: ids stay unique and ordered whatever clock the fiber has.
  revision: Revisions.uuidv7(Date.now()),
  timestamp: now
})

/** An append landed: the key's state is now `current` and the event, as of the append sent at ticket `sentAt`. */
export const landed = (actor: Actor, current: KeyState.KeyState, event: Event, sentAt: number): KeyState.KeyState => {
  const next = KeyState.evolve(current, event)
  actor.state = next
  actor.confirmedAt = event.timestamp
  actor.establishedAt = sentAt
  return next
}

/**
 * The `conflicts`th append of a command lost to another write: what the actor knows of the key now, or, past
 * `maxConflicts`, the command's failure (the actor's state left as it was).
 */
export const lost = (
  actor: Actor,
  conflict: AppendConflict,
  conflicts: number,
  maxConflicts: number
): WriteContention | undefined => {
  if (conflicts > maxConflicts) return new WriteContention({ key: actor.key, attempts: conflicts })
  // The first conflict usually means one competing write: take its event. After that, read.
  actor.state = conflicts === 1 && conflict.winner ? KeyState.fromLatest(actor.key, conflict.winner) : undefined
  // Events after the winner are later than it, so its timestamp bounds what the hint can have missed.
  actor.confirmedAt = conflict.winner?.timestamp ?? 0
  actor.establishedAt = 0
  return undefined
}

/** Drops the cached state: the key is read before the next command is decided. */
export const forget = (actor: Actor): void => {
  actor.state = undefined
  actor.establishedAt = 0
}

/** After an unexpected failure (not the command's own) nobody can tell what was written: the cache is dropped. */
export const forgetIfUnexpected = (actor: Actor, exit: Exit.Exit<unknown, unknown>): void => {
  if (
    exit._tag === "Failure" &&
    exit.cause.reasons.some((reason) => reason._tag !== "Fail" || !isCommandError(reason.error))
  ) {
    forget(actor)
  }
}

/** The lease of the command whose appends left the key at `current`. */
export const leaseOf = (actor: Actor, current: KeyState.KeyState): Lease => {
  const last = current.latest
  return { key: actor.key, revision: last ? itemRevision(last) : "" }
}

/**
 * Whether a command may fail on the actor's cached state without reading it again: the read or append that
 * established the state was sent after the command came, so the state was the key's newest at a moment within
 * the command's own span, where its failure takes effect (a read answers from what it read). Only when the
 * failure does not hang on time: the decision records no expiry and the newest item is not past its expiry, so it
 * was decided alike at that moment (expiry turns an item from live to expired, never back). Commands queued
 * behind a write that changed the key (the 15 losers of 16 compare-and-swaps of one counter) share one read: the
 * first of them reads (the write was sent before they came), and the others fail on what it read.
 */
export const establishedSince = (actor: Actor, ticket: number, decision: Decision, now: number): boolean => {
  if (ticket > actor.establishedAt || decision.events.length > 0) return false
  const latest = actor.state?.latest
  return latest?.expires === undefined || latest.expires > now
}

const commandErrorTags = new Set(["AlreadyExists", "NotFound", "CompareFailed", "IncorrectRevision"])

/** Whether a failure is a command's own (decided on the key's state), which leaves the cache as it is. */
export const isCommandError = (error: unknown): error is CommandError =>
  typeof error === "object" && error !== null && commandErrorTags.has((error as { _tag?: string })._tag ?? "")
