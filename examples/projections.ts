/**
 * Projections of yours for the `dynastate` CLI: `dynastate worker --projections projections.ts` runs them beside
 * the built-in ones, and `dynastate rebuild greetings --projections projections.ts` rebuilds one from the table.
 * The default export is an Effect producing them; it may use the store's services.
 */
import { Projection } from "dynastate"
import { Effect } from "effect"

/** The greetings seen, newest seq per key, so a replayed older event never wins. */
const seen = new Map<string, number>()

const greetings = Projection.make({
  name: "greetings",
  prefixes: ["/pack-check/"],
  apply: (event) =>
    Effect.sync(() => {
      if ((seen.get(event.key) ?? 0) >= event.seq) return
      seen.set(event.key, event.seq)
      console.log(`greetings: ${event.key} seq ${event.seq} ${event.op}`)
    })
})

export default Effect.succeed([greetings])
