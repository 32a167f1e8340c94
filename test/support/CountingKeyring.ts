/**
 * A keyring that counts the calls it passes on to another, to see how often the store goes to KMS (or any
 * keyring): `generate`, `wrap` and `unwrap`. It keeps the inner keyring's name.
 */
import { Effect } from "effect"
import { Keyring } from "../../src/infra/crypto/Keyring.ts"

/** `inner`, counting; `calls` grows as the keyring is used. */
export const counting = (inner: Keyring["Service"]) => {
  const calls = { generate: 0, wrap: 0, unwrap: 0 }
  const keyring = Keyring.of({
    name: inner.name,
    generate: (ctx) =>
      Effect.suspend(() => {
        calls.generate++
        return inner.generate(ctx)
      }),
    wrap: (plaintext, ctx) =>
      Effect.suspend(() => {
        calls.wrap++
        return inner.wrap(plaintext, ctx)
      }),
    unwrap: (wrapped, ctx) =>
      Effect.suspend(() => {
        calls.unwrap++
        return inner.unwrap(wrapped, ctx)
      })
  })
  return { keyring, calls }
}
