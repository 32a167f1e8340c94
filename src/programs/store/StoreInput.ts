/**
 * What every store checks of its callers' input before any I/O, and the single-key operations of `StoreService`
 * as commands. The DynamoDB store and the in-memory store both use it, so they refuse the same input with the
 * same typed errors and turn the same calls into the same commands.
 */
import { Effect, Result, Stream } from "effect"
import * as AtomicWrite from "../../domain/AtomicWrite.ts"
import type { ConditionalAction } from "../../domain/AtomicWrite.ts"
import type { Command } from "../../domain/Command.ts"
import type { CommandError } from "../../domain/Decide.ts"
import { BadParameter, ValueTooLarge } from "../../domain/Errors.ts"
import type { AlreadyExists, CompareFailed, IncorrectRevision, NotFound } from "../../domain/Errors.ts"
import type { ItemInput, Lease } from "../../domain/Item.ts"
import * as Key from "../../domain/Key.ts"
import type { Location } from "../../infra/EventRecord.ts"
import * as ValueChunks from "../../infra/ValueChunks.ts"
import type { WriteError } from "./KeyActors.ts"

/**
 * The most value bytes one atomic write carries: DynamoDB's 4 MB transaction
 * payload, less room for 64 items' keys, attributes and encryption overhead.
 */
export const maxTransactionValueBytes = 4 * 1024 * 1024 - 64 * 2048

/**
 * `effect`, run only when `key` is a valid key; else `BadParameter` naming `field`, and nothing runs. Checked in
 * place, with no effect of its own: every get comes through here.
 */
export const guardKey = <A, E, R>(
  key: string,
  effect: Effect.Effect<A, E, R>,
  field = "key"
): Effect.Effect<A, E | BadParameter, R> => {
  const checked = Key.validate(key, field)
  return Result.isFailure(checked) ? Effect.fail(checked.failure) : effect
}

/** A valid key, or `BadParameter` naming `field`. */
export const checkKey = (key: string, field = "key"): Effect.Effect<void, BadParameter> =>
  guardKey(key, Effect.void, field)

/**
 * Watch prefixes: an array (absent or empty: every key) of strings, each empty (every key) or shaped like a key
 * (see `Key.validate`: no lone surrogate, which UTF-8 cannot carry, so `startsWith` and the prefix's byte range
 * would disagree; no NUL; no more bytes than a key), so no prefix selects keys a range read of it would not.
 */
export const checkPrefixes = (prefixes: ReadonlyArray<string> | undefined): Effect.Effect<void, BadParameter> => {
  if (prefixes === undefined) return Effect.void
  if (!Array.isArray(prefixes)) {
    return Effect.fail(new BadParameter({ field: "prefixes", reason: "prefixes must be an array of strings" }))
  }
  for (const [i, prefix] of prefixes.entries()) {
    if (prefix === "") continue
    const checked = Key.validate(prefix, `prefixes[${i}]`)
    if (Result.isFailure(checked)) {
      const reason = checked.failure.reason.replace(/^a key/, "a prefix")
      return Effect.fail(new BadParameter({ field: checked.failure.field, reason }))
    }
  }
  return Effect.void
}

/** A watch's options: its prefixes (see {@link checkPrefixes}) and a buffer of a whole number of events, 1 or more. */
export const checkWatchOptions = (
  options: { readonly prefixes?: ReadonlyArray<string> | undefined; readonly capacity?: number | undefined }
): Effect.Effect<void, BadParameter> =>
  options.capacity === undefined || (Number.isSafeInteger(options.capacity) && options.capacity >= 1)
    ? checkPrefixes(options.prefixes)
    : Effect.fail(
      new BadParameter({ field: "capacity", reason: "a capacity must be a whole number of events, 1 or more" })
    )

/** No expiry, or whole epoch milliseconds. */
export const checkExpiry = (expires: number | undefined): Effect.Effect<void, BadParameter> =>
  failWith(expiryFault(expires))

const expiryFault = (expires: number | undefined): BadParameter | undefined =>
  expires === undefined || Number.isSafeInteger(expires)
    ? undefined
    : new BadParameter({ field: "expires", reason: "an expiry must be whole epoch milliseconds" })

const failWith = <E>(fault: E | undefined): Effect.Effect<void, E> =>
  fault === undefined ? Effect.void : Effect.fail(fault)

/** No limit, or a whole number of items (0: no limit). */
export const checkLimit = (limit: number | undefined): Effect.Effect<void, BadParameter> =>
  limit === undefined || (Number.isSafeInteger(limit) && limit >= 0)
    ? Effect.void
    : Effect.fail(new BadParameter({ field: "limit", reason: "a limit must be a whole number, 0 or more" }))

/** Whether a range read's limit leaves it whole: none, or 0 (as Teleport's `backend.NoLimit`). */
export const unlimited = (limit: number | undefined): limit is 0 | undefined => limit === undefined || limit === 0

/** The first `limit` items of a range read's stream, or every item when {@link unlimited}. */
export const limited = <A, E, R>(stream: Stream.Stream<A, E, R>, limit: number | undefined): Stream.Stream<A, E, R> =>
  unlimited(limit) ? stream : Stream.take(stream, limit)

/**
 * A value within the store's bound (`ValueChunks.maxValueBytes`, 16 MiB): one above what an event item holds is
 * stored in chunks, one above the bound is refused here, before any I/O.
 */
export const checkSize = (key: string, value: Uint8Array): Effect.Effect<void, ValueTooLarge> =>
  failWith(sizeFault(key, value))

const sizeFault = (key: string, value: Uint8Array): ValueTooLarge | undefined =>
  value.length > ValueChunks.maxValueBytes
    ? new ValueTooLarge({ key, itemBytes: value.length, limitBytes: ValueChunks.maxValueBytes })
    : undefined

/** The bytes a value adds to an atomic write's transaction: all of it, or only its manifest when stored in chunks. */
const transactionBytesOf = (location: Location, key: string, value: Uint8Array): number =>
  ValueChunks.isLarge(location, key, value.length) ? 0 : value.length

/**
 * What is wrong with an item to write, if anything: it needs a valid key, a `Uint8Array` value that fits, a whole
 * expiry.
 */
const itemFault = (item: ItemInput): BadParameter | ValueTooLarge | undefined => {
  const key = Key.validate(item.key, "key")
  return Result.isFailure(key)
    ? key.failure
    : !(item.value instanceof Uint8Array)
    ? new BadParameter({ field: "value", reason: "a value must be a Uint8Array" })
    : expiryFault(item.expires) ?? sizeFault(item.key, item.value)
}

/** An atomic write's actions (see `AtomicWrite.validate`), each value fitting, all of them one transaction's worth. */
export const checkAtomicWrite = (
  location: Location,
  actions: ReadonlyArray<ConditionalAction>
): Effect.Effect<void, BadParameter | ValueTooLarge> =>
  Effect.gen(function*() {
    const valid = AtomicWrite.validate(actions)
    if (Result.isFailure(valid)) return yield* valid.failure
    let transactionBytes = 0
    for (const entry of actions) {
      if (entry.action._tag === "Put") {
        yield* checkSize(entry.key, entry.action.value)
        transactionBytes += transactionBytesOf(location, entry.key, entry.action.value)
      }
    }
    if (transactionBytes > maxTransactionValueBytes) {
      return yield* new BadParameter({
        field: "actions",
        reason: `the values add up to ${transactionBytes} bytes; one atomic write carries at most ` +
          `${maxTransactionValueBytes} (DynamoDB's 4 MB transaction limit)`
      })
    }
  })

/** Runs one command of a key; `E` is the command's own failure, `X` what running it may add. */
export type CommandRunner<X> = <E extends CommandError>(command: Command) => Effect.Effect<Lease, E | X>

/** Failures of a write besides its own. */
type Failure<X> = BadParameter | ValueTooLarge | X

/** The single-key writes of a store, as commands checked first and then handed to `run`. */
export const commandOperations = <X extends WriteError | BadParameter>(run: CommandRunner<X>) => {
  // Plain checks, no effect of their own: every write comes through here, and nearly every item is valid.
  const write = <E extends CommandError>(item: ItemInput, command: Command): Effect.Effect<Lease, E | Failure<X>> => {
    const fault = itemFault(item)
    return fault === undefined ? run<E>(command) : Effect.fail(fault)
  }
  return {
    create: (item: ItemInput): Effect.Effect<Lease, AlreadyExists | Failure<X>> =>
      write<AlreadyExists>(item, { _tag: "Create", item }),
    put: (item: ItemInput): Effect.Effect<Lease, Failure<X>> => write<never>(item, { _tag: "Put", item }),
    update: (item: ItemInput): Effect.Effect<Lease, NotFound | Failure<X>> =>
      write<NotFound>(item, { _tag: "Update", item }),
    compareAndSwap: (
      expected: Pick<ItemInput, "key" | "value">,
      replaceWith: ItemInput
    ): Effect.Effect<Lease, CompareFailed | Failure<X>> =>
      expected.key !== replaceWith.key
        ? Effect.fail(new BadParameter({ field: "replaceWith.key", reason: "expected and replacement keys differ" }))
        : write<CompareFailed>(replaceWith, { _tag: "CompareAndSwap", expected: expected.value, item: replaceWith }),
    conditionalUpdate: (
      item: ItemInput & { readonly revision: string }
    ): Effect.Effect<Lease, IncorrectRevision | Failure<X>> =>
      write<IncorrectRevision>(item, {
        _tag: "ConditionalUpdate",
        item: { key: item.key, value: item.value, expires: item.expires },
        revision: item.revision
      }),
    conditionalDelete: (key: string, revision: string): Effect.Effect<void, IncorrectRevision | Failure<X>> =>
      checkKey(key).pipe(
        Effect.andThen(run<IncorrectRevision>({ _tag: "ConditionalDelete", key, revision })),
        Effect.asVoid
      ),
    delete: (key: string): Effect.Effect<void, NotFound | Failure<X>> =>
      checkKey(key).pipe(Effect.andThen(run<NotFound>({ _tag: "Delete", key })), Effect.asVoid),
    keepAlive: (
      lease: Lease,
      expires: number | undefined
    ): Effect.Effect<Lease, NotFound | IncorrectRevision | Failure<X>> =>
      checkKey(lease.key).pipe(
        Effect.andThen(checkExpiry(expires)),
        Effect.andThen(
          run<NotFound | IncorrectRevision>({ _tag: "KeepAlive", key: lease.key, revision: lease.revision, expires })
        )
      )
  }
}
