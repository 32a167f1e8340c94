/**
 * The acknowledgements of one store instance's writes, published inside the
 * process at the moment each write is acknowledged: exactly which events the
 * write appended (key, seq, and the decrypted event) and which revision its
 * caller was given back.
 *
 * A revision alone does not name one event: `keepAlive` returns the kept
 * revision, and every event of an `atomicWrite` shares one. What a write
 * appended does, so views of the same process use this feed for
 * read-your-writes (`ReplicatedView.waitFor`). The feed carries whole events
 * so the store can later deliver its own writes to its watchers without
 * waiting for the stream; it is a process-local service, never persisted,
 * and a write of another process is never in it.
 */
import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import type { Event } from "../../domain/Event.ts"

/** One write as acknowledged to its caller. */
export interface Acknowledgement {
  /**
   * The revision the caller was given (a lease's, or `atomicWrite`'s), or undefined when the write failed after
   * appending some events (an expiry recorded on the way to `NotFound`): the events happened all the same.
   */
  readonly revision: string | undefined
  /** Every event the write appended, oldest first. They hold plaintext values: never log them. */
  readonly events: ReadonlyArray<Event>
  /** Where the acknowledgement falls in this process's order of acknowledgements (1, 2, ...). */
  readonly ordinal: number
}

/** An event a write appended, as remembered for looking it up by the revision its caller was given. */
export interface AckedEvent {
  /** The stored key, as stream records and views name it. */
  readonly key: string
  /** The caller's key, when `key` is its sealed form (see `SealedKeys`). */
  readonly realKey?: string | undefined
  readonly seq: number
  /** The ordinal of the acknowledgement that appended it. */
  readonly ordinal: number
}

/** Reads and publication of a process's write acknowledgements. */
export interface WriteAcksService {
  /** Publishes a write's acknowledgement to every listener (synchronously) and remembers it by revision. */
  readonly publish: (revision: string | undefined, events: ReadonlyArray<Event>) => void
  /**
   * The newest event of each key that writes returning `revision` appended (a `put` and later `keepAlive`s of
   * its lease share one), or undefined when no remembered write of this process returned it. Writes are remembered
   * only while someone listens (a view of the process), so a process without views keeps nothing.
   */
  readonly eventsOf: (revision: string) => ReadonlyArray<AckedEvent> | undefined
  /** The ordinal of the newest acknowledgement so far (0 before the first). */
  readonly ordinal: () => number
  /**
   * Calls `listener` with every acknowledgement published while the scope lives, in order, in the acknowledging
   * fiber before its caller is answered; it must be quick and must not throw. Writes are remembered for
   * `eventsOf` while a subscriber that looks them up listens (`remember`, the default); the store's own watch feed
   * subscribes with `remember: false`, so a process without views keeps nothing.
   */
  readonly subscribe: (
    listener: (ack: Acknowledgement) => void,
    options?: { readonly remember?: boolean | undefined }
  ) => Effect.Effect<void, never, Scope.Scope>
}

/** How much is remembered for `eventsOf`. */
export interface WriteAcksOptions {
  /** How many revisions are remembered while someone listens; the oldest acknowledged are forgotten first. */
  readonly rememberedRevisions: number
}

/** Enough for any reader that looks a write up soon after it was acknowledged. */
export const defaultWriteAcksOptions: WriteAcksOptions = { rememberedRevisions: 100_000 }

/** A store instance's acknowledgement feed, shared by its writers and the views of the process. */
export class WriteAcks extends Context.Service<WriteAcks, WriteAcksService>()("dynastate/WriteAcks") {
  /** An empty feed; each build is the feed of one store instance. */
  static readonly layer: Layer.Layer<WriteAcks> = Layer.sync(WriteAcks, () => make())
}

/** A fresh, empty acknowledgement feed. */
export const make = (options: WriteAcksOptions = defaultWriteAcksOptions): WriteAcksService => {
  const byRevision = new Map<string, Map<string, AckedEvent>>()
  const listeners = new Set<(ack: Acknowledgement) => void>()
  /** Subscribers that look writes up by revision: only while there are some is anything remembered. */
  let rememberers = 0
  let last = 0

  const remember = (revision: string, events: ReadonlyArray<Event>, ordinal: number) => {
    const known = byRevision.get(revision) ?? new Map<string, AckedEvent>()
    for (const event of events) {
      // A later event of a key covers an earlier one: a replica that has it has the earlier write too.
      if ((known.get(event.key)?.seq ?? 0) < event.seq) {
        known.set(event.key, { key: event.key, realKey: event.realKey, seq: event.seq, ordinal })
      }
    }
    // Re-inserted, so the map's order is the order of last use and the oldest goes first.
    byRevision.delete(revision)
    byRevision.set(revision, known)
    while (byRevision.size > options.rememberedRevisions) byRevision.delete(byRevision.keys().next().value!)
  }

  return {
    publish: (revision, events) => {
      if (events.length === 0) return
      const ordinal = ++last
      if (revision !== undefined && rememberers > 0) remember(revision, events, ordinal)
      const ack: Acknowledgement = { revision, events, ordinal }
      for (const listener of listeners) listener(ack)
    },
    eventsOf: (revision) => {
      const known = byRevision.get(revision)
      return known === undefined ? undefined : [...known.values()]
    },
    ordinal: () => last,
    subscribe: (listener, options) => {
      const remembers = options?.remember ?? true
      return Effect.acquireRelease(
        Effect.sync(() => {
          listeners.add(listener)
          if (remembers) rememberers++
        }),
        () =>
          Effect.sync(() => {
            listeners.delete(listener)
            if (remembers) rememberers--
          })
      ).pipe(Effect.asVoid)
    }
  }
}
