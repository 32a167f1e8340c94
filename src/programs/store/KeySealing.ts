/**
 * Sealed keys at the store's edge (see `SealedKeys`): a caller's key becomes its stored form before anything reads
 * or writes, and what comes back names the caller's key again. Everything below (actors, compaction, graves,
 * history, the worker) works on stored keys unchanged; events carry their real key encrypted, so reads reveal it.
 */
import { Clock, Effect, Option, Stream } from "effect"
import type { Command } from "../../domain/Command.ts"
import { keyOf } from "../../domain/Command.ts"
import { SealedRangeTooLarge } from "../../domain/Errors.ts"
import type { Item } from "../../domain/Item.ts"
import * as Key from "../../domain/Key.ts"
import * as SealedKeys from "../../domain/SealedKeys.ts"
import type { SealedPrefix } from "../../domain/SealedKeys.ts"
import type { KeySealer, SealError } from "../../infra/crypto/KeySealer.ts"
import { limited } from "./StoreInput.ts"

/** How many live keys of one sealed prefix a range read sorts in memory by default. */
export const defaultSealedRangeLimit = 10_000

/** An error that names the stored key, naming the caller's key instead; any other value as it is. */
export const renameKey = <E>(error: E, stored: string, real: string): E => {
  if (stored === real || typeof error !== "object" || error === null) return error
  const fields = error as unknown as { readonly _tag?: string; readonly key?: unknown }
  if (fields.key !== stored) return error
  const { _tag, ...props } = fields
  const Make = (error as object).constructor as new(props: object) => E
  return new Make({ ...props, key: real })
}

/** A command on the stored key, carrying its real key (a command naming a stored key already carries none). */
export const sealCommand = (
  sealer: KeySealer["Service"],
  command: Command
): Effect.Effect<{ readonly command: Command; readonly stored: string }, SealError> => {
  const key = keyOf(command)
  return Effect.map(sealer.seal(key), (stored) => {
    if (stored === key) return { command, stored }
    const sealed: Command = "item" in command
      ? { ...command, item: { ...command.item, key: stored }, realKey: key }
      : { ...command, key: stored, realKey: key }
    return { command: sealed, stored }
  })
}

/** Watch prefixes as stored: a prefix inside a sealed segment watches the whole sealed prefix (filtered by real key). */
export const storedPrefixes = (
  sealer: KeySealer["Service"],
  prefixes: ReadonlyArray<string> | undefined
): Effect.Effect<ReadonlyArray<string> | undefined, SealError> =>
  prefixes === undefined || prefixes.length === 0 ? Effect.succeed(prefixes) : Effect.forEach(
    prefixes,
    (prefix, index) => {
      const placement = SealedKeys.place(sealer.prefixes, prefix)
      if (placement._tag !== "Seal") return Effect.succeed(prefix)
      // A whole segment and more: its stored keys share the sealed segment's stored form.
      if (placement.sealed.seal === "segment" && placement.rest.startsWith("/")) {
        return sealer.seal(prefix, `prefixes[${index}]`)
      }
      return Effect.succeed(placement.sealed.prefix)
    }
  )

/** A shred scope prefix as stored: the scopes of sealed keys are drawn from their stored keys. */
export const storedScope = (sealer: KeySealer["Service"], scopePrefix: string): Effect.Effect<string, SealError> =>
  SealedKeys.place(sealer.prefixes, scopePrefix)._tag === "Seal"
    ? sealer.seal(scopePrefix)
    : Effect.succeed(scopePrefix)

/** What a range read over stored keys needs to answer in real-key order. */
export interface SealedRange {
  readonly start: string
  readonly end: string
  readonly descending?: boolean | undefined
  readonly limit?: number | undefined
}

/**
 * The live items of a range that touches sealed prefixes, in real-key order: `read` reads stored keys (and gives
 * items under their real keys); a range inside one sealed segment maps to a contiguous stored range, any other reads
 * each touched sealed prefix whole, sorting it in memory up to `bound` live keys (else `SealedRangeTooLarge`).
 */
export const sealedItems = <E, R>(
  sealer: KeySealer["Service"],
  range: SealedRange,
  bound: number,
  read: (range: SealedRange) => Stream.Stream<Item, E, R>
): Stream.Stream<Item, E | SealError | SealedRangeTooLarge, R> => {
  const { end, start } = range
  const touched = SealedKeys.touchedBy(sealer.prefixes, start, end)
  if (touched.length === 0) return read(range)
  if (SealedKeys.sharedSegment(sealer.prefixes, start, end) !== undefined) {
    return Stream.unwrap(
      Effect.zipWith(
        sealer.seal(start, "start"),
        sealer.seal(end, "end"),
        (storedStart, storedEnd) => read({ ...range, start: storedStart, end: storedEnd })
      )
    )
  }
  if (SealedKeys.wholeSegmentPrefix(sealer.prefixes, start) && end === Key.rangeEnd(start)) {
    // The keys under whole segments (`/users/alice/`) share one stored prefix, read lazily in order; the range's
    // end, `Key.rangeEnd(start)`, is the one other key it holds: read on its own, when it is reached.
    return Stream.unwrap(
      Effect.zipWith(sealer.seal(start, "start"), sealer.seal(end, "end"), (storedStart, storedEnd) => {
        const within = read({ start: storedStart, end: Key.rangeEnd(storedStart), descending: range.descending })
        const last = Stream.suspend(() => read({ start: storedEnd, end: storedEnd }))
        return limited(range.descending ? Stream.concat(last, within) : Stream.concat(within, last), range.limit)
      })
    )
  }
  const blockOf = (key: string) =>
    touched.find((entry) => key.length > entry.prefix.length && key.startsWith(entry.prefix))
  const inside = (key: string) => Key.compare(start, key) <= 0 && Key.compare(key, end) <= 0
  const order = (a: Item, b: Item) => range.descending ? Key.compare(b.key, a.key) : Key.compare(a.key, b.key)
  const outer = {
    start: blockOf(start)?.prefix ?? start,
    end: Option.match(Option.fromNullishOr(blockOf(end)), { onNone: () => end, onSome: (b) => Key.rangeEnd(b.prefix) })
  }
  interface Pending {
    block: SealedPrefix | undefined
    items: Array<Item>
  }
  const flush = (pending: Pending): ReadonlyArray<Item> => pending.items.filter((item) => inside(item.key)).sort(order)
  return read({ start: outer.start, end: outer.end, descending: range.descending }).pipe(
    Stream.mapAccumEffect(
      (): Pending => ({ block: undefined, items: [] }),
      (pending, item): Effect.Effect<readonly [Pending, ReadonlyArray<Item>], SealedRangeTooLarge> => {
        const block = blockOf(item.key)
        if (block !== undefined && block === pending.block) {
          pending.items.push(item)
          return pending.items.length > bound
            ? Effect.fail(new SealedRangeTooLarge({ prefix: block.prefix, limit: bound }))
            : Effect.succeed([pending, []] as const)
        }
        const done = flush(pending)
        if (block !== undefined) return Effect.succeed([{ block, items: [item] }, done] as const)
        return Effect.succeed([{ block: undefined, items: [] }, inside(item.key) ? [...done, item] : done] as const)
      },
      { onHalt: flush }
    ),
    // Held back while their prefix was sorted: judged again one by one as they are handed on (an item may have
    // expired meanwhile).
    Stream.rechunk(1),
    Stream.filterEffect((item) =>
      Effect.map(Clock.currentTimeMillis, (now) => item.expires === undefined || item.expires > now)
    ),
    (stream) => limited(stream, range.limit)
  )
}
