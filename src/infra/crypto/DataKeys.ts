/**
 * Data keys for values, the way the AWS Encryption SDK's caching materials
 * manager hands them out: a data key encrypts many values until it reaches a
 * hard limit of age, values or bytes, so writing costs a KMS call only now
 * and then; unwrapped keys for reads sit in a bounded LRU cache.
 *
 * Every data key belongs to a scope (by default the whole namespace; see
 * {@link DataKeyPolicy.scopeOf}), so that `shred` can destroy the keys of one
 * scope and leave the others readable.
 */
import { Clock, Context, Data, Deferred, Effect, Layer, Option, Redacted, Schedule, Stream } from "effect"
import type { Scope } from "effect"
import type { StorageFailure, Throttled } from "../../domain/Errors.ts"
import type { Dynamo } from "../Dynamo.ts"
import * as Revisions from "../Revisions.ts"
import * as DataKeyStore from "./DataKeyStore.ts"
import type { DataKeyLocation } from "./DataKeyStore.ts"
import { Keyring } from "./Keyring.ts"
import type { EncryptionContext, KeyringError } from "./Keyring.ts"
import * as MultiKeyring from "./MultiKeyring.ts"

/** Limits on how long and how much one data key is used, and how scopes are drawn. */
export interface DataKeyPolicy {
  /** A data key stops encrypting this long after it was made (and cached plaintext for reads is re-checked). */
  readonly maxAgeMillis: number
  /** A data key stops encrypting after this many values (never more than {@link maxValuesPerDataKey}). */
  readonly maxValues: number
  /** A data key stops encrypting after this many plaintext bytes. */
  readonly maxBytes: number
  /** How many unwrapped data keys reads keep. */
  readonly readCacheSize: number
  /** The shred scope of a key: values of different scopes never share a data key. */
  readonly scopeOf: (key: string) => string
}

/** One data key for the whole namespace, renewed every 5 minutes or million values. */
export const defaultDataKeyPolicy: DataKeyPolicy = {
  maxAgeMillis: 5 * 60_000,
  maxValues: 1_000_000,
  maxBytes: 1 << 30,
  readCacheSize: 1000,
  scopeOf: () => ""
}

/**
 * The most values one data key ever encrypts, whatever the policy says: values under one data key share its value
 * key (see `ValueCipher`) with random 96-bit IVs, and NIST SP 800-38D allows 2^32 of those per key. A data key is
 * only ever encrypted with by the process that made it, so counting here is counting all its values.
 */
export const maxValuesPerDataKey = 2 ** 32

/** A scope function that gives each key's first `depth` path segments their own data keys (`/users/alice`). */
export const scopeByDepth = (depth: number) => (key: string): string =>
  key.split("/").filter((segment) => segment !== "").slice(0, depth).map((segment) => `/${segment}`).join("")

/**
 * Whether a data key's scope falls under a shred prefix, on path-segment
 * boundaries: `/users/alice` covers `/users/alice` and `/users/alice/x`, never
 * `/users/alice2`; the empty prefix covers everything.
 */
export const withinScope = (scope: string, prefix: string): boolean => {
  const trimmed = prefix.replace(/\/+$/, "")
  return trimmed === "" || scope === trimmed || scope.startsWith(trimmed + "/")
}

/** A data key ready to use. */
export interface DataKey {
  readonly id: string
  readonly material: Redacted.Redacted<Uint8Array>
}

/** Failures of getting a data key. */
export type DataKeyError = KeyringError | Throttled | StorageFailure

interface CachedKey {
  readonly key: DataKey
  readonly scope: string
  readonly created: number
  values: number
  bytes: number
}

/** Hands out data keys for encryption and finds them for decryption. */
export class DataKeys extends Context.Service<DataKeys, {
  readonly scopeOf: (key: string) => string
  /** The data key for a value of `bytes` bytes in `scope`, making (and storing) a new one when the current is spent. */
  readonly forEncryption: (scope: string, bytes: number) => Effect.Effect<DataKey, DataKeyError>
  /** The data key with this id; `DataKeyShredded` if it was destroyed. */
  readonly forDecryption: (id: string) => Effect.Effect<DataKey, DataKeyError | DataKeyNotFound | DataKeyShredded>
  /**
   * The data key with this id if it is at hand (read before, not aged at `now`), without an effect: what range
   * reads decrypt a page with in one step. Undefined when it must be loaded ({@link forDecryption} then does).
   * Optional: a service without it always goes through `forDecryption`.
   */
  readonly cached?: ((id: string, now: number) => DataKey | undefined) | undefined
  /**
   * The data key {@link forEncryption} would hand out for a value of `bytes` bytes in `scope` at `now`, counted as
   * used, when it is the current one (no key to make), without an effect: what a cached write encrypts with. Undefined
   * when a key must be made (`forEncryption` then does). Optional, as `cached` is.
   */
  readonly atHandForEncryption?: ((scope: string, bytes: number, now: number) => DataKey | undefined) | undefined
  /** Wraps every data key under `keyring` instead (events are not touched), and uses it from now on. */
  readonly rewrap: (keyring: Keyring["Service"]) => Effect.Effect<number, DataKeyError>
  /**
   * A long-lived data key with a fixed id (for blind indexes of views, which
   * must hash the same way forever), made on first use; concurrent makers
   * agree on whichever was stored first.
   */
  readonly named: (id: string) => Effect.Effect<DataKey, DataKeyError | DataKeyNotFound | DataKeyShredded>
  /** Destroys the data keys of every scope under `scopePrefix` (see {@link withinScope}); their values become unreadable. */
  readonly shred: (scopePrefix: string) => Effect.Effect<number, Throttled | StorageFailure>
}>()("dynastate/DataKeys") {
  /** Data keys stored beside the events at `location`, wrapped by the `Keyring`. */
  static readonly layer = (
    location: DataKeyLocation,
    policy: DataKeyPolicy = defaultDataKeyPolicy
  ): Layer.Layer<DataKeys, never, Keyring | Dynamo> => Layer.effect(DataKeys, make(location, policy))
}

/** A stored value names a data key that does not exist. */
export class DataKeyNotFound extends Data.TaggedError("DataKeyNotFound")<{ readonly dataKey: string }> {}

/** The data key was shredded: what it encrypted is gone for good. */
export class DataKeyShredded extends Data.TaggedError("DataKeyShredded")<{
  readonly dataKey: string
  readonly scope: string
}> {}

/** The encryption context of a data key: binds the wrapped key to its table, namespace, scope and id. */
export const contextOf = (location: DataKeyLocation, id: string, scope: string): EncryptionContext => ({
  "dynastate:table": DataKeyStore.boundName(location),
  "dynastate:namespace": location.namespace,
  "dynastate:purpose": "data-key",
  "dynastate:data-key": id,
  "dynastate:scope": scope
})

/**
 * Runs one computation per key at a time; concurrent callers for the same key
 * share its result. The computation runs in its own fiber in `scope`, so one
 * caller giving up (a timeout, a closed watch) does not interrupt the others.
 */
const singleFlight = <A, E>(scope: Scope.Scope) => {
  const inFlight = new Map<string, Deferred.Deferred<A, E>>()
  return (key: string, compute: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.suspend(() => {
      const running = inFlight.get(key)
      if (running) return Deferred.await(running)
      const deferred = Deferred.makeUnsafe<A, E>()
      inFlight.set(key, deferred)
      return compute.pipe(
        Effect.exit,
        Effect.flatMap((exit) =>
          Effect.andThen(Effect.sync(() => inFlight.delete(key)), Deferred.done(deferred, exit))
        ),
        Effect.forkIn(scope),
        Effect.andThen(Deferred.await(deferred))
      )
    })
}

const make = Effect.fnUntraced(function*(location: DataKeyLocation, policy: DataKeyPolicy) {
  let keyring = yield* Keyring
  const context = yield* Effect.context<Dynamo>()
  const withDynamo = Effect.provide(context)
  const writing = new Map<string, CachedKey>()
  const reading = new Map<string, { readonly key: DataKey; readonly loaded: number }>()
  const scope = yield* Effect.scope
  const generating = singleFlight<CachedKey, DataKeyError>(scope)
  const loading = singleFlight<DataKey, DataKeyError | DataKeyNotFound | DataKeyShredded>(scope)

  // Keys past their age are never used again; without this they stay in memory, key material included, while idle.
  const forgetAged = Effect.map(Clock.currentTimeMillis, (now) => {
    for (const [other, held] of writing) if (now - held.created >= policy.maxAgeMillis) writing.delete(other)
    for (const [id, hit] of reading) if (now - hit.loaded >= policy.maxAgeMillis) reading.delete(id)
  })
  yield* forgetAged.pipe(
    Effect.repeat(Schedule.spaced(Math.max(1000, policy.maxAgeMillis))),
    Effect.forkIn(scope)
  )

  /** The id last put at the back of `reading` (the most recently used), so a repeated hit need not move it. */
  let newest: string | undefined
  const remember = (key: DataKey, now: number) => {
    reading.delete(key.id)
    reading.set(key.id, { key, loaded: now })
    newest = key.id
    for (const id of reading.keys()) {
      if (reading.size <= policy.readCacheSize) break
      reading.delete(id)
    }
  }

  const generate = (scope: string, now: number) =>
    generating(
      scope,
      Effect.gen(function*() {
        const id = yield* Revisions.next
        const generated = yield* keyring.generate(contextOf(location, id, scope))
        yield* DataKeyStore.put(location, { id, scope, created: now, state: "active", wrapped: generated.wrapped })
          .pipe(withDynamo)
        const cached: CachedKey = {
          key: { id, material: generated.plaintext },
          scope,
          created: now,
          values: 0,
          bytes: 0
        }
        writing.set(scope, cached)
        remember(cached.key, now)
        return cached
      })
    )

  const usable = (cached: CachedKey | undefined, bytes: number, now: number): cached is CachedKey =>
    cached !== undefined &&
    now - cached.created < policy.maxAgeMillis &&
    cached.values < Math.min(policy.maxValues, maxValuesPerDataKey) &&
    cached.bytes + bytes <= policy.maxBytes

  /** Counts a value of `bytes` bytes against `cached`, whose key encrypts it. */
  const take = (cached: CachedKey, bytes: number): DataKey => {
    cached.values += 1
    cached.bytes += bytes
    return cached.key
  }

  const atHandForEncryption = (scope: string, bytes: number, now: number): DataKey | undefined => {
    const cached = writing.get(scope)
    return usable(cached, bytes, now) ? take(cached, bytes) : undefined
  }

  const forEncryption = (scope: string, bytes: number) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      let cached = writing.get(scope)
      while (!usable(cached, bytes, now)) {
        if (cached !== undefined) writing.delete(scope)
        cached = yield* generate(scope, now)
        // A value larger than the byte limit still needs a key: a fresh one takes it alone.
        if (cached.values === 0) break
      }
      return take(cached, bytes)
    })

  const forDecryption = (id: string) => Effect.flatMap(Clock.currentTimeMillis, (now) => cachedOrLoaded(id, now))

  const readCached = (id: string, now: number): DataKey | undefined => {
    const hit = reading.get(id)
    if (hit === undefined || now - hit.loaded >= policy.maxAgeMillis) return undefined
    // Least recently used goes first: a hit moves the key to the back, unless it is there already.
    if (newest !== id) {
      reading.delete(id)
      reading.set(id, hit)
      newest = id
    }
    return hit.key
  }

  // Not a generator: a get asks once per read, nearly always a hit.
  const cachedOrLoaded = (
    id: string,
    now: number
  ): Effect.Effect<DataKey, DataKeyError | DataKeyNotFound | DataKeyShredded> => {
    const hit = readCached(id, now)
    if (hit !== undefined) return Effect.succeed(hit)
    return loading(
      id,
      Effect.gen(function*() {
        const record = Option.getOrUndefined(yield* DataKeyStore.get(location, id).pipe(withDynamo))
        if (record === undefined) return yield* new DataKeyNotFound({ dataKey: id })
        if (record.state === "shredded") return yield* new DataKeyShredded({ dataKey: id, scope: record.scope })
        const material = yield* keyring.unwrap(record.wrapped, contextOf(location, id, record.scope))
        const key = { id, material }
        remember(key, now)
        return key
      })
    )
  }

  const rewrap = Effect.fn("DataKeys.rewrap")(function*(next: Keyring["Service"]) {
    let count = 0
    yield* DataKeyStore.list(location).pipe(
      Stream.filter((record) => record.state === "active"),
      Stream.runForEach((record) =>
        Effect.gen(function*() {
          const context = contextOf(location, record.id, record.scope)
          // Either keyring may hold a key already: a rewrap that stopped half-way can simply run again.
          const plaintext = yield* MultiKeyring.make(keyring, [next]).unwrap(record.wrapped, context)
          const wrapped = yield* next.wrap(plaintext, context)
          if (yield* DataKeyStore.replaceWrapped(location, record.id, wrapped)) count++
        })
      ),
      withDynamo
    )
    keyring = next
    yield* Effect.logInfo(`re-wrapped ${count} data keys of ${location.namespace} under ${next.name}`)
    return count
  })

  const shred = Effect.fn("DataKeys.shred")(function*(scopePrefix: string) {
    let count = 0
    yield* DataKeyStore.list(location).pipe(
      Stream.filter((record) => record.state === "active" && withinScope(record.scope, scopePrefix)),
      Stream.runForEach((record) =>
        Effect.gen(function*() {
          yield* DataKeyStore.shred(location, record.id)
          reading.delete(record.id)
          if (writing.get(record.scope)?.key.id === record.id) writing.delete(record.scope)
          count++
        })
      ),
      withDynamo
    )
    yield* Effect.logInfo(`shredded ${count} data keys of scopes under "${scopePrefix}" in ${location.namespace}`)
    return count
  })

  const named = (id: string) =>
    forDecryption(id).pipe(
      Effect.catchTag("DataKeyNotFound", () =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const scope = `named:${id}`
          const generated = yield* keyring.generate(contextOf(location, id, scope))
          // A concurrent maker may have stored its key first; the read below returns whichever won.
          yield* DataKeyStore.put(location, { id, scope, created: now, state: "active", wrapped: generated.wrapped })
            .pipe(withDynamo)
          reading.delete(id)
          return yield* forDecryption(id)
        }))
    )

  return DataKeys.of({
    scopeOf: policy.scopeOf,
    forEncryption,
    forDecryption,
    cached: readCached,
    atHandForEncryption,
    named,
    rewrap,
    shred
  })
})

/** Plaintext of a data key, for the cipher. */
export const materialOf = (key: DataKey): Uint8Array => Redacted.value(key.material)
