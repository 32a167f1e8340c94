/**
 * "Nothing comes back": random operations on a few keys from both store
 * instances, with the clock moving; after every step, reads from both
 * instances must never return a value or a (key, revision) that has expired,
 * been deleted or been overwritten. Every written value is unique, so a
 * returned value names the write it came from.
 *
 * What is dead is learnt from the real results only (a ledger of what each
 * successful write left behind, and the clock), not from a model of the rules.
 */
import type { Effect, Result } from "effect"
import fc from "fast-check"
import { expect } from "vitest"
import { Action, Condition } from "../../../src/domain/AtomicWrite.ts"
import type { Item } from "../../../src/domain/Item.ts"
import type { PropertyEnvironment, Run, StoreService } from "../model/harness.ts"

const keys = ["/r/a", "/r/a/b", "/r/b"] as const
const keyArb = fc.constantFrom(...keys)
const via = fc.constantFrom(0, 1)
const expiryArb = fc.option(fc.integer({ min: -2, max: 30 }), { nil: undefined, freq: 3 })

type Step =
  | {
    readonly op: "put" | "create" | "update"
    readonly key: string
    readonly expiry: number | undefined
    readonly by: number
  }
  | { readonly op: "delete"; readonly key: string; readonly by: number }
  | { readonly op: "deleteRange"; readonly by: number }
  | {
    readonly op: "keepAlive"
    readonly key: string
    readonly lease: "current" | "empty" | "dead"
    readonly expiry: number | undefined
    readonly by: number
  }
  | { readonly op: "conditionalUpdate"; readonly key: string; readonly stale: boolean; readonly by: number }
  | { readonly op: "atomicWrite"; readonly put: string; readonly remove: string | undefined; readonly by: number }
  | { readonly op: "advance"; readonly millis: number }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constantFrom("put", "create", "update"), key: keyArb, expiry: expiryArb, by: via })
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("delete"), key: keyArb, by: via }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("deleteRange"), by: via }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("keepAlive"),
      key: keyArb,
      lease: fc.constantFrom("current", "empty", "dead"),
      expiry: expiryArb,
      by: via
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("conditionalUpdate"), key: keyArb, stale: fc.boolean(), by: via })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("atomicWrite"),
      put: keyArb,
      remove: fc.option(keyArb, { nil: undefined }),
      by: via
    })
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("advance"), millis: fc.integer({ min: 1, max: 25 }) }) }
)

interface Entry {
  readonly value: string
  readonly revision: string
  readonly expires: number | undefined
}

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (value: Uint8Array) => new TextDecoder().decode(value)

/** The property over a sequence of steps; each run on a fresh namespace of the environment. */
export const resurrectionProperty = (environment: PropertyEnvironment) =>
  fc.asyncProperty(fc.array(stepArb, { minLength: 4, maxLength: 24 }), async (steps) => {
    const run = await environment.openRun()
    try {
      await checkSteps(run, steps)
    } finally {
      await run.close()
    }
  })

const checkSteps = async (run: Run, steps: ReadonlyArray<Step>) => {
  const ledger = new Map<string, Entry>()
  const deadValues = new Set<string>()
  const deadRevisions = new Set<string>() // `${key} ${revision}`: an atomic write shares a revision across keys
  let counter = 0
  const fresh = () => `v${counter++}`

  const bury = (key: string) => {
    const entry = ledger.get(key)
    if (entry === undefined) return
    deadValues.add(entry.value)
    deadRevisions.add(`${key} ${entry.revision}`)
    ledger.delete(key)
  }
  const buryExpired = (now: number) => {
    for (const [key, entry] of ledger) if (entry.expires !== undefined && entry.expires <= now) bury(key)
  }
  const wrote = (key: string, value: string, revision: string, expires: number | undefined) => {
    bury(key)
    ledger.set(key, { value, revision, expires })
  }
  const exec = <A, E>(effect: Effect.Effect<A, E>): Promise<Result.Result<A, E>> => run.exec(effect)

  const expectAlive = (item: Item, where: string) => {
    expect(deadValues.has(text(item.value)), `${where}: ${item.key} returned the dead value ${text(item.value)}`).toBe(
      false
    )
    expect(
      deadRevisions.has(`${item.key} ${item.revision}`),
      `${where}: ${item.key} returned the dead revision ${item.revision}`
    ).toBe(false)
  }

  for (const [index, step] of steps.entries()) {
    const now = await run.now()
    buryExpired(now)
    const where = `step ${index} ${JSON.stringify(step)}`
    if (step.op === "advance") {
      await run.advance(step.millis)
      buryExpired(now + step.millis)
    } else {
      const store: StoreService = run.stores[step.by]!
      const at = (expiry: number | undefined) => (expiry === undefined ? undefined : now + expiry)
      switch (step.op) {
        case "put":
        case "create":
        case "update": {
          const value = fresh()
          const expires = at(step.expiry)
          const result = await exec(
            store[step.op]({ key: step.key, value: bytes(value), expires }) as Effect.Effect<
              { revision: string },
              unknown
            >
          )
          if (result._tag === "Success") wrote(step.key, value, result.success.revision, expires)
          break
        }
        case "delete": {
          if ((await exec(store.delete(step.key)))._tag === "Success") bury(step.key)
          break
        }
        case "deleteRange": {
          const result = await exec(store.deleteRange("/r/", "/r0"))
          expect(result._tag === "Success" ? result.success : result, `${where}: deleteRange count`).toBe(ledger.size)
          for (const key of keys) bury(key)
          break
        }
        case "keepAlive": {
          const current = ledger.get(step.key)
          const dead = [...deadRevisions].filter((entry) => entry.startsWith(`${step.key} `)).at(-1)?.split(" ")[1]
          const revision = step.lease === "empty"
            ? ""
            : step.lease === "current"
            ? current?.revision ?? ""
            : dead ?? "none"
          const expires = at(step.expiry)
          const result = await exec(store.keepAlive({ key: step.key, revision }, expires))
          if (result._tag === "Success") {
            expect(current, `${where}: keepAlive succeeded on an item that is gone`).toBeDefined()
            expectAlive({ key: step.key, value: bytes(current!.value), revision: result.success.revision }, where)
            ledger.set(step.key, { ...current!, expires })
          }
          break
        }
        case "conditionalUpdate": {
          const current = ledger.get(step.key)
          const dead = [...deadRevisions].filter((entry) => entry.startsWith(`${step.key} `)).at(-1)?.split(" ")[1]
          const revision = step.stale ? dead ?? "none" : current?.revision ?? "none"
          const value = fresh()
          const result = await exec(store.conditionalUpdate({ key: step.key, value: bytes(value), revision }))
          if (result._tag === "Success") {
            expect(step.stale ? "stale revision accepted" : "ok", where).toBe("ok")
            wrote(step.key, value, result.success.revision, undefined)
          }
          break
        }
        case "atomicWrite": {
          const value = fresh()
          const remove = step.remove === step.put ? undefined : step.remove
          const actions = [
            { key: step.put, condition: Condition.whatever, action: Action.put(bytes(value)) },
            ...(remove === undefined ? [] : [{ key: remove, condition: Condition.whatever, action: Action.delete }])
          ]
          const result = await exec(store.atomicWrite(actions))
          if (result._tag === "Success") {
            wrote(step.put, value, result.success, undefined)
            if (remove !== undefined) bury(remove)
          }
          break
        }
      }
    }
    // after every step, both instances: no read returns anything dead
    buryExpired(await run.now())
    for (const store of run.stores) {
      const range = await exec(store.getRange("/r/", "/r0"))
      if (range._tag === "Success") { for (const item of range.success) expectAlive(item, `${where}: getRange`) }
      for (const key of keys) {
        const got = await exec(store.get(key))
        if (got._tag === "Success") expectAlive(got.success, `${where}: get(${key})`)
      }
    }
  }
}
