/**
 * The decision of a single-key command against the key's state: which events
 * to append and whether the command succeeds. Pure: the store supplies `now`
 * and names the events; conditional appends make the decision safe under
 * concurrency.
 */
import type { Command } from "./Command.ts"
import { AlreadyExists, CompareFailed, IncorrectRevision, NotFound } from "./Errors.ts"
import type { EventDraft } from "./Event.ts"
import { isDueForExpiry, liveItem, presentRevision } from "./Event.ts"
import type { ItemInput } from "./Item.ts"
import { sameBytes } from "./Item.ts"
import type { KeyState } from "./KeyState.ts"

/** The failures a single-key command can decide on. */
export type CommandError = AlreadyExists | NotFound | CompareFailed | IncorrectRevision

/**
 * What to append, in order, and how the command ends. Events are appended even
 * when the command fails: an `expire` event records an expiry that the command
 * discovered. On success the command's result is its last event.
 */
export interface Decision {
  readonly events: ReadonlyArray<EventDraft>
  readonly failure: CommandError | undefined
}

const putDraft = (item: ItemInput): EventDraft => ({ op: "put", value: item.value, expires: item.expires })

/** Decides `command` for `state` at `now` (epoch milliseconds). */
export const decide = (command: Command, state: KeyState, now: number): Decision => {
  const expiry: ReadonlyArray<EventDraft> = isDueForExpiry(state.latest, now) ? [{ op: "expire" }] : []
  const live = liveItem(state.latest, now)
  // A shredded item is present (it can be replaced or deleted) even though its value cannot be read.
  const present = presentRevision(state.latest, now)
  const succeed = (draft: EventDraft): Decision => ({ events: [...expiry, draft], failure: undefined })
  const fail = (failure: CommandError): Decision => ({ events: expiry, failure })
  const key = state.key

  switch (command._tag) {
    case "Create":
      return present !== undefined ? fail(new AlreadyExists({ key })) : succeed(putDraft(command.item))
    case "Put":
      return succeed(putDraft(command.item))
    case "Update":
      return present !== undefined ? succeed(putDraft(command.item)) : fail(new NotFound({ key }))
    case "CompareAndSwap":
      if (present === undefined) return fail(new CompareFailed({ key, reason: "absent" }))
      return live !== undefined && sameBytes(live.value, command.expected)
        ? succeed(putDraft(command.item))
        : fail(new CompareFailed({ key, reason: "value-mismatch" }))
    case "ConditionalUpdate":
      return command.revision !== "" && present === command.revision
        ? succeed(putDraft(command.item))
        : fail(new IncorrectRevision({ key, expected: command.revision }))
    case "ConditionalDelete":
      return command.revision !== "" && present === command.revision
        ? succeed({ op: "delete" })
        : fail(new IncorrectRevision({ key, expected: command.revision }))
    case "Delete":
      return present !== undefined ? succeed({ op: "delete" }) : fail(new NotFound({ key }))
    case "KeepAlive":
      if (!live) return fail(new NotFound({ key }))
      if (command.revision !== "" && command.revision !== live.revision) {
        return fail(new IncorrectRevision({ key, expected: command.revision }))
      }
      return succeed({ op: "keep-alive", value: live.value, expires: command.expires, valueRevision: live.revision })
    case "Expire":
      return { events: expiry, failure: undefined }
  }
}
