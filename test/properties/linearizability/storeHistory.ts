/**
 * Recording the real store into KvModel histories: each call is stamped on a
 * shared logical clock right before it runs and right after it returns, and
 * its result is mapped to the model's output shape. Anything other than a
 * success or one of the contract's typed refusals (StorageFailure,
 * WriteContention, Throttled, a defect, an interruption) leaves the operation
 * pending: it may or may not have taken effect.
 */
import { Effect, Exit, Option } from "effect"
import type { ConditionalAction } from "../../../src/domain/AtomicWrite.ts"
import type { Store } from "../../../src/programs/store/Store.ts"
import type { HistoryRecorder } from "./History.ts"
import type { KvErrorTag, KvInput, KvOutput } from "./KvModel.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A value as the store takes it. */
export const bytes = (s: string): Uint8Array => encoder.encode(s)

/** A value as the model sees it. */
export const text = (b: Uint8Array): string => decoder.decode(b)

/** The store's typed refusals: an operation that failed with one of them definitely did not happen. */
export const refusals: ReadonlySet<string> = new Set<KvErrorTag>([
  "AlreadyExists",
  "NotFound",
  "CompareFailed",
  "IncorrectRevision",
  "ConditionFailed"
])

/** What the store answered, or undefined when the op must stay pending. */
export type Observed = KvOutput | undefined

/** The store call for a model input, with its success mapped to the model's output. */
export const callFor = (
  store: Store["Service"],
  input: KvInput
): Effect.Effect<KvOutput, { readonly _tag: string }> => {
  switch (input._tag) {
    case "Create":
      return Effect.map(
        store.create({ key: input.key, value: bytes(input.value) }),
        (l) => ({ _tag: "Ok", revision: l.revision })
      )
    case "Put":
      return Effect.map(
        store.put({ key: input.key, value: bytes(input.value) }),
        (l) => ({ _tag: "Ok", revision: l.revision })
      )
    case "Update":
      return Effect.map(
        store.update({ key: input.key, value: bytes(input.value) }),
        (l) => ({ _tag: "Ok", revision: l.revision })
      )
    case "CompareAndSwap":
      return Effect.map(
        store.compareAndSwap({ key: input.key, value: bytes(input.expected) }, {
          key: input.key,
          value: bytes(input.value)
        }),
        (l) => ({ _tag: "Ok", revision: l.revision })
      )
    case "ConditionalUpdate":
      return Effect.map(
        store.conditionalUpdate({ key: input.key, value: bytes(input.value), revision: input.revision }),
        (l) => ({ _tag: "Ok", revision: l.revision })
      )
    case "ConditionalDelete":
      return Effect.as(store.conditionalDelete(input.key, input.revision), { _tag: "Ok" } as KvOutput)
    case "Get":
      return Effect.map(
        store.get(input.key),
        (item) => ({ _tag: "Ok", value: text(item.value), revision: item.revision })
      )
    case "Delete":
      return Effect.as(store.delete(input.key), { _tag: "Ok" } as KvOutput)
    case "AtomicWrite": {
      const actions: Array<ConditionalAction> = input.entries.map((e) => ({
        key: e.key,
        condition: e.condition,
        action: e.action._tag === "Put" ? { _tag: "Put", value: bytes(e.action.value) } : e.action
      }))
      return Effect.map(store.atomicWrite(actions), (revision) => ({ _tag: "Ok", revision }))
    }
  }
}

/**
 * Runs one op against the store and records it: the call is stamped just
 * before the store is invoked, the return just after it answers. Returns what
 * was observed so the caller can learn values and revisions from it.
 */
export const recordOp = (
  recorder: HistoryRecorder<KvInput, KvOutput>,
  store: Store["Service"],
  process: string | number,
  input: KvInput,
  onUnexpected?: (tag: string) => void
): Effect.Effect<Observed> =>
  Effect.suspend(() => {
    const respond = recorder.invoke(process, input)
    return Effect.exit(callFor(store, input)).pipe(
      Effect.map((exit): Observed => {
        if (Exit.isSuccess(exit)) {
          respond(exit.value)
          return exit.value
        }
        const error = Exit.findErrorOption(exit)
        if (Option.isSome(error) && refusals.has(error.value._tag)) {
          const output: KvOutput = { _tag: "Err", tag: error.value._tag as KvErrorTag }
          respond(output)
          return output
        }
        // Unknown outcome: never respond, so the recorder keeps the op pending.
        onUnexpected?.(Option.isSome(error) ? error.value._tag : "defect/interrupt")
        return undefined
      })
    )
  })
