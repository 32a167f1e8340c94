/**
 * A page of event items decoded in one step: what range reads decrypt a DynamoDB page with (and gets their one item). An item whose value is
 * held whole under a data key already at hand (see `DataKeys.cached`) is decoded without an effect of its own, so a
 * page of them costs one effect rather than several per item; any other item (a data key to load, a value stored in
 * chunks, a sealed key's real key) goes through `EventRecord.decode` exactly as it would alone. Either way an item
 * decodes to the same event or fails with the same error.
 */
import { Clock, Effect, Result } from "effect"
import type { Event } from "../domain/Event.ts"
import { DataKeys } from "./crypto/DataKeys.ts"
import type { DataKey } from "./crypto/DataKeys.ts"
import * as ValueCipher from "./crypto/ValueCipher.ts"
import type { AttributeMap } from "./Dynamo.ts"
import * as EventRecord from "./EventRecord.ts"
import type { Assemble, DecodeError, Location, StoredItem } from "./EventRecord.ts"

const { Attr } = EventRecord

/** The event an item holds, decoded without an effect; undefined when it needs one (see the module's doc). */
const decodedAtHand = (
  location: Location,
  item: AttributeMap,
  keyOf: (id: string) => DataKey | undefined
): Result.Result<Event, DecodeError> | undefined => {
  if (item[Attr.realKey] !== undefined || item[Attr.chunks] !== undefined) return undefined
  const parsed = EventRecord.parse(item)
  if (Result.isFailure(parsed)) return Result.fail(parsed.failure)
  const { ciphertext, event } = parsed.success
  // A tombstone without authentication, as `EventRecord.decode` takes it.
  if (ciphertext === undefined) return Result.succeed(event)
  const plaintext = ValueCipher.decryptKnown(ciphertext, EventRecord.bindingOf(location, event), keyOf)
  if (plaintext === undefined) return undefined
  return Result.isFailure(plaintext)
    ? Result.fail(plaintext.failure)
    : EventRecord.withPlaintext(event, plaintext.success)
}

/**
 * The event an item holds, as `EventRecord.decode` gives it (same options), without its effects when the data key
 * is at hand: what a get decodes the newest event of a key with.
 */
export const decodeOne = (
  location: Location,
  item: StoredItem,
  options?: { readonly tolerateShredded?: boolean; readonly assemble?: Assemble | undefined }
): Effect.Effect<Event, DecodeError, DataKeys> =>
  DataKeys.use((dataKeys) => {
    const cached = dataKeys.cached
    if (cached === undefined) return EventRecord.decode(location, item, options)
    return Clock.clockWith((clock) => {
      const now = clock.currentTimeMillisUnsafe()
      const atHand = decodedAtHand(location, EventRecord.attributesOf(item), (id) => cached(id, now))
      return atHand === undefined ? EventRecord.decode(location, item, options) : Effect.fromResult(atHand)
    })
  })

/**
 * The events of a page of items, in order, as `EventRecord.decode` gives each (same options); the first item that
 * fails to decode fails the page with its error.
 */
export const decodeAll = (
  location: Location,
  items: ReadonlyArray<StoredItem>,
  options?: { readonly assemble?: Assemble | undefined }
): Effect.Effect<Array<Event>, DecodeError, DataKeys> =>
  DataKeys.use((dataKeys) =>
    Clock.clockWith((clock) => {
      const cached = dataKeys.cached
      const now = clock.currentTimeMillisUnsafe()
      const keyOf = (id: string) => cached?.(id, now)
      const decoded: Array<Event | Effect.Effect<Event, DecodeError, DataKeys>> = []
      let effects = false
      for (const stored of items) {
        const atHand = decodedAtHand(location, EventRecord.attributesOf(stored), keyOf)
        if (atHand === undefined) {
          effects = true
          decoded.push(EventRecord.decode(location, stored, options))
        } else if (Result.isFailure(atHand)) {
          // Items before it that need an effect run first: one of them may fail first, as one by one.
          if (!effects) return Effect.fail(atHand.failure)
          decoded.push(Effect.fail(atHand.failure))
          break
        } else {
          decoded.push(atHand.success)
        }
      }
      return effects
        ? Effect.forEach(decoded, (each) => (Effect.isEffect(each) ? each : Effect.succeed(each)))
        : Effect.succeed(decoded as Array<Event>)
    })
  )
