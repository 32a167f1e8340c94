/**
 * What the store contract suite needs of a backend (like Teleport's
 * `lib/backend/test/suite.go`, which every backend runs): store instances on one
 * storage, and inspection hooks every backend can answer — the ops of a key's
 * events and a snapshot of all stored state. Plus small byte and key helpers.
 * Nothing here may need DynamoDB: the memory runner imports it without one.
 */
import type { Effect, Scope } from "effect"
import { randomUUID } from "node:crypto"
import type { Store } from "../../../../src/programs/store/Store.ts"
import type { WriteAcks } from "../../../../src/programs/store/WriteAcks.ts"

/** A store instance. */
export type S = Store["Service"]

/** Storage that the tests of one suite share; each backend decides how long it lives (a table per file, a state per test). */
export interface ContractStorage {
  /** A store instance on this storage (several instances share it where the backend can), closed with the scope. */
  readonly open: () => Effect.Effect<S, never, Scope.Scope>
  /** A store instance with its write acknowledgements (those of the instance, not of the whole storage). */
  readonly openWithAcks: () => Effect.Effect<
    { readonly store: S; readonly acks: WriteAcks["Service"] },
    never,
    Scope.Scope
  >
  /**
   * An instance that records the storage requests it sends, for backends that do I/O (DynamoDB: SDK command names);
   * undefined for a backend without I/O.
   */
  readonly openRecording:
    | (() => Effect.Effect<{ readonly store: S; readonly requests: () => ReadonlyArray<string> }, never, Scope.Scope>)
    | undefined
  /** The ops of a key's events, oldest first. */
  readonly ops: (key: string) => Effect.Effect<ReadonlyArray<string>>
  /** A canonical text of everything stored, to show that an operation changed nothing. */
  readonly snapshot: () => Effect.Effect<string>
  /** The largest value a key can carry, by the store's own size bound. */
  readonly maxValueBytes: (key: string) => number
  /** The largest value one DynamoDB item holds whole under a key (larger ones are stored in chunks). */
  readonly wholeValueBytes: (key: string) => number
}

/** A backend the contract runs against. */
export interface ContractBackend {
  readonly name: string
  /** Storage for one suite; called at collection time inside the suite's `describe`, so it may register hooks. */
  readonly storage: (label: string) => ContractStorage
  /**
   * Whether the store records an `expire` event as soon as an item expires, with nobody reading (the memory store's
   * timer; the DynamoDB store leaves that to its projection worker, which the contract does not run).
   */
  readonly expiresWhenDue: boolean
  /**
   * Whether a range read pages lazily, reading only what is taken; false when every key is sealed whole (a range
   * is then read entirely and sorted by real key, see `SealedKeys`). Default true.
   */
  readonly pagesLazily?: boolean | undefined
  /** Moves the stores' clock forward by `millis` (both stores read Effect's `Clock`: `TestClock.adjust` under `it.effect`). */
  readonly advance: (millis: number) => Effect.Effect<void>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** UTF-8 bytes of a string. */
export const bytes = (value: string): Uint8Array => encoder.encode(value)

/** The string of UTF-8 bytes. */
export const text = (value: Uint8Array): string => decoder.decode(value)

/** A key prefix no other test uses. */
export const uniquePrefix = (label: string): string => `/${label}-${randomUUID().slice(0, 8)}/`

/** How many `expire` events a key has. */
export const expireCount = (ops: ReadonlyArray<string>): number => ops.filter((op) => op === "expire").length

/** Deterministic pseudo-random bytes, so big values differ from each other and are checkable. */
export const patterned = (length: number, seed: number): Uint8Array => {
  const out = new Uint8Array(length)
  let state = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < length; i++) {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    out[i] = state & 0xff
  }
  return out
}

/** Byte equality as a boolean, for expect(...).toBe(true) with big values. */
export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))
