import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import { BadParameter } from "../../src/domain/Errors.ts"
import * as Key from "../../src/domain/Key.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261125), numRuns: Number(process.env.FC_RUNS ?? 200) }

const utf8 = (s: string): Buffer => Buffer.from(s, "utf8")
const sign = (n: number): -1 | 0 | 1 => (n < 0 ? -1 : n > 0 ? 1 : 0)

/** Code points that sit on the edges of UTF-8 / UTF-16 encodings, mixed with arbitrary ones. */
const edgeChar = fc.constantFrom(
  "a",
  "/",
  "\u0001",
  "\u007f",
  "\u0080",
  "\u00ff",
  "\u07ff",
  "\u0800",
  "\ud7ff",
  "\ue000",
  "\uff61",
  "\uffff",
  "\u{10000}",
  "\u{1f600}",
  "\u{10fffe}",
  "\u{10ffff}"
)
const char = fc.oneof(fc.string({ unit: "binary", minLength: 1, maxLength: 1 }), edgeChar)
const anyString = (constraints: { minLength?: number; maxLength?: number } = {}) =>
  fc.string({ unit: char, maxLength: 12, ...constraints })

const failureOf = (result: Result.Result<string, BadParameter>): BadParameter => {
  if (Result.isSuccess(result)) throw new Error(`expected a failure, got success ${JSON.stringify(result.success)}`)
  return result.failure
}

describe("Key.validate", () => {
  it("accepts ordinary keys and returns them unchanged", () => {
    for (const key of ["/users/alice", "a", "/", "ключ/значение", "/emoji/😀", "\u{10ffff}"]) {
      const result = Key.validate(key)
      expect(Result.isSuccess(result)).toBe(true)
      expect(Result.getOrThrow(result)).toBe(key)
    }
  })

  it("rejects the empty key, naming the default field", () => {
    const error = failureOf(Key.validate(""))
    expect(error).toBeInstanceOf(BadParameter)
    expect(error._tag).toBe("BadParameter")
    expect(error.field).toBe("key")
    expect(error.reason).toMatch(/non-empty/)
  })

  it("rejects a non-string at runtime", () => {
    const error = failureOf(Key.validate(undefined as unknown as string))
    expect(error.field).toBe("key")
    expect(error.reason).toMatch(/non-empty string/)
  })

  it("names the given field in every kind of error", () => {
    for (const bad of ["", "a\u0000b", "\ud800", "x".repeat(Key.maxKeyBytes + 1)]) {
      const error = failureOf(Key.validate(bad, "actions[7].key"))
      expect(error.field).toBe("actions[7].key")
      expect(error.message).toContain("actions[7].key")
    }
  })

  it("rejects NUL anywhere in the key", () => {
    for (const key of ["\u0000", "\u0000a", "a\u0000", "/a/\u0000/b"]) {
      const error = failureOf(Key.validate(key))
      expect(error.reason).toMatch(/NUL/)
    }
  })

  it("rejects lone high and low surrogates, but accepts proper pairs", () => {
    const lone = ["\ud800", "\udbff", "\udc00", "\udfff", "a\ud83d", "\ud83da", "a\ude00b", "\ude00\ud83d", "😀\ud83d"]
    for (const key of lone) {
      const error = failureOf(Key.validate(key))
      expect(error.reason).toMatch(/lone surrogate/)
    }
    expect(Result.isSuccess(Key.validate("\ud83d\ude00"))).toBe(true)
  })

  it("maxKeyBytes leaves room for the 9-byte suffix in DynamoDB's 1024-byte sort key", () => {
    expect(Key.maxKeyBytes).toBe(1015)
    expect(Key.maxKeyBytes + Key.sortKeySuffixBytes).toBe(Key.sortKeyLimitBytes)
  })

  it("accepts exactly maxKeyBytes UTF-8 bytes and rejects one byte more (ASCII and multi-byte)", () => {
    const exact = [
      "a".repeat(1015),
      "é".repeat(507) + "a", // 2-byte chars
      "€".repeat(338) + "a", // 3-byte chars
      "😀".repeat(253) + "abc", // 4-byte chars (2 UTF-16 units each)
      "a" + "😀".repeat(253) + "bc"
    ]
    for (const key of exact) {
      expect(utf8(key).length).toBe(Key.maxKeyBytes)
      expect(Result.isSuccess(Key.validate(key))).toBe(true)
    }
    const tooLong = [
      "a".repeat(1016),
      "é".repeat(508), // 1016 bytes but only 508 UTF-16 units
      "€".repeat(338) + "ab",
      "😀".repeat(254), // 1016 bytes, 508 UTF-16 units
      "a".repeat(1013) + "€" // the last char crosses the limit
    ]
    for (const key of tooLong) {
      expect(utf8(key).length).toBeGreaterThan(Key.maxKeyBytes)
      const error = failureOf(Key.validate(key))
      expect(error.field).toBe("key")
      expect(error.reason).toContain(`at most ${Key.maxKeyBytes}`)
      expect(error.reason).toContain(`has ${utf8(key).length}`)
    }
  })

  it("agrees with a byte-count oracle on random keys (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: char, maxLength: 400 }), (key) => {
        const ok = key.length > 0 && !key.includes("\u0000") && utf8(key).length <= Key.maxKeyBytes
        expect(Result.isSuccess(Key.validate(key))).toBe(ok)
      }),
      params
    )
  })
})

describe("Key.byteLength / writeBytes", () => {
  it("count and write exactly the bytes toBytes makes (property)", () => {
    fc.assert(
      fc.property(anyString(), (s) => {
        expect(Key.byteLength(s)).toBe(utf8(s).length)
        const target = new Uint8Array(Key.byteLength(s) + 2)
        Key.writeBytes(s, target)
        expect(Buffer.from(target.subarray(0, Key.byteLength(s))).equals(utf8(s))).toBe(true)
        expect([...target.subarray(Key.byteLength(s))].every((b) => b === 0)).toBe(true)
      }),
      params
    )
  })
})

describe("Key.toBytes / fromBytes", () => {
  it("round-trips well-formed strings through UTF-8 (property)", () => {
    fc.assert(
      fc.property(anyString(), (s) => {
        const bytes = Key.toBytes(s)
        expect(Buffer.from(bytes).equals(utf8(s))).toBe(true)
        expect(Key.fromBytes(bytes)).toBe(s)
      }),
      params
    )
  })

  it("fromBytes refuses invalid UTF-8 instead of inventing U+FFFD", () => {
    expect(() => Key.fromBytes(new Uint8Array([0x61, 0xff]))).toThrow()
    expect(() => Key.fromBytes(new Uint8Array([0xed, 0xa0, 0x80]))).toThrow() // an encoded surrogate
  })
})

describe("Key.join", () => {
  it("builds hierarchical keys with one leading separator", () => {
    expect(Key.join("users", "alice")).toBe("/users/alice")
    expect(Key.join("users")).toBe("/users")
    expect(Key.join()).toBe("/")
  })

  it("strips leading and trailing separators of each part but keeps inner ones", () => {
    expect(Key.join("/users/", "/alice/")).toBe("/users/alice")
    expect(Key.join("//a//", "//b//")).toBe("/a/b")
    expect(Key.join("a/b", "c/d")).toBe("/a/b/c/d")
    expect(Key.join("ключ", "😀")).toBe("/ключ/😀")
  })

  it("always starts with the separator and produces a valid key for valid parts (property)", () => {
    const part = fc.string({ unit: char, minLength: 1, maxLength: 8 }).filter((s) =>
      !s.includes("\u0000") && /[^/]/.test(s)
    )
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 5 }), (parts) => {
        const key = Key.join(...parts)
        expect(key.startsWith(Key.separator)).toBe(true)
        expect(key.startsWith("//")).toBe(false)
        expect(key.endsWith("/")).toBe(false)
        expect(Result.isSuccess(Key.validate(key))).toBe(true)
      }),
      params
    )
  })
})

describe("Key.rangeEnd", () => {
  it("increments the last ASCII character", () => {
    expect(Key.rangeEnd("abc")).toBe("abd")
    expect(Key.rangeEnd("/users/")).toBe("/users0")
    expect(Key.rangeEnd("a")).toBe("b")
    expect(Key.rangeEnd("\u007f")).toBe("\u0080") // crosses from 1 to 2 UTF-8 bytes
  })

  it("increments a multi-byte last code point as a whole", () => {
    expect(Key.rangeEnd("/é")).toBe("/ê")
    expect(Key.rangeEnd("x€")).toBe("x\u20ad")
    expect(Key.rangeEnd("\u07ff")).toBe("\u0800") // 2 → 3 bytes
    expect(Key.rangeEnd("a😀")).toBe("a😁") // astral: not just its low surrogate
    expect(Key.rangeEnd("\uffff")).toBe("\u{10000}") // BMP → astral
  })

  it("skips the surrogate gap: U+D7FF is followed by U+E000", () => {
    const end = Key.rangeEnd("/k\ud7ff")
    expect(end).toBe("/k\ue000")
    expect(end.isWellFormed()).toBe(true)
    expect(Key.compare("/k\ud7ff", end)).toBe(-1)
  })

  it("carries over U+10FFFF to the previous code point", () => {
    expect(Key.rangeEnd("a\u{10ffff}")).toBe("b")
    expect(Key.rangeEnd("ab\u{10ffff}\u{10ffff}")).toBe("ac")
    expect(Key.rangeEnd("")).toBe(Key.maxKey)
  })

  // Regression (found in src/domain/Key.ts:71): a prefix made only of U+10FFFF is returned unchanged, but keys such as
  // "\u{10FFFF}a" start with it and sort after it, so a range [p, rangeEnd(p)] misses them; the comment
  // "nothing sorts after them that is a prefix match" is false.
  it("rangeEnd of a prefix of only U+10FFFF still sorts after every key with that prefix", () => {
    for (const prefix of ["\u{10ffff}", "\u{10ffff}\u{10ffff}"]) {
      const end = Key.rangeEnd(prefix)
      for (const suffix of ["a", "\u{10ffff}", ""]) {
        expect(Key.compare(prefix + suffix, end)).toBe(-1)
      }
    }
  })

  it("orders p <= p+s < rangeEnd(p) for every non-empty prefix p (property)", () => {
    fc.assert(
      fc.property(anyString({ minLength: 1 }), anyString(), (p, s) => {
        // The all-U+10FFFF prefix has no string range end; covered by the test above.
        fc.pre(!/^\u{10ffff}+$/u.test(p))
        const end = Key.rangeEnd(p)
        expect(end.isWellFormed()).toBe(true)
        expect(Key.compare(p, p + s)).toBeLessThanOrEqual(0)
        expect(Key.compare(p + s, end)).toBe(-1)
        expect(Buffer.compare(utf8(p + s), utf8(end))).toBe(-1)
      }),
      params
    )
  })

  it("is the least string after all keys with the prefix: nothing without the prefix sorts between (property)", () => {
    fc.assert(
      fc.property(anyString({ minLength: 1 }), anyString({ minLength: 1 }), (p, k) => {
        fc.pre(!/^\u{10ffff}+$/u.test(p))
        const end = Key.rangeEnd(p)
        if (Key.compare(p, k) <= 0 && Key.compare(k, end) < 0) expect(k.startsWith(p)).toBe(true)
      }),
      params
    )
  })
})

describe("Key.compare", () => {
  it("orders by UTF-8 bytes, not UTF-16 code units", () => {
    // U+FF61 is 0xFF61 in UTF-16 but U+1F600 starts with 0xD83D, so `<` says 😀 < ｡; UTF-8 says the opposite.
    expect("😀" < "\uff61").toBe(true)
    expect(Key.compare("\uff61", "😀")).toBe(-1)
    expect(Key.compare("😀", "\uff61")).toBe(1)
    expect(Key.compare("\ue000", "\u{10000}")).toBe(-1)
    expect(Key.compare("a", "a")).toBe(0)
    expect(Key.compare("a", "ab")).toBe(-1)
    expect(Key.compare("ab", "a")).toBe(1)
    expect(Key.compare("", "")).toBe(0)
    expect(Key.compare("", "a")).toBe(-1)
  })

  it("agrees with Buffer.compare of the UTF-8 bytes (property, incl. astral chars)", () => {
    fc.assert(
      fc.property(anyString(), anyString(), (a, b) => {
        expect(Key.compare(a, b)).toBe(sign(Buffer.compare(utf8(a), utf8(b))))
      }),
      params
    )
  })

  it("agrees with Buffer.compare on strings that share a prefix (property)", () => {
    fc.assert(
      fc.property(anyString(), anyString(), anyString(), (p, a, b) => {
        expect(Key.compare(p + a, p + b)).toBe(sign(Buffer.compare(utf8(p + a), utf8(p + b))))
        expect(Key.compare(p + a, p + b)).toBe(-Key.compare(p + b, p + a) || 0)
      }),
      params
    )
  })

  it("agrees with code-point order (property)", () => {
    const codePointCompare = (a: string, b: string): -1 | 0 | 1 => {
      const x = Array.from(a, (c) => c.codePointAt(0)!)
      const y = Array.from(b, (c) => c.codePointAt(0)!)
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1
      return sign(x.length - y.length)
    }
    fc.assert(
      fc.property(anyString(), anyString(), (a, b) => {
        expect(Key.compare(a, b)).toBe(codePointCompare(a, b))
      }),
      params
    )
  })
})

describe("Key.hasPrefix", () => {
  it("is startsWith", () => {
    expect(Key.hasPrefix("/users/alice", "/users/")).toBe(true)
    expect(Key.hasPrefix("/users", "/users/")).toBe(false)
    expect(Key.hasPrefix("/x", "")).toBe(true)
  })
})
