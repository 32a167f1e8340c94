/**
 * An in-memory `Store`, for unit tests of code that uses the store: no Java,
 * no DynamoDB, no I/O. It keeps the DynamoDB store's semantics: each key is a
 * dense seq of events (put, delete, expire, keep-alive) decided by the same
 * pure domain logic (`Decide`, `AtomicWrite`, `Key`, `Event`), revisions are
 * UUIDv7, bad input fails with the same typed errors before anything changes
 * (values are bounded by the DynamoDB store's own item-size rule), and time is
 * Effect's `Clock`, so `TestClock` drives expiry: an expired item is absent for
 * every operation and gets exactly one `expire` event, from whoever meets it
 * first or from a timer that fires at the expiry so watchers hear of it.
 * Every operation runs under one lock, so concurrent fibers are linearizable.
 *
 * Where it differs from the DynamoDB store:
 * - no encryption: values are kept in plaintext; `rewrap` has no data keys to
 *   re-wrap and returns 0; `shred` erases the values of the shred scopes under
 *   a prefix (by `scopeOf`, the same default as `DataKeyPolicy.scopeOf`) and
 *   returns how many scopes lost values (in memory, one "data key" per scope);
 * - no persistence: the state lives as long as the layer's scope;
 * - no stream or worker: watches are fed as events are appended, positions are
 *   places in one global log; there is no compaction, so `history` returns
 *   every event ever appended and `getAt` can reach any of them.
 *
 * Like `Store.layer`, its layers also provide the store's `WriteAcks`: every
 * write's events are published there when the write is acknowledged.
 */
import { Clock, Context, Effect, Layer, Semaphore, Stream } from "effect"
import type { Scope } from "effect"
import * as AtomicWrite from "../../domain/AtomicWrite.ts"
import type { ConditionalAction } from "../../domain/AtomicWrite.ts"
import type { Command } from "../../domain/Command.ts"
import { keyOf } from "../../domain/Command.ts"
import { decide } from "../../domain/Decide.ts"
import type { CommandError } from "../../domain/Decide.ts"
import { ConditionFailed, NotFound, Shredded } from "../../domain/Errors.ts"
import type { BadParameter } from "../../domain/Errors.ts"
import type { Event, EventDraft, EventOp } from "../../domain/Event.ts"
import { carriesValue, isDueForExpiry, itemRevision, liveItem, presentRevision } from "../../domain/Event.ts"
import { isExpired } from "../../domain/Item.ts"
import type { Item, Lease } from "../../domain/Item.ts"
import * as Key from "../../domain/Key.ts"
import { defaultDataKeyPolicy, withinScope } from "../../infra/crypto/DataKeys.ts"
import * as Revisions from "../../infra/Revisions.ts"
import * as ValueChunks from "../../infra/ValueChunks.ts"
import type { PastPoint } from "./History.ts"
import * as ExpiryTimer from "./memory/ExpiryTimer.ts"
import * as MemoryLog from "./memory/MemoryLog.ts"
import * as MemoryWatches from "./memory/MemoryWatches.ts"
import { Store } from "./Store.ts"
import type { ItemsOptions, StoreService } from "./Store.ts"
import { checkAtomicWrite, checkKey, checkLimit, commandOperations, limited } from "./StoreInput.ts"
import type { CommandRunner } from "./StoreInput.ts"
import * as WriteAcks from "./WriteAcks.ts"

/** How an in-memory store is set up; every field is optional. */
export interface MemoryStoreOptions {
  /** The shred scope of a key, as `DataKeyPolicy.scopeOf` (default: one scope for everything, `""`). */
  readonly scopeOf?: ((key: string) => string) | undefined
  /** The namespace the size rule counts, as the DynamoDB store's (default `"default"`). */
  readonly namespace?: string | undefined
}

/** The namespace of a store built without one: the DynamoDB store's default. */
export const defaultNamespace = "default"

/**
 * The largest value a key can carry: the DynamoDB store's bound (16 MiB, stored in chunks above what one item
 * holds), so a value the in-memory store accepts fits in DynamoDB too. The same for every key and namespace.
 */
export const maxValueBytes = (_key?: string, _namespace?: string): number => ValueChunks.maxValueBytes

/** A look inside an in-memory store, for tests; not part of the `Store` interface. */
export class MemoryInspector extends Context.Service<MemoryInspector, {
  /** Every event of a key, oldest first (shredded ones carry `shredded` and no value). */
  readonly events: (key: string) => Effect.Effect<ReadonlyArray<Event>>
  /** The ops of a key's events, oldest first. */
  readonly ops: (key: string) => Effect.Effect<ReadonlyArray<EventOp>>
  /** A canonical text of the whole state, to show that an operation changed nothing. */
  readonly snapshot: Effect.Effect<string>
}>()("dynastate/MemoryInspector") {}

/** A store, its write acknowledgements and its inspector, over one state. */
export interface InspectableStore {
  readonly store: StoreService
  readonly acks: WriteAcks.WriteAcksService
  readonly inspector: MemoryInspector["Service"]
}

/** A fresh, empty in-memory store and its inspector; the state and its expiry timer live as long as the scope. */
export const makeWithInspector = Effect.fnUntraced(function*(
  options: MemoryStoreOptions = {}
): Effect.fn.Return<InspectableStore, never, Scope.Scope> {
  const scopeOf = options.scopeOf ?? defaultDataKeyPolicy.scopeOf
  const namespace = options.namespace ?? defaultNamespace
  const log = MemoryLog.make()
  const watches = MemoryWatches.make(log, `memory:${yield* Revisions.next}`)
  const lock = yield* Semaphore.make(1)
  const acks = WriteAcks.make()
  const locked = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> => lock.withPermits(1)(effect)
  /** Keys whose newest event carries a value with an expiry: the timer's candidates. */
  const expiring = new Set<string>()

  const timer = ExpiryTimer.make({
    nextExpiry: () => {
      let next: number | undefined
      for (const key of expiring) {
        const expires = MemoryLog.stateOf(log, key).latest?.expires
        if (expires !== undefined && (next === undefined || expires < next)) next = expires
      }
      return next
    },
    expireDue: locked(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      for (const key of [...expiring]) yield* recordExpiry(key, now)
    }))
  })

  /** Appends the key's next event (under the lock) and tells the watches and the timer. */
  const record = (key: string, draft: EventDraft, revision: string, now: number): Event => {
    const event: Event = { key, seq: MemoryLog.stateOf(log, key).seq + 1, revision, timestamp: now, ...draft }
    const position = MemoryLog.append(log, event)
    if (carriesValue(event) && event.expires !== undefined) {
      expiring.add(key)
      timer.changed()
    } else {
      expiring.delete(key)
    }
    watches.publish(event, position)
    return event
  }

  /** Records the expiry of a key that is due, as a write of its own, as the DynamoDB store's actors do. */
  const recordExpiry = (key: string, now: number) =>
    isDueForExpiry(MemoryLog.stateOf(log, key).latest, now)
      ? Effect.map(Revisions.next, (revision) => {
        const event = record(key, { op: "expire" }, revision, now)
        acks.publish(event.revision, [event])
      })
      : Effect.void

  /** Decides a command on the key's state and appends what the decision says (under the lock). */
  const execute = (command: Command, now: number) =>
    Effect.gen(function*() {
      const key = keyOf(command)
      const decision = decide(command, MemoryLog.stateOf(log, key), now)
      const appended: Array<Event> = []
      for (const draft of decision.events) appended.push(record(key, draft, yield* Revisions.next, now))
      // An expiry recorded on the way to a failure is a write all the same, as in the DynamoDB store.
      if (decision.failure !== undefined) {
        acks.publish(undefined, appended)
        return yield* Effect.fail(decision.failure)
      }
      const lease: Lease = { key, revision: itemRevision(appended[appended.length - 1]!) }
      acks.publish(lease.revision, appended)
      return lease
    })

  const run: CommandRunner<never> = <E extends CommandError>(command: Command) =>
    locked(Effect.flatMap(Clock.currentTimeMillis, (now) => execute(command, now))) as Effect.Effect<Lease, E>

  /** What the size rule counts: the DynamoDB store's item at the same namespace. */
  const location = { table: "memory", namespace }

  const get = Effect.fn("MemoryStore.get")(function*(key: string) {
    yield* checkKey(key)
    return yield* locked(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const latest = MemoryLog.stateOf(log, key).latest
      const item = liveItem(latest, now)
      if (item !== undefined) return item
      if (latest?.shredded && presentRevision(latest, now) !== undefined) {
        return yield* new Shredded({ key, seq: latest.seq, scope: latest.shredded.scope })
      }
      yield* recordExpiry(key, now)
      return yield* new NotFound({ key })
    }))
  })

  /**
   * The items of a range live now, all of them (the limit is applied as they are handed on, since some may expire
   * first); a shredded one ends the read with `Shredded`, as a failed decryption would.
   */
  const liveItems = (range: ItemsOptions) =>
    locked(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const items: Array<Item> = []
      for (const key of MemoryLog.keysBetween(log, range.start, range.end, range.descending)) {
        const latest = MemoryLog.stateOf(log, key).latest
        const item = liveItem(latest, now)
        if (item !== undefined) items.push(item)
        else if (latest?.shredded && presentRevision(latest, now) !== undefined) {
          return { items, failure: new Shredded({ key, seq: latest.seq, scope: latest.shredded.scope }) }
        }
      }
      return { items, failure: undefined }
    }))

  /**
   * The range is read at once, under the lock (a snapshot: nothing is torn, and no lock is held while a consumer
   * is slow), and each item is judged for expiry again as it is handed on, as the DynamoDB store judges each item
   * when it is pulled: a slow consumer never gets an item that expired while it was busy, and the limit counts only
   * items handed on. Writes made after the start are not seen, which the DynamoDB store's later pages may see;
   * either answer is a read of the range as it was while the stream ran.
   */
  const items = (range: ItemsOptions): Stream.Stream<Item, BadParameter | Shredded> =>
    Stream.unwrap(Effect.gen(function*() {
      yield* checkKey(range.start, "start")
      yield* checkKey(range.end, "end")
      yield* checkLimit(range.limit)
      if (Key.compare(range.start, range.end) > 0) return Stream.empty
      const read = yield* liveItems(range)
      const found = Stream.fromIterable(read.items).pipe(
        Stream.mapEffect((item) =>
          Effect.map(Clock.currentTimeMillis, (now) => (isExpired(item.expires, now) ? undefined : item))
        ),
        Stream.filter((item): item is Item => item !== undefined)
      )
      const stream = read.failure === undefined ? found : Stream.concat(found, Stream.fail(read.failure))
      return limited(stream, range.limit)
    }))

  const deleteRange = Effect.fn("MemoryStore.deleteRange")(function*(start: string, end: string) {
    yield* checkKey(start, "start")
    yield* checkKey(end, "end")
    if (Key.compare(start, end) > 0) return 0
    return yield* locked(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      let deleted = 0
      for (const key of MemoryLog.keysBetween(log, start, end)) {
        if (presentRevision(MemoryLog.stateOf(log, key).latest, now) === undefined) continue
        yield* Effect.orDie(execute({ _tag: "Delete", key }, now))
        deleted++
      }
      return deleted
    }))
  })

  const atomicWrite = Effect.fn("MemoryStore.atomicWrite")(function*(actions: ReadonlyArray<ConditionalAction>) {
    // The DynamoDB store's checks and limits, so what passes here can be written there.
    yield* checkAtomicWrite(location, actions)
    return yield* locked(Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      // Expiries met are recorded first, each with its own event, whether or not the write then goes ahead.
      for (const entry of actions) yield* recordExpiry(entry.key, now)
      for (const entry of actions) {
        const present = presentRevision(MemoryLog.stateOf(log, entry.key).latest, now)
        if (!AtomicWrite.holds(entry.condition, present === undefined ? undefined : { revision: present })) {
          return yield* new ConditionFailed({ key: entry.key, condition: AtomicWrite.describe(entry.condition) })
        }
      }
      const revision = yield* Revisions.next
      const appended: Array<Event> = []
      for (const { key, action } of actions) {
        if (action._tag === "Put") {
          appended.push(record(key, { op: "put", value: action.value, expires: action.expires }, revision, now))
        } else if (action._tag === "Delete" && presentRevision(MemoryLog.stateOf(log, key).latest, now) !== undefined) {
          appended.push(record(key, { op: "delete" }, revision, now))
        }
      }
      acks.publish(revision, appended)
      return revision
    }))
  })

  const shred = Effect.fn("MemoryStore.shred")(function*(scopePrefix: string) {
    return yield* locked(Effect.sync(() => {
      const scopes = new Set<string>()
      for (const key of log.sorted) {
        const scope = scopeOf(key)
        if (!withinScope(scope, scopePrefix)) continue
        for (const event of MemoryLog.eventsOf(log, key)) {
          if (event.value === undefined) continue
          const { value: _erased, ...rest } = event
          MemoryLog.replace(log, { ...rest, shredded: { scope } })
          scopes.add(scope)
        }
      }
      return scopes.size
    }))
  })

  /** A key's events for reading the past; a shredded one ends the read with `Shredded`, as a failed decryption would. */
  const pastEvents = (key: string) =>
    locked(Effect.sync(() => {
      const events = [...MemoryLog.eventsOf(log, key)]
      const shredded = events.findIndex((event) => event.shredded !== undefined)
      if (shredded === -1) return { events, failure: undefined }
      const event = events[shredded]!
      return {
        events: events.slice(0, shredded),
        failure: new Shredded({ key, seq: event.seq, scope: event.shredded!.scope })
      }
    }))

  const history = (key: string): Stream.Stream<Event, BadParameter | Shredded> =>
    Stream.unwrap(Effect.gen(function*() {
      yield* checkKey(key)
      const read = yield* pastEvents(key)
      const found = Stream.fromIterable(read.events)
      return read.failure === undefined ? found : Stream.concat(found, Stream.fail(read.failure))
    }))

  const getAt = Effect.fn("MemoryStore.getAt")(function*(key: string, at: PastPoint) {
    yield* checkKey(key)
    const read = yield* pastEvents(key)
    let last: Event | undefined
    let reached = false
    for (const event of read.events) {
      if (at._tag === "Time" && event.timestamp > at.millis) {
        reached = true
        break
      }
      last = event
      if (at._tag === "Revision" && (event.revision === at.revision || itemRevision(event) === at.revision)) {
        reached = true
        break
      }
    }
    // The point lies past a shredded event: its value cannot be read, as in the DynamoDB store.
    if (!reached && read.failure !== undefined) return yield* read.failure
    if (last === undefined) return yield* new NotFound({ key })
    if (at._tag === "Revision" && last.revision !== at.revision && itemRevision(last) !== at.revision) {
      return yield* new NotFound({ key })
    }
    return liveItem(last, at._tag === "Time" ? at.millis : last.timestamp) ?? (yield* new NotFound({ key }))
  })

  yield* Effect.forkScoped(timer.run)
  yield* Effect.addFinalizer(() => watches.close)

  const store = Store.of({
    ...commandOperations(run),
    get,
    getRange: (start, end, rangeOptions) => Stream.runCollect(items({ start, end, limit: rangeOptions?.limit })),
    items,
    deleteRange,
    atomicWrite,
    // No data keys: values are not encrypted in memory, so there is nothing to re-wrap.
    rewrap: () => Effect.succeed(0),
    shred,
    watch: (watchOptions) => watches.watch(locked, watchOptions),
    history,
    getAt
  })

  const inspector = MemoryInspector.of({
    events: (key) => locked(Effect.sync(() => [...MemoryLog.eventsOf(log, key)])),
    ops: (key) => locked(Effect.sync(() => MemoryLog.eventsOf(log, key).map((event) => event.op))),
    snapshot: locked(Effect.sync(() => MemoryLog.snapshot(log)))
  })

  return { store, acks, inspector }
})

/** A fresh, empty in-memory store; its state lives as long as the scope. */
export const make = (options?: MemoryStoreOptions): Effect.Effect<StoreService, never, Scope.Scope> =>
  Effect.map(makeWithInspector(options), ({ store }) => store)

/**
 * An in-memory `Store` needing nothing, with its `WriteAcks`: each build is a new, empty store that lives as long as
 * the layer.
 */
export const layer = (options?: MemoryStoreOptions): Layer.Layer<Store | WriteAcks.WriteAcks> =>
  Layer.effectContext(
    Effect.map(
      makeWithInspector(options),
      ({ acks, store }) => Context.make(Store, store).pipe(Context.add(WriteAcks.WriteAcks, acks))
    )
  )

/** {@link layer} with its {@link MemoryInspector}, for tests that look at the events a store recorded. */
export const layerWithInspector = (
  options?: MemoryStoreOptions
): Layer.Layer<Store | WriteAcks.WriteAcks | MemoryInspector> =>
  Layer.effectContext(
    Effect.map(
      makeWithInspector(options),
      ({ acks, inspector, store }) =>
        Context.make(Store, store).pipe(Context.add(WriteAcks.WriteAcks, acks), Context.add(MemoryInspector, inspector))
    )
  )
