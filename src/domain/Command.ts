/**
 * Commands: what a caller asks of one key. Each is decided against the key's
 * state by {@link ./Decide.ts}; multi-key writes are in {@link ./AtomicWrite.ts}.
 */
import type { ItemInput } from "./Item.ts"

/** What every command may carry besides its own fields. */
interface Base {
  /** The key as the caller named it, when the command's key is its sealed form (see `SealedKeys`). */
  readonly realKey?: string | undefined
}

/** Store an item only if no live item exists. */
export interface Create extends Base {
  readonly _tag: "Create"
  readonly item: ItemInput
}
/** Store an item whatever exists. */
export interface Put extends Base {
  readonly _tag: "Put"
  readonly item: ItemInput
}
/** Replace a live item. */
export interface Update extends Base {
  readonly _tag: "Update"
  readonly item: ItemInput
}
/** Replace a live item whose value equals `expected`. */
export interface CompareAndSwap extends Base {
  readonly _tag: "CompareAndSwap"
  readonly expected: Uint8Array
  readonly item: ItemInput
}
/** Replace a live item whose revision is `revision`. */
export interface ConditionalUpdate extends Base {
  readonly _tag: "ConditionalUpdate"
  readonly item: ItemInput
  readonly revision: string
}
/** Delete a live item whose revision is `revision`. */
export interface ConditionalDelete extends Base {
  readonly _tag: "ConditionalDelete"
  readonly key: string
  readonly revision: string
}
/** Delete a live item. */
export interface Delete extends Base {
  readonly _tag: "Delete"
  readonly key: string
}
/** Give a live item a new expiry; a non-empty `revision` must be the live one. */
export interface KeepAlive extends Base {
  readonly _tag: "KeepAlive"
  readonly key: string
  readonly revision: string
  readonly expires: number | undefined
}
/** Record the expiry of an item that has expired, if nobody has yet. */
export interface Expire extends Base {
  readonly _tag: "Expire"
  readonly key: string
}

/** Any single-key command. */
export type Command =
  | Create
  | Put
  | Update
  | CompareAndSwap
  | ConditionalUpdate
  | ConditionalDelete
  | Delete
  | KeepAlive
  | Expire

/** The key a command is for. */
export const keyOf = (command: Command): string => "item" in command ? command.item.key : command.key
