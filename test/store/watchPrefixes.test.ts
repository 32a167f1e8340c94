/**
 * Why watch prefixes are checked like keys: a prefix with a lone surrogate selects different keys by `startsWith`
 * (how a watch matches a key) than by the byte range of its UTF-8 form (how range reads, projections and rebuilds
 * select keys), because UTF-8 cannot carry a lone surrogate and encodes it as U+FFFD. `checkPrefixes` refuses such a
 * prefix, and keeps `""` as "every key", which both readings agree on. The stores' behaviour is in the contract
 * (test/store/contract/suite/watchInput.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { BadParameter } from "../../src/domain/Errors.ts"
import * as Key from "../../src/domain/Key.ts"
import * as SortKey from "../../src/domain/SortKey.ts"
import * as NewestEvents from "../../src/programs/store/NewestEvents.ts"
import { checkPrefixes } from "../../src/programs/store/StoreInput.ts"
import { matches } from "../../src/programs/store/Watch.ts"

/** Whether a key's first event lies in a sort-key range (inclusive bounds), as a Query would find it. */
const inRange = (range: { readonly lower: Uint8Array; readonly upper: Uint8Array }, key: string): boolean => {
  const sortKey = SortKey.encode(key, 1)
  return Buffer.compare(range.lower, sortKey) <= 0 && Buffer.compare(sortKey, range.upper) <= 0
}

describe("watch prefixes", () => {
  it("a lone surrogate makes startsWith and the prefix's byte range disagree", () => {
    const prefix = "/w/\uD83D"
    const emoji = "/w/\u{1F600}" // starts with the high surrogate D83D in UTF-16
    const replacement = "/w/\uFFFD" // what UTF-8 makes of the lone surrogate
    const [range] = NewestEvents.coveredRanges([prefix])
    expect(matches([prefix], emoji)).toBe(true)
    expect(inRange(range!, emoji)).toBe(false)
    expect(matches([prefix], replacement)).toBe(false)
    expect(inRange(range!, replacement)).toBe(true)
  })

  it("for well-formed prefixes, and for the empty prefix, both readings agree", () => {
    const keys = ["/w/\u{1F600}", "/w/a", "/w", "/x/", "/w/\uFFFD", "/", Key.maxKey]
    for (const prefixes of [["/w/"], ["/w/\u{1F600}"], [""], ["/x/", "/w/a"]]) {
      const ranges = NewestEvents.coveredRanges(prefixes)
      for (const key of keys) {
        expect(matches(prefixes, key), `${JSON.stringify(prefixes)} ${key}`)
          .toBe(ranges.some((range) => inRange(range, key)))
      }
    }
  })

  it.effect("checkPrefixes refuses what no key can start with, naming the prefix, and accepts \"\"", () =>
    Effect.gen(function*() {
      for (const ok of [undefined, [], [""], ["", "/a/"], ["/\u{1F600}"]]) {
        expect(Exit.isSuccess(yield* Effect.exit(checkPrefixes(ok))), JSON.stringify(ok)).toBe(true)
      }
      expect(yield* Effect.flip(checkPrefixes(["/a/", "/b\uDC00"]))).toEqual(
        new BadParameter({ field: "prefixes[1]", reason: "a prefix must not contain a lone surrogate" })
      )
      expect(yield* Effect.flip(checkPrefixes(["/a\u0000"]))).toEqual(
        new BadParameter({ field: "prefixes[0]", reason: "a prefix must not contain a NUL character" })
      )
    }))
})
