import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import type { Command } from "../../src/domain/Command.ts"
import { keyOf } from "../../src/domain/Command.ts"
import { decide } from "../../src/domain/Decide.ts"
import type { Decision } from "../../src/domain/Decide.ts"
import { AlreadyExists, CompareFailed, IncorrectRevision, isCompareFailure, NotFound } from "../../src/domain/Errors.ts"
import type { Event, EventDraft, EventOp } from "../../src/domain/Event.ts"
import { eventOps, isDueForExpiry, itemRevision, liveItem } from "../../src/domain/Event.ts"
import type { ItemInput } from "../../src/domain/Item.ts"
import * as KeyState from "../../src/domain/KeyState.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261125), numRuns: Number(process.env.FC_RUNS ?? 200) }

const key = "/users/alice"
const now = 1_750_000_000_000
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const liveValue = bytes("live value")
const newValue = bytes("new value")

const event = (fields: Partial<Event> & { readonly op: EventOp; readonly seq: number }): Event => ({
  key,
  revision: `rev-${fields.seq}`,
  timestamp: now - 10_000,
  ...fields
})
const stateOf = (latest: Event): KeyState.KeyState => KeyState.fromLatest(key, latest)

/** The states of a key this suite decides every command against. */
interface Scenario {
  readonly name: string
  readonly state: KeyState.KeyState
  /** The live item's value and revision, if there is one at `now`. */
  readonly live: { readonly value: Uint8Array; readonly revision: string } | undefined
  /** Whether deciding must first record an `expire`. */
  readonly due: boolean
}

const scenarios: ReadonlyArray<Scenario> = [
  { name: "never written", state: KeyState.empty(key), live: undefined, due: false },
  {
    name: "live put",
    state: stateOf(event({ op: "put", seq: 3, value: liveValue })),
    live: { value: liveValue, revision: "rev-3" },
    due: false
  },
  {
    name: "live put with a future expiry",
    state: stateOf(event({ op: "put", seq: 4, value: liveValue, expires: now + 1 })),
    live: { value: liveValue, revision: "rev-4" },
    due: false
  },
  {
    name: "put that expired in the past",
    state: stateOf(event({ op: "put", seq: 5, value: liveValue, expires: now - 60_000 })),
    live: undefined,
    due: true
  },
  {
    name: "put that expires exactly now",
    state: stateOf(event({ op: "put", seq: 5, value: liveValue, expires: now })),
    live: undefined,
    due: true
  },
  { name: "deleted", state: stateOf(event({ op: "delete", seq: 6 })), live: undefined, due: false },
  { name: "expire event recorded", state: stateOf(event({ op: "expire", seq: 7 })), live: undefined, due: false },
  {
    name: "keep-alive",
    state: stateOf(
      event({ op: "keep-alive", seq: 8, value: liveValue, expires: now + 60_000, valueRevision: "rev-2" })
    ),
    live: { value: liveValue, revision: "rev-2" },
    due: false
  },
  {
    name: "keep-alive that expired",
    state: stateOf(event({ op: "keep-alive", seq: 9, value: liveValue, expires: now - 1, valueRevision: "rev-2" })),
    live: undefined,
    due: true
  }
]

const item = (expires?: number): ItemInput => ({ key, value: newValue, expires })
const putDraft = (expires?: number): EventDraft => ({ op: "put", value: newValue, expires })

/** What a command must end in: its own draft, or a failure (after the `expire`, if any). */
type Outcome = { readonly draft: EventDraft } | { readonly failure: object }

interface Case {
  readonly name: string
  readonly command: (s: Scenario) => Command
  readonly expected: (s: Scenario) => Outcome | "expire-only"
}

const liveRevisionOr = (s: Scenario, fallback: string) => s.live?.revision ?? fallback

const cases: ReadonlyArray<Case> = [
  {
    name: "Create",
    command: () => ({ _tag: "Create", item: item(now + 5_000) }),
    expected: (s) => (s.live ? { failure: new AlreadyExists({ key }) } : { draft: putDraft(now + 5_000) })
  },
  {
    name: "Put",
    command: () => ({ _tag: "Put", item: item() }),
    expected: () => ({ draft: putDraft() })
  },
  {
    name: "Update",
    command: () => ({ _tag: "Update", item: item() }),
    expected: (s) => (s.live ? { draft: putDraft() } : { failure: new NotFound({ key }) })
  },
  {
    name: "CompareAndSwap with the live value",
    command: () => ({ _tag: "CompareAndSwap", expected: bytes("live value"), item: item() }),
    expected: (s) => (s.live ? { draft: putDraft() } : { failure: new CompareFailed({ key, reason: "absent" }) })
  },
  {
    name: "CompareAndSwap with another value",
    command: () => ({ _tag: "CompareAndSwap", expected: bytes("live valuE"), item: item() }),
    expected: (s) => ({ failure: new CompareFailed({ key, reason: s.live ? "value-mismatch" : "absent" }) })
  },
  {
    name: "CompareAndSwap with a prefix of the live value",
    command: () => ({ _tag: "CompareAndSwap", expected: bytes("live"), item: item() }),
    expected: (s) => ({ failure: new CompareFailed({ key, reason: s.live ? "value-mismatch" : "absent" }) })
  },
  {
    name: "ConditionalUpdate with the live revision",
    command: (s) => ({ _tag: "ConditionalUpdate", item: item(), revision: liveRevisionOr(s, "rev-3") }),
    expected: (s) => (s.live ? { draft: putDraft() } : { failure: new IncorrectRevision({ key, expected: "rev-3" }) })
  },
  {
    name: "ConditionalUpdate with the latest event's own revision",
    // For a keep-alive state the event's revision is not the item's revision.
    command: (s) => ({ _tag: "ConditionalUpdate", item: item(), revision: s.state.latest?.revision ?? "rev-x" }),
    expected: (s) => {
      const revision = s.state.latest?.revision ?? "rev-x"
      return s.live && s.live.revision === revision
        ? { draft: putDraft() }
        : { failure: new IncorrectRevision({ key, expected: revision }) }
    }
  },
  {
    name: "ConditionalUpdate with a wrong revision",
    command: () => ({ _tag: "ConditionalUpdate", item: item(), revision: "rev-wrong" }),
    expected: () => ({ failure: new IncorrectRevision({ key, expected: "rev-wrong" }) })
  },
  {
    name: "ConditionalUpdate with an empty revision",
    command: () => ({ _tag: "ConditionalUpdate", item: item(), revision: "" }),
    expected: () => ({ failure: new IncorrectRevision({ key, expected: "" }) })
  },
  {
    name: "ConditionalDelete with the live revision",
    command: (s) => ({ _tag: "ConditionalDelete", key, revision: liveRevisionOr(s, "rev-3") }),
    expected: (
      s
    ) => (s.live ? { draft: { op: "delete" } } : { failure: new IncorrectRevision({ key, expected: "rev-3" }) })
  },
  {
    name: "ConditionalDelete with a wrong revision",
    command: () => ({ _tag: "ConditionalDelete", key, revision: "rev-wrong" }),
    expected: () => ({ failure: new IncorrectRevision({ key, expected: "rev-wrong" }) })
  },
  {
    name: "ConditionalDelete with an empty revision",
    command: () => ({ _tag: "ConditionalDelete", key, revision: "" }),
    expected: () => ({ failure: new IncorrectRevision({ key, expected: "" }) })
  },
  {
    name: "Delete",
    command: () => ({ _tag: "Delete", key }),
    expected: (s) => (s.live ? { draft: { op: "delete" } } : { failure: new NotFound({ key }) })
  },
  {
    name: "KeepAlive with no revision",
    command: () => ({ _tag: "KeepAlive", key, revision: "", expires: now + 90_000 }),
    expected: (s) =>
      s.live
        ? { draft: { op: "keep-alive", value: s.live.value, expires: now + 90_000, valueRevision: s.live.revision } }
        : { failure: new NotFound({ key }) }
  },
  {
    name: "KeepAlive with the live revision",
    command: (s) => ({ _tag: "KeepAlive", key, revision: liveRevisionOr(s, "rev-3"), expires: undefined }),
    expected: (s) =>
      s.live
        ? { draft: { op: "keep-alive", value: s.live.value, expires: undefined, valueRevision: s.live.revision } }
        : { failure: new NotFound({ key }) }
  },
  {
    name: "KeepAlive with a wrong revision",
    command: () => ({ _tag: "KeepAlive", key, revision: "rev-wrong", expires: now + 90_000 }),
    // NotFound wins over IncorrectRevision when nothing is live.
    expected: (s) => ({
      failure: s.live ? new IncorrectRevision({ key, expected: "rev-wrong" }) : new NotFound({ key })
    })
  },
  {
    name: "Expire",
    command: () => ({ _tag: "Expire", key }),
    expected: () => "expire-only"
  }
]

const checkOutcome = (decision: Decision, s: Scenario, expected: Outcome | "expire-only") => {
  const expiry: ReadonlyArray<EventDraft> = s.due ? [{ op: "expire" }] : []
  if (expected === "expire-only") {
    expect(decision.failure).toBeUndefined()
    expect(decision.events).toEqual(expiry)
  } else if ("draft" in expected) {
    expect(decision.failure).toBeUndefined()
    expect(decision.events).toEqual([...expiry, expected.draft])
  } else {
    expect(decision.events).toEqual(expiry)
    expect(decision.failure).toBeDefined()
    expect(decision.failure).toBeInstanceOf(expected.failure.constructor)
    expect({ ...decision.failure }).toEqual({ ...expected.failure })
  }
}

describe("decide: every command against every state", () => {
  for (const s of scenarios) {
    describe(s.name, () => {
      for (const c of cases) {
        it(c.name, () => {
          const command = c.command(s)
          expect(keyOf(command)).toBe(key)
          checkOutcome(decide(command, s.state, now), s, c.expected(s))
        })
      }
    })
  }
})

describe("decide: errors", () => {
  const live = scenarios[1]!.state
  const absent = KeyState.empty(key)

  it("AlreadyExists names the key", () => {
    const failure = decide({ _tag: "Create", item: item() }, live, now).failure
    expect(failure).toBeInstanceOf(AlreadyExists)
    expect(failure?._tag).toBe("AlreadyExists")
    expect(failure).toMatchObject({ key })
    expect(failure?.message).toBe(`key already exists: ${key}`)
  })

  it("NotFound names the key", () => {
    for (
      const command of [
        { _tag: "Update", item: item() },
        { _tag: "Delete", key },
        { _tag: "KeepAlive", key, revision: "", expires: undefined }
      ] satisfies ReadonlyArray<Command>
    ) {
      const failure = decide(command, absent, now).failure
      expect(failure).toBeInstanceOf(NotFound)
      expect(failure?._tag).toBe("NotFound")
      expect(failure).toMatchObject({ key })
    }
  })

  it("CompareFailed says absent or value-mismatch and is a compare failure", () => {
    const absentFailure = decide({ _tag: "CompareAndSwap", expected: liveValue, item: item() }, absent, now).failure
    expect(absentFailure).toBeInstanceOf(CompareFailed)
    expect(absentFailure).toMatchObject({ _tag: "CompareFailed", key, reason: "absent" })
    const mismatch = decide({ _tag: "CompareAndSwap", expected: new Uint8Array(0), item: item() }, live, now).failure
    expect(mismatch).toMatchObject({ _tag: "CompareFailed", key, reason: "value-mismatch" })
    expect(isCompareFailure(mismatch!)).toBe(true)
  })

  it("IncorrectRevision carries the expected revision, also when it is empty", () => {
    for (const revision of ["", "rev-wrong"]) {
      for (
        const command of [
          { _tag: "ConditionalUpdate", item: item(), revision },
          { _tag: "ConditionalDelete", key, revision }
        ] satisfies ReadonlyArray<Command>
      ) {
        for (const state of [live, absent]) {
          const failure = decide(command, state, now).failure
          expect(failure).toBeInstanceOf(IncorrectRevision)
          expect(failure).toMatchObject({ _tag: "IncorrectRevision", key, expected: revision })
          expect(isCompareFailure(failure!)).toBe(true)
        }
      }
    }
    expect(new IncorrectRevision({ key, expected: "" }).message).toContain("<empty>")
  })

  it("an empty revision never matches, even a live item whose revision is empty", () => {
    const oddState = stateOf(event({ op: "put", seq: 1, value: liveValue, revision: "" }))
    expect(decide({ _tag: "ConditionalUpdate", item: item(), revision: "" }, oddState, now).failure?._tag).toBe(
      "IncorrectRevision"
    )
    expect(decide({ _tag: "ConditionalDelete", key, revision: "" }, oddState, now).failure?._tag).toBe(
      "IncorrectRevision"
    )
  })
})

describe("decide: keep-alive and expiry", () => {
  it("keep-alive of a keep-alive keeps the original value revision, not the keep-alive's own", () => {
    const state = scenarios.find((s) => s.name === "keep-alive")!.state
    expect(state.latest?.revision).toBe("rev-8")
    const decision = decide({ _tag: "KeepAlive", key, revision: "rev-2", expires: now + 1 }, state, now)
    expect(decision.failure).toBeUndefined()
    expect(decision.events).toEqual([{ op: "keep-alive", value: liveValue, expires: now + 1, valueRevision: "rev-2" }])
    // The keep-alive event's own revision is not the item's revision.
    const wrong = decide({ _tag: "KeepAlive", key, revision: "rev-8", expires: now + 1 }, state, now)
    expect(wrong.failure).toMatchObject({ _tag: "IncorrectRevision", expected: "rev-8" })
    expect(wrong.events).toEqual([])
  })

  it("keep-alive carries the live value bytes and may clear the expiry", () => {
    const state = stateOf(event({ op: "put", seq: 2, value: liveValue, expires: now + 10 }))
    const decision = decide({ _tag: "KeepAlive", key, revision: "", expires: undefined }, state, now)
    expect(decision.events).toHaveLength(1)
    const [draft] = decision.events
    expect(draft?.op).toBe("keep-alive")
    expect(draft?.value).toBe(liveValue)
    expect(draft?.expires).toBeUndefined()
    expect(draft?.valueRevision).toBe("rev-2")
  })

  it("Expire produces exactly one expire draft, and only when the item is due", () => {
    const expirable = (expires: number | undefined) => stateOf(event({ op: "put", seq: 2, value: liveValue, expires }))
    const expire: Command = { _tag: "Expire", key }
    expect(decide(expire, expirable(now + 1), now)).toEqual({ events: [], failure: undefined })
    expect(decide(expire, expirable(now), now)).toEqual({ events: [{ op: "expire" }], failure: undefined })
    expect(decide(expire, expirable(now - 1), now)).toEqual({ events: [{ op: "expire" }], failure: undefined })
    expect(decide(expire, expirable(undefined), now)).toEqual({ events: [], failure: undefined })
    expect(decide(expire, KeyState.empty(key), now)).toEqual({ events: [], failure: undefined })
    expect(decide(expire, stateOf(event({ op: "expire", seq: 3 })), now)).toEqual({ events: [], failure: undefined })
    expect(decide(expire, stateOf(event({ op: "delete", seq: 3, expires: now - 1 })), now)).toEqual({
      events: [],
      failure: undefined
    })
  })

  it("the expiry boundary is inclusive: an item expiring at now is gone at now", () => {
    const state = stateOf(event({ op: "put", seq: 2, value: liveValue, expires: now }))
    expect(decide({ _tag: "Update", item: item() }, state, now - 1).events).toEqual([putDraft()])
    expect(decide({ _tag: "Update", item: item() }, state, now)).toEqual({
      events: [{ op: "expire" }],
      failure: new NotFound({ key })
    })
    expect(decide({ _tag: "Create", item: item() }, state, now).events).toEqual([{ op: "expire" }, putDraft()])
  })
})

describe("KeyState.evolve", () => {
  const e = (seq: number, op: EventOp = "put") => event({ op, seq, value: op === "put" ? liveValue : undefined })

  it("applies newer events and ignores older and equal seqs", () => {
    const s5 = KeyState.evolve(KeyState.empty(key), e(5))
    expect(s5).toEqual({ key, seq: 5, latest: e(5) })
    expect(KeyState.evolve(s5, e(3))).toBe(s5)
    expect(KeyState.evolve(s5, e(5, "delete"))).toBe(s5)
    expect(KeyState.evolve(s5, e(6, "delete"))).toEqual({ key, seq: 6, latest: e(6, "delete") })
  })

  it("keeps the state's key", () => {
    const s = KeyState.evolve(KeyState.empty(key), { ...e(1), key: "/other" })
    expect(s.key).toBe(key)
  })

  it("fromLatest of nothing is empty", () => {
    expect(KeyState.fromLatest(key, undefined)).toEqual(KeyState.empty(key))
    expect(KeyState.empty(key)).toEqual({ key, seq: 0, latest: undefined })
    expect(KeyState.fromLatest(key, e(4))).toEqual({ key, seq: 4, latest: e(4) })
  })

  it("folding events in any order, with replays, ends at the highest seq (property)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(11), { maxLength: 6 }),
        (seqs, replays) => {
          const events = [...seqs, ...replays.map((i) => seqs[i % seqs.length]!)].map((n) => e(n))
          const final = events.reduce(KeyState.evolve, KeyState.empty(key))
          const max = Math.max(...seqs)
          expect(final.seq).toBe(max)
          expect(final.latest?.seq).toBe(max)
        }
      ),
      params
    )
  })
})

describe("decide: properties", () => {
  const value = fc.constantFrom(bytes("a"), bytes("b"), new Uint8Array(0))
  const revision = fc.constantFrom("", "r1", "r2", "r3")
  const expires = fc.option(fc.integer({ min: now - 3, max: now + 3 }), { nil: undefined })
  const eventArb: fc.Arbitrary<Event> = fc.record({
    key: fc.constant(key),
    seq: fc.integer({ min: 1, max: 100 }),
    revision: revision.filter((r) => r !== ""),
    op: fc.constantFrom(...eventOps),
    value: fc.option(value, { nil: undefined }),
    expires,
    timestamp: fc.constant(now - 100),
    valueRevision: fc.option(revision.filter((r) => r !== ""), { nil: undefined })
  })
  const stateArb = fc.option(eventArb, { nil: undefined }).map((latest) => KeyState.fromLatest(key, latest))
  const itemArb: fc.Arbitrary<ItemInput> = fc.record({ key: fc.constant(key), value, expires })
  const commandArb: fc.Arbitrary<Command> = fc.oneof(
    itemArb.map((item): Command => ({ _tag: "Create", item })),
    itemArb.map((item): Command => ({ _tag: "Put", item })),
    itemArb.map((item): Command => ({ _tag: "Update", item })),
    fc.tuple(value, itemArb).map(([expected, item]): Command => ({ _tag: "CompareAndSwap", expected, item })),
    fc.tuple(itemArb, revision).map(([item, revision]): Command => ({ _tag: "ConditionalUpdate", item, revision })),
    revision.map((revision): Command => ({ _tag: "ConditionalDelete", key, revision })),
    fc.constant<Command>({ _tag: "Delete", key }),
    fc.tuple(revision, expires).map(([revision, expires]): Command => ({ _tag: "KeepAlive", key, revision, expires })),
    fc.constant<Command>({ _tag: "Expire", key })
  )
  const nowArb = fc.integer({ min: now - 2, max: now + 2 })

  it("a failing command appends nothing but the discovered expiry, and nothing at all on a non-expired state", () => {
    fc.assert(
      fc.property(commandArb, stateArb, nowArb, (command, state, at) => {
        const decision = decide(command, state, at)
        const due = isDueForExpiry(state.latest, at)
        if (decision.failure !== undefined) {
          expect(decision.events).toEqual(due ? [{ op: "expire" }] : [])
          expect(["AlreadyExists", "NotFound", "CompareFailed", "IncorrectRevision"]).toContain(decision.failure._tag)
          expect(decision.failure.key).toBe(key)
        }
      }),
      params
    )
  })

  it("a successful write ends with exactly one non-expire event, preceded only by the expiry if due", () => {
    fc.assert(
      fc.property(commandArb, stateArb, nowArb, (command, state, at) => {
        const decision = decide(command, state, at)
        const due = isDueForExpiry(state.latest, at)
        const expiry = due ? [{ op: "expire" }] : []
        if (command._tag === "Expire") {
          expect(decision).toEqual({ events: expiry, failure: undefined })
          return
        }
        if (command._tag === "Put") expect(decision.failure).toBeUndefined()
        if (decision.failure !== undefined) return
        expect(decision.events.slice(0, -1)).toEqual(expiry)
        expect(decision.events.filter((d) => d.op !== "expire")).toHaveLength(1)
        const last = decision.events.at(-1)!
        if ("item" in command) {
          expect(last).toEqual({ op: "put", value: command.item.value, expires: command.item.expires })
        } else if (command._tag === "KeepAlive") {
          const live = liveItem(state.latest, at)!
          expect(last).toEqual({
            op: "keep-alive",
            value: live.value,
            expires: command.expires,
            valueRevision: live.revision
          })
        } else {
          expect(last).toEqual({ op: "delete" })
        }
      }),
      params
    )
  })

  it("success and failure agree with the live item (property)", () => {
    fc.assert(
      fc.property(commandArb, stateArb, nowArb, (command, state, at) => {
        const live = liveItem(state.latest, at)
        const succeeded = decide(command, state, at).failure === undefined
        const shouldSucceed = ((): boolean => {
          switch (command._tag) {
            case "Create":
              return live === undefined
            case "Put":
            case "Expire":
              return true
            case "Update":
            case "Delete":
              return live !== undefined
            case "CompareAndSwap":
              return live !== undefined && Buffer.from(live.value).equals(Buffer.from(command.expected))
            case "ConditionalUpdate":
            case "ConditionalDelete":
              return live !== undefined && command.revision !== "" && live.revision === command.revision
            case "KeepAlive":
              return live !== undefined && (command.revision === "" || command.revision === live.revision)
          }
        })()
        expect(succeeded).toBe(shouldSucceed)
      }),
      params
    )
  })

  it("the live item's revision is the kept value's revision for keep-alives", () => {
    fc.assert(
      fc.property(eventArb, (latest) => {
        const live = liveItem(latest, now)
        if (live) expect(live.revision).toBe(itemRevision(latest))
      }),
      params
    )
  })
})
