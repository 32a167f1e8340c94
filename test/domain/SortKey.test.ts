import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as Key from "../../src/domain/Key.ts"
import * as SortKey from "../../src/domain/SortKey.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261125), numRuns: Number(process.env.FC_RUNS ?? 200) }

const sign = (n: number): -1 | 0 | 1 => (n < 0 ? -1 : n > 0 ? 1 : 0)
const cmp = (a: Uint8Array, b: Uint8Array): -1 | 0 | 1 => sign(Buffer.compare(a, b))
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

const edgeChar = fc.constantFrom(
  "a",
  "b",
  "/",
  "\u0001",
  "\u007f",
  "\u0080",
  "é",
  "\u07ff",
  "\u0800",
  "\ud7ff",
  "\ue000",
  "\uffff",
  "😀",
  "\u{10ffff}"
)
const keyChar = fc.oneof(fc.string({ unit: "binary", minLength: 1, maxLength: 1 }), edgeChar).filter((c) =>
  c !== "\u0000"
)
/** Valid keys: non-empty, no NUL, well formed (short, so shared prefixes are common). */
const key = fc.string({ unit: keyChar, minLength: 1, maxLength: 6 })
const suffix = fc.string({ unit: keyChar, maxLength: 4 })
const seq = fc.oneof(
  fc.integer({ min: 0, max: 1000 }),
  fc.constantFrom(0, 1, 255, 256, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })
)
/** Two keys where one often extends the other or both share a prefix. */
const keyPair = fc.oneof(
  fc.tuple(key, key),
  fc.tuple(key, suffix).map(([k, s]) => [k, k + s] as [string, string]),
  fc.tuple(key, suffix).map(([k, s]) => [k + s, k] as [string, string]),
  fc.tuple(key, key, key).map(([p, a, b]) => [p + a, p + b] as [string, string])
)

describe("SortKey.encode / decode", () => {
  it("lays out key bytes ‖ 0x00 ‖ big-endian (2^64−1 − seq)", () => {
    expect(hex(SortKey.encode("a", 0))).toBe("6100ffffffffffffffff")
    expect(hex(SortKey.encode("a", 1))).toBe("6100fffffffffffffffe")
    expect(hex(SortKey.encode("é", 256))).toBe("c3a900fffffffffffffeff")
    expect(SortKey.encode("😀", 1).length).toBe(4 + Key.sortKeySuffixBytes)
  })

  it("a maximal key fits DynamoDB's sort key limit exactly", () => {
    expect(SortKey.encode("x".repeat(Key.maxKeyBytes), 1).length).toBe(Key.sortKeyLimitBytes)
  })

  it("round-trips key and seq (property)", () => {
    fc.assert(
      fc.property(key, seq, (k, s) => {
        expect(SortKey.decode(SortKey.encode(k, s))).toEqual({ key: k, seq: s })
      }),
      params
    )
  })

  it("decodes a sort key that is a view into a larger buffer (property)", () => {
    fc.assert(
      fc.property(key, seq, fc.nat(7), (k, s, offset) => {
        const encoded = SortKey.encode(k, s)
        const backing = new Uint8Array(offset + encoded.length + 5).fill(0xaa)
        backing.set(encoded, offset)
        const view = backing.subarray(offset, offset + encoded.length)
        expect(SortKey.decode(view)).toEqual({ key: k, seq: s })
      }),
      params
    )
  })

  it("orders sort keys by key bytes, then by seq descending (property)", () => {
    fc.assert(
      fc.property(keyPair, seq, seq, ([k1, k2], s1, s2) => {
        const keyOrder = Key.compare(k1, k2)
        const expected = keyOrder !== 0 ? keyOrder : sign(s2 - s1)
        expect(cmp(SortKey.encode(k1, s1), SortKey.encode(k2, s2))).toBe(expected)
      }),
      params
    )
  })

  it("puts the newest event of a key first and a key before its extensions", () => {
    const sorted = [
      SortKey.encode("ab", 1),
      SortKey.encode("a", 1),
      SortKey.encode("a", 2),
      SortKey.encode("a\u0001", 9),
      SortKey.encode("b", 1)
    ].sort(Buffer.compare).map((bytes) => SortKey.decode(bytes))
    expect(sorted).toEqual([
      { key: "a", seq: 2 },
      { key: "a", seq: 1 },
      { key: "a\u0001", seq: 9 },
      { key: "ab", seq: 1 },
      { key: "b", seq: 1 }
    ])
  })
})

describe("SortKey.keyPrefix", () => {
  it("is the key bytes and a NUL, and every sort key of the key starts with it (property)", () => {
    fc.assert(
      fc.property(key, seq, (k, s) => {
        const prefix = SortKey.keyPrefix(k)
        expect(hex(prefix)).toBe(hex(Key.toBytes(k)) + "00")
        expect(hex(SortKey.encode(k, s)).startsWith(hex(prefix))).toBe(true)
        expect(hex(SortKey.lowerBound(k)).startsWith(hex(prefix))).toBe(true)
        expect(hex(SortKey.upperBound(k)).startsWith(hex(prefix))).toBe(true)
      }),
      params
    )
  })

  it("does not prefix the sort keys of a key that extends this one (property)", () => {
    fc.assert(
      fc.property(key, suffix.filter((s) => s !== ""), seq, (k, s, n) => {
        expect(hex(SortKey.encode(k + s, n)).startsWith(hex(SortKey.keyPrefix(k)))).toBe(false)
      }),
      params
    )
  })
})

describe("SortKey.lowerBound / upperBound", () => {
  it("are the sort keys of the largest and the smallest possible seq", () => {
    expect(hex(SortKey.lowerBound("k"))).toBe("6b00" + "00".repeat(8))
    expect(hex(SortKey.upperBound("k"))).toBe("6b00" + "ff".repeat(8))
    expect(hex(SortKey.upperBound("k"))).toBe(hex(SortKey.encode("k", 0)))
  })

  it("bracket every seq of the key (property)", () => {
    fc.assert(
      fc.property(key, seq, (k, s) => {
        const encoded = SortKey.encode(k, s)
        expect(cmp(SortKey.lowerBound(k), encoded)).toBeLessThanOrEqual(0)
        expect(cmp(encoded, SortKey.upperBound(k))).toBeLessThanOrEqual(0)
      }),
      params
    )
  })

  it("exclude every event of every other key, including prefixes and extensions (property)", () => {
    fc.assert(
      fc.property(keyPair, seq, ([k, other], s) => {
        fc.pre(k !== other)
        const encoded = SortKey.encode(other, s)
        const inside = cmp(SortKey.lowerBound(k), encoded) <= 0 && cmp(encoded, SortKey.upperBound(k)) <= 0
        expect(inside).toBe(false)
      }),
      params
    )
  })

  it("exclude a key that the bounded key is a prefix of, and a key that is a prefix of it", () => {
    for (
      const [k, other] of [["a", "ab"], ["ab", "a"], ["a", "a\u0001"], ["/users", "/users/alice"], [
        "é",
        "é\u0001"
      ]] as const
    ) {
      for (const s of [0, 1, Number.MAX_SAFE_INTEGER]) {
        const encoded = SortKey.encode(other, s)
        const inside = cmp(SortKey.lowerBound(k), encoded) <= 0 && cmp(encoded, SortKey.upperBound(k)) <= 0
        expect(inside, `${k} vs ${other}@${s}`).toBe(false)
      }
    }
  })
})

describe("SortKey.prefixUpperBound", () => {
  it("is the prefix bytes and 0xFF", () => {
    expect(hex(SortKey.prefixUpperBound("/a"))).toBe("2f61ff")
    expect(hex(SortKey.prefixUpperBound(""))).toBe("ff")
  })

  it("sorts above every event of every key with the prefix (property)", () => {
    fc.assert(
      fc.property(key, suffix, seq, (p, s, n) => {
        expect(cmp(SortKey.encode(p + s, n), SortKey.prefixUpperBound(p))).toBe(-1)
        expect(cmp(SortKey.upperBound(p + s), SortKey.prefixUpperBound(p))).toBe(-1)
      }),
      params
    )
  })

  it("sorts below every event of every key after the prefix that lacks it (property)", () => {
    fc.assert(
      fc.property(key, key, seq, (p, k, n) => {
        const below = cmp(SortKey.encode(k, n), SortKey.prefixUpperBound(p)) < 0
        expect(below).toBe(k.startsWith(p) || Key.compare(k, p) < 0)
      }),
      params
    )
  })

  it("handles U+10FFFF prefixes, where rangeEnd has no answer", () => {
    const p = "\u{10ffff}"
    expect(cmp(SortKey.encode(p + "a", 1), SortKey.prefixUpperBound(p))).toBe(-1)
    expect(cmp(SortKey.encode(p + "\u{10ffff}", 0), SortKey.prefixUpperBound(p))).toBe(-1)
  })
})
