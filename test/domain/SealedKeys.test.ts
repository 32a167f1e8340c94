/**
 * The pure rules of sealed keys: which keys a sealed prefix covers and how they split, how a stored key looks, that
 * stored keys handed back are recognised, and which ranges touch a sealed prefix or stay inside one segment.
 */
import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import * as Key from "../../src/domain/Key.ts"
import * as SealedKeys from "../../src/domain/SealedKeys.ts"
import type { SealedPrefix } from "../../src/domain/SealedKeys.ts"

const prefixes: ReadonlyArray<SealedPrefix> = [
  { prefix: "/tokens/", seal: "rest" },
  { prefix: "/users/", seal: "segment" }
]
const mac = "A".repeat(SealedKeys.macChars)

describe("SealedKeys.place", () => {
  it("leaves keys outside every sealed prefix, and each prefix itself, in clear", () => {
    for (const key of ["/other", "/tokens", "/tokens/", "/users/", "/usersx/a"]) {
      expect(SealedKeys.place(prefixes, key)).toEqual({ _tag: "Clear" })
    }
  })

  it("seals the whole rest under a rest prefix, and only the next segment under a segment prefix", () => {
    expect(SealedKeys.place(prefixes, "/tokens/abc/def")).toMatchObject({ _tag: "Seal", secret: "abc/def", rest: "" })
    expect(SealedKeys.place(prefixes, "/users/alice")).toMatchObject({ _tag: "Seal", secret: "alice", rest: "" })
    const profile = SealedKeys.place(prefixes, "/users/alice/profile")
    expect(profile).toMatchObject({ _tag: "Seal", secret: "alice", rest: "/profile" })
    if (profile._tag !== "Seal") throw new Error("sealed")
    expect(SealedKeys.storedKey(profile, mac)).toBe(`/users/\u0001${mac}/profile`)
  })

  it("recognises stored keys handed back, and only the exact sealed shape", () => {
    expect(SealedKeys.place(prefixes, `/users/\u0001${mac}/profile`)._tag).toBe("Stored")
    expect(SealedKeys.place(prefixes, `/users/\u0001${mac}`)._tag).toBe("Stored")
    expect(SealedKeys.place(prefixes, `/tokens/\u0001${mac}`)._tag).toBe("Stored")
    // Under a rest prefix nothing may follow the MAC; a short or longer one is a caller's key to seal.
    expect(SealedKeys.place(prefixes, `/tokens/\u0001${mac}/x`)._tag).toBe("Seal")
    expect(SealedKeys.place(prefixes, `/users/\u0001${mac.slice(1)}`)._tag).toBe("Seal")
    expect(SealedKeys.place(prefixes, `/users/\u0001${mac}x`)._tag).toBe("Seal")
  })

  it("knows the stored size of a key before any MAC is made", () => {
    expect(SealedKeys.storedBytes(prefixes, "/users/a/profile")).toBe("/users/".length + 1 + 43 + "/profile".length)
    expect(SealedKeys.storedBytes(prefixes, `/tokens/${"x".repeat(500)}`)).toBe("/tokens/".length + 44)
    expect(SealedKeys.storedBytes(prefixes, "/é")).toBe(Key.toBytes("/é").length)
  })
})

describe("SealedKeys ranges", () => {
  it("a range touches a sealed prefix when it may hold a key under it", () => {
    const touched = (start: string, end: string) =>
      SealedKeys.touchedBy(prefixes, start, end).map((entry) => entry.prefix)
    expect(touched("/a", "/z")).toEqual(["/tokens/", "/users/"])
    expect(touched("/tokens/m", "/tokens/n")).toEqual(["/tokens/"])
    expect(touched("/u", "/users/")).toEqual([]) // ends at the prefix itself, which is no sealed key
    expect(touched("/users/zz", Key.rangeEnd("/users/"))).toEqual(["/users/"])
    expect(touched("/v", "/z")).toEqual([])
  })

  it("a range inside one segment maps to a contiguous stored range; whole segments are a stored prefix", () => {
    expect(SealedKeys.sharedSegment(prefixes, "/users/alice/a", "/users/alice/z")).toBeDefined()
    expect(SealedKeys.sharedSegment(prefixes, "/users/alice/a", "/users/bob/z")).toBeUndefined()
    expect(SealedKeys.sharedSegment(prefixes, "/users/alice", "/users/alice/z")).toBeUndefined()
    expect(SealedKeys.sharedSegment(prefixes, "/tokens/a/a", "/tokens/a/z")).toBeUndefined()
    expect(SealedKeys.wholeSegmentPrefix(prefixes, "/users/alice/")).toBe(true)
    expect(SealedKeys.wholeSegmentPrefix(prefixes, "/users/al")).toBe(false)
    expect(SealedKeys.wholeSegmentPrefix(prefixes, "/tokens/a/")).toBe(false)
  })
})

describe("SealedKeys.validate", () => {
  it("accepts prefixes ending in / that do not nest, and names the bad entry otherwise", () => {
    expect(Result.isSuccess(SealedKeys.validate(prefixes))).toBe(true)
    const failure = (list: ReadonlyArray<SealedPrefix>) =>
      Result.getOrThrowWith(Result.flip(SealedKeys.validate(list)), () => "valid")
    expect(failure([{ prefix: "/tokens", seal: "rest" }])).toMatchObject({ field: "sealed[0].prefix" })
    expect(failure([{ prefix: "", seal: "rest" }])).toMatchObject({ field: "sealed[0].prefix" })
    expect(failure([{ prefix: "/a/", seal: "rest" }, { prefix: "/a/b/", seal: "segment" }]).reason).toContain("nest")
    expect(failure([{ prefix: "/a/", seal: "all" as "rest" }])).toMatchObject({ field: "sealed[0].seal" })
  })
})
