/**
 * What the CLI reads from its user, without a process: durations, points in the past, the end of a prefix's
 * range, watch positions, and the txn file format.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Key from "../../src/domain/Key.ts"
import * as Input from "../../src/programs/app/cli/Input.ts"
import { parseTxn } from "../../src/programs/app/cli/TxnCommand.ts"

describe("CLI input", () => {
  it.effect("durations: units, plain seconds, and refusals", () =>
    Effect.gen(function*() {
      expect(yield* Input.durationMillis("--ttl", "500ms")).toBe(500)
      expect(yield* Input.durationMillis("--ttl", "30")).toBe(30_000)
      expect(yield* Input.durationMillis("--ttl", "1.5h")).toBe(5_400_000)
      expect(yield* Input.durationMillis("--ttl", "2d")).toBe(172_800_000)
      for (const bad of ["", "0", "-5s", "soon", "5 weeks", "1e3"]) {
        const error = yield* Effect.flip(Input.durationMillis("--ttl", bad))
        expect(error).toMatchObject({ _tag: "InputInvalid", input: "--ttl" })
      }
    }))

  it("--at reads dates and epoch milliseconds as moments, anything else as a revision", () => {
    expect(Input.pastPoint("2026-01-02T03:04:05Z")).toEqual({
      _tag: "Time",
      millis: Date.parse("2026-01-02T03:04:05Z")
    })
    expect(Input.pastPoint("2026-01-02")).toEqual({ _tag: "Time", millis: Date.parse("2026-01-02") })
    expect(Input.pastPoint("1700000000000")).toEqual({ _tag: "Time", millis: 1_700_000_000_000 })
    const revision = "01a235b0-4dea-797e-a176-ca3d9c93c084"
    expect(Input.pastPoint(revision)).toEqual({ _tag: "Revision", revision })
  })

  it("a prefix's range ends within the prefix, at a valid key", () => {
    const end = Input.prefixEnd("/p/")
    expect(end.startsWith("/p/")).toBe(true)
    expect(Key.validate(end)._tag).toBe("Success")
    expect(Key.compare("/p/\u{10FFFF}zzz", end)).toBe(-1)
    expect(Key.compare("/p0", end)).toBe(1)
    expect(Key.toBytes(Input.prefixEnd("/a")).length).toBe(Key.maxKeyBytes)
  })

  it.effect("watch positions round-trip; anything else is refused", () =>
    Effect.gen(function*() {
      const position = { arn: "arn:aws:dynamodb:local:table/t/stream/x", shards: { "shard-1": "42" } }
      expect(yield* Input.decodePosition(Input.encodePosition(position))).toEqual(position)
      const error = yield* Effect.flip(Input.decodePosition("not-a-position"))
      expect(error.input).toBe("--from")
    }))

  it.effect("value arguments: literal, @@ escapes, unreadable files refused", () =>
    Effect.gen(function*() {
      expect(new TextDecoder().decode(yield* Input.value("value", "plain"))).toBe("plain")
      expect(new TextDecoder().decode(yield* Input.value("value", "@@at"))).toBe("@at")
      const error = yield* Effect.flip(Input.value("value", "@/nonexistent/file"))
      expect(error.reason).toContain("ENOENT")
      expect(yield* Effect.flip(Input.oneStdin(["-", "-"]))).toMatchObject({ _tag: "InputInvalid" })
    }))
})

describe("txn file", () => {
  it.effect("conditions and actions of every form", () =>
    Effect.gen(function*() {
      const actions = yield* parseTxn(
        [
          "- key: /a",
          "  put: text",
          "  ttl: 1m",
          "- key: /b",
          "  if: not-exists",
          "  put: { base64: QkI= }",
          "- key: /c",
          "  if: { revision: r1 }",
          "  delete: true",
          "- key: /d",
          "  if: exists"
        ].join("\n")
      )
      expect(actions.map((action) => [action.key, action.condition, action.action._tag])).toEqual([
        ["/a", { _tag: "Whatever" }, "Put"],
        ["/b", { _tag: "NotExists" }, "Put"],
        ["/c", { _tag: "Revision", revision: "r1" }, "Delete"],
        ["/d", { _tag: "Exists" }, "Nop"]
      ])
      const first = actions[0]!.action
      expect(first._tag === "Put" && first.expires! - Date.now()).toBeGreaterThan(59_000)
      const second = actions[1]!.action
      expect(second._tag === "Put" && new TextDecoder().decode(second.value)).toBe("BB")
    }))

  it.effect("JSON is accepted too", () =>
    Effect.gen(function*() {
      const actions = yield* parseTxn("[{\"key\":\"/j\",\"if\":\"exists\",\"put\":\"v\"}]")
      expect(actions).toHaveLength(1)
    }))

  it.effect("every malformed file is refused naming the entry and the field", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[string, string]> = [
        ["[]", "txn file"],
        ["key: /not-a-list", "txn file"],
        ["- [1, 2]", "entry 1"],
        ["- put: x", "entry 1.key"],
        ["- key: /a\n  put: x\n  delete: true", "entry 1"],
        ["- key: /a\n  delete: yes please", "entry 1.delete"],
        ["- key: /a\n  if: maybe", "entry 1.if"],
        ["- key: /a\n  put: 5", "entry 1.put"],
        ["- key: /a\n  ttl: 1m", "entry 1.ttl"],
        ["- key: /a\n  put: x\n  ttl: never", "entry 1.ttl"],
        ["- key: /a\n  pu: x", "entry 1"],
        ["- key: /a\n  put: [unclosed", "txn file"]
      ]
      for (const [text, input] of cases) {
        const error = yield* Effect.flip(parseTxn(text))
        expect({ text, input: error.input }).toEqual({ text, input })
      }
    }))
})

describe("CLI exit codes", () => {
  it("each kind of failure has its code; anything unknown is 1", async () => {
    const { exitCodeOf, failureJson } = await import("../../src/programs/app/cli/Output.ts")
    const Errors = await import("../../src/domain/Errors.ts")
    expect(exitCodeOf(new Errors.NotFound({ key: "/k" }))).toBe(3)
    expect(exitCodeOf(new Errors.AlreadyExists({ key: "/k" }))).toBe(4)
    expect(exitCodeOf(new Errors.BadParameter({ field: "key", reason: "empty" }))).toBe(2)
    expect(exitCodeOf(new Errors.StorageFailure({ operation: "GetItem", reason: "down" }))).toBe(5)
    expect(exitCodeOf(new Input.InputInvalid({ input: "--ttl", reason: "bad" }))).toBe(2)
    expect(exitCodeOf(new Error("boom"))).toBe(1)
    expect(exitCodeOf(undefined)).toBe(1)
    // The operational commands' failures; a restore refusal's code depends on its kind.
    const { RestoreRefused } = await import("../../src/programs/ops/Restore.ts")
    const { DoctorFailed } = await import("../../src/programs/app/cli/OpsCommands.ts")
    const refused = (kind: "table-missing" | "not-a-store-table" | "not-empty" | "layout" | "large-values") =>
      exitCodeOf(new RestoreRefused({ table: "t", kind, reason: "r" }))
    expect([refused("table-missing"), refused("not-a-store-table"), refused("not-empty")]).toEqual([6, 2, 4])
    // Into a namespace migrating (or recorded with another layout): a condition, as a namespace holding data is.
    expect([refused("layout"), refused("large-values")]).toEqual([4, 2])
    expect(exitCodeOf(new DoctorFailed({ failed: ["stream"] }))).toBe(7)
    expect(failureJson(new Errors.NotFound({ key: "/k" }))).toEqual({
      error: "NotFound",
      message: "NotFound: key not found: /k",
      exitCode: 3
    })
  })
})
