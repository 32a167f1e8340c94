/**
 * Atomic multi-key writes: conditions and actions on up to 64 distinct keys,
 * applied all together or not at all, as Teleport's `AtomicWrite`.
 */
import { Result } from "effect"
import { BadParameter } from "./Errors.ts"
import type { Item } from "./Item.ts"
import * as Key from "./Key.ts"

/** What must hold of a key for the write to go ahead. */
export type Condition =
  | { readonly _tag: "Whatever" }
  | { readonly _tag: "Exists" }
  | { readonly _tag: "NotExists" }
  | { readonly _tag: "Revision"; readonly revision: string }

/** What to do with a key when every condition holds. */
export type Action =
  | { readonly _tag: "Put"; readonly value: Uint8Array; readonly expires?: number | undefined }
  | { readonly _tag: "Delete" }
  | { readonly _tag: "Nop" }

/** One key's condition and action. */
export interface ConditionalAction {
  readonly key: string
  readonly condition: Condition
  readonly action: Action
}

/** Constructors for conditions. */
export const Condition = {
  whatever: { _tag: "Whatever" } as Condition,
  exists: { _tag: "Exists" } as Condition,
  notExists: { _tag: "NotExists" } as Condition,
  revision: (revision: string): Condition => ({ _tag: "Revision", revision })
} as const

/** Constructors for actions. */
export const Action = {
  put: (value: Uint8Array, expires?: number): Action => ({ _tag: "Put", value, expires }),
  delete: { _tag: "Delete" } as Action,
  nop: { _tag: "Nop" } as Action
} as const

/** The most entries one atomic write may have (Teleport's limit). */
export const maxEntries = 64

/** Checks the shape of an atomic write before any I/O. */
export const validate = (
  actions: ReadonlyArray<ConditionalAction>
): Result.Result<ReadonlyArray<ConditionalAction>, BadParameter> => {
  if (actions.length === 0 || actions.length > maxEntries) {
    return Result.fail(
      new BadParameter({
        field: "actions",
        reason: `an atomic write takes 1 to ${maxEntries} entries, got ${actions.length}`
      })
    )
  }
  const seen = new Set<string>()
  for (const [index, entry] of actions.entries()) {
    const checked = Key.validate(entry.key, `actions[${index}].key`)
    if (Result.isFailure(checked)) return Result.fail(checked.failure)
    if (seen.has(entry.key)) {
      return Result.fail(new BadParameter({ field: `actions[${index}].key`, reason: `duplicate key ${entry.key}` }))
    }
    seen.add(entry.key)
    if (
      entry.action._tag === "Put" && entry.action.expires !== undefined && !Number.isSafeInteger(entry.action.expires)
    ) {
      return Result.fail(
        new BadParameter({
          field: `actions[${index}].action.expires`,
          reason: "an expiry must be whole epoch milliseconds"
        })
      )
    }
    if (entry.condition._tag === "Revision" && entry.condition.revision === "") {
      return Result.fail(
        new BadParameter({ field: `actions[${index}].condition`, reason: "a revision condition needs a revision" })
      )
    }
  }
  if (!actions.some((entry) => entry.action._tag !== "Nop")) {
    return Result.fail(
      new BadParameter({ field: "actions", reason: "an atomic write needs at least one Put or Delete" })
    )
  }
  return Result.succeed(actions)
}

/** Whether a condition holds for the key's present item (or its absence), given as its revision. */
export const holds = (condition: Condition, live: Pick<Item, "revision"> | undefined): boolean => {
  switch (condition._tag) {
    case "Whatever":
      return true
    case "Exists":
      return live !== undefined
    case "NotExists":
      return live === undefined
    case "Revision":
      return live !== undefined && live.revision === condition.revision
  }
}

/** A readable name for a condition, for error messages. */
export const describe = (condition: Condition): string =>
  condition._tag === "Revision" ? `Revision(${condition.revision})` : condition._tag
