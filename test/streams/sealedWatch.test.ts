/**
 * Watches over sealed prefixes (see `SealedKeys`): records are matched by stored keys before anything is decrypted
 * and delivered under their real keys, whether they come from the stream (another instance's writes) or from this
 * instance's own acknowledgements; a prefix inside a sealed segment still selects by real key.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"
import type { Store } from "../../src/programs/store/Store.ts"
import type { WatchEvent, WatchOptions } from "../../src/programs/store/Watch.ts"
import { makeClient, openStore, provisionTable } from "../support/TestStore.ts"
import { startWatch } from "../support/Watching.ts"
import type { Watching } from "../support/Watching.ts"
import { eventually } from "./Harness.ts"

const bytes = (text: string) => new TextEncoder().encode(text)
const decoder = new TextDecoder()

type Changed = Exclude<WatchEvent, { _tag: "Init" }>

const describeEvent = (event: WatchEvent) =>
  event._tag === "Init"
    ? "Init"
    : event._tag === "Put"
    ? `Put ${event.item.key}#${event.seq}=${decoder.decode(event.item.value)}`
    : `${event._tag} ${event.key}#${event.seq}`

const sealed: ReadonlyArray<SealedPrefix> = [
  { prefix: "/tokens/", seal: "rest" },
  { prefix: "/users/", seal: "segment" }
]

/** What a watch delivered for one key, in order. */
const ofKey = (watching: Watching, key: string) =>
  watching.events.filter((event) =>
    event._tag !== "Init" && (event._tag === "Put" ? event.item.key : event.key) === key
  ).map(describeEvent)

/** A watch that has delivered `Init`. */
const liveWatch = (store: Store["Service"], options?: WatchOptions) =>
  Effect.gen(function*() {
    const watch = yield* startWatch(store, options)
    expect(yield* eventually(() => watch.watching.events.length > 0)).toBe(true)
    return watch.watching
  })

describe("watches over sealed prefixes", () => {
  it.live("deliver real keys, from the stream and from own writes, filtered by real prefixes", () =>
    Effect.gen(function*() {
      const client = makeClient()
      const location = yield* provisionTable(client).pipe(Effect.orDie)
      const watcher = yield* openStore(location, { client, storeOptions: { sealed } })
      const writer = yield* openStore(location, { storeOptions: { sealed } })

      const tokens = yield* liveWatch(watcher, { prefixes: ["/tokens/"] })
      const alice = yield* liveWatch(watcher, { prefixes: ["/users/alice/"] })
      const al = yield* liveWatch(watcher, { prefixes: ["/users/al"] })
      const everything = yield* liveWatch(watcher)

      // Another instance's writes reach the watcher through the stream.
      yield* writer.put({ key: "/tokens/join-3f9a", value: bytes("node") })
      yield* writer.put({ key: "/users/alice/profile", value: bytes("a1") })
      yield* writer.put({ key: "/users/albert/profile", value: bytes("b1") })
      yield* writer.put({ key: "/users/bob/profile", value: bytes("c1") })
      yield* writer.delete("/tokens/join-3f9a")
      // The watcher's own writes reach it at acknowledgement.
      yield* watcher.put({ key: "/users/alice/profile", value: bytes("a2") })
      yield* watcher.put({ key: "/tokens/own-77", value: bytes("own"), expires: Date.now() + 300 })
      yield* Effect.sleep(500)
      // The expiry is recorded by the read that meets it, and delivered under the real key too.
      expect((yield* Effect.flip(watcher.get("/tokens/own-77")))._tag).toBe("NotFound")

      expect(yield* eventually(() => everything.events.length >= 1 + 8)).toBe(true)
      expect(yield* eventually(() => tokens.events.length >= 1 + 4)).toBe(true)
      // Order holds per key (own writes and the stream's records of other keys may interleave either way).
      expect(ofKey(tokens, "/tokens/join-3f9a")).toEqual(["Put /tokens/join-3f9a#1=node", "Delete /tokens/join-3f9a#2"])
      expect(ofKey(tokens, "/tokens/own-77")).toEqual(["Put /tokens/own-77#1=own", "Expire /tokens/own-77#2"])
      expect(yield* eventually(() => alice.events.length >= 1 + 2)).toBe(true)
      expect(alice.events.map(describeEvent)).toEqual([
        "Init",
        "Put /users/alice/profile#1=a1",
        "Put /users/alice/profile#2=a2"
      ])
      expect(yield* eventually(() => al.events.length >= 1 + 3)).toBe(true)
      expect(al.events.filter((event): event is Changed => event._tag !== "Init").map(describeEvent).sort()).toEqual([
        "Put /users/albert/profile#1=b1",
        "Put /users/alice/profile#1=a1",
        "Put /users/alice/profile#2=a2"
      ])
      const keys = new Set(
        everything.events.flatMap((event) =>
          event._tag === "Init" ? [] : [event._tag === "Put" ? event.item.key : event.key]
        )
      )
      expect([...keys].sort()).toEqual([
        "/tokens/join-3f9a",
        "/tokens/own-77",
        "/users/albert/profile",
        "/users/alice/profile",
        "/users/bob/profile"
      ])
      yield* Effect.sleep(500) // room for a wrongly matched or repeated event to show up
      expect(tokens.events).toHaveLength(5)
      expect(alice.events).toHaveLength(3)
      expect(al.events).toHaveLength(4)
      for (const watching of [tokens, alice, al, everything]) expect(watching.error).toBeUndefined()
    }))
})
