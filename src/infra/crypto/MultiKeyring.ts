/**
 * A keyring of keyrings: one generator makes each data key, and every other
 * keyring wraps a copy too (a second region, a break-glass key), so any one
 * of them can unwrap it.
 */
import { Effect } from "effect"
import { Keyring, KeyringError } from "./Keyring.ts"

/** A multi-keyring; unwrapping tries the generator first, then the others in order. */
export const make = (generator: Keyring["Service"], others: ReadonlyArray<Keyring["Service"]>): Keyring["Service"] => {
  const all = [generator, ...others]
  return Keyring.of({
    name: `multi(${all.map((keyring) => keyring.name).join(", ")})`,
    generate: (context) =>
      Effect.gen(function*() {
        const generated = yield* generator.generate(context)
        const copies = yield* Effect.forEach(others, (keyring) => keyring.wrap(generated.plaintext, context))
        return { plaintext: generated.plaintext, wrapped: [...generated.wrapped, ...copies.flat()] }
      }),
    wrap: (plaintext, context) =>
      Effect.map(Effect.forEach(all, (keyring) => keyring.wrap(plaintext, context)), (copies) => copies.flat()),
    unwrap: (wrapped, context) =>
      Effect.gen(function*() {
        const failures: Array<KeyringError> = []
        for (const keyring of all) {
          const result = yield* Effect.result(keyring.unwrap(wrapped, context))
          if (result._tag === "Success") return result.success
          failures.push(result.failure)
        }
        // The most telling failure: a refusal says more than "no key of mine".
        const telling = failures.find((failure) => failure.failure !== "no-matching-key") ?? failures[0]
        return yield* new KeyringError({
          keyring: "multi",
          failure: telling?.failure ?? "no-matching-key",
          reason: failures.map((failure) => `${failure.keyring}: ${failure.reason}`).join("; ")
        })
      })
  })
}
