/**
 * The fair-share rules of shard leases, first case by case, then as properties
 * of a simulated group of workers (joining, crashing, stopping gracefully,
 * one that never takes anything) over shards that appear and finish: the
 * simulation holds leases the way ProjectionLeases does (conditional take,
 * fenced renew and release) and decides only through LeaseBalance.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as LeaseBalance from "../../src/domain/LeaseBalance.ts"
import type { AcquireInput, Lease, Memory } from "../../src/domain/LeaseBalance.ts"

const params = { seed: Number(process.env.FC_SEED ?? 20261125), numRuns: Number(process.env.FC_RUNS ?? 200) }

const now = 1_000_000
const leaseMillis = 3_000
const lease = (id: string, owner: string | undefined, expiresAt = now + leaseMillis, finished = false): Lease => ({
  id,
  owner,
  expiresAt,
  finished
})

const acquire = (overrides: Partial<AcquireInput> & { readonly shard: string }): LeaseBalance.AcquireDecision =>
  LeaseBalance.decideAcquire({
    lease: undefined,
    leases: [],
    workers: ["me"],
    me: "me",
    mine: new Set(),
    memory: LeaseBalance.emptyMemory,
    now,
    strandedMillis: leaseMillis,
    ...overrides
  })

describe("LeaseBalance rules", () => {
  it("the fair share is the ceiling of active shards over live workers", () => {
    expect(LeaseBalance.fairShare(0, 3)).toBe(0)
    expect(LeaseBalance.fairShare(1, 2)).toBe(1)
    expect(LeaseBalance.fairShare(4, 2)).toBe(2)
    expect(LeaseBalance.fairShare(5, 2)).toBe(3)
    expect(LeaseBalance.fairShare(4, 0)).toBe(4)
  })

  it("active shards are the unfinished leases, the shards held and a shard not leased yet, each once", () => {
    const leases = [lease("a", "x"), lease("b", undefined, 0), lease("c", "x", now + 1, true)]
    expect(LeaseBalance.activeShards(leases, ["a", "d"], "e")).toBe(4)
    expect(LeaseBalance.activeShards(leases, [], "a")).toBe(2)
  })

  it("live workers: unexpired announcements, holders of live leases, and always me", () => {
    const workers = LeaseBalance.liveWorkers(
      [{ owner: "b", expiresAt: now + 1 }, { owner: "gone", expiresAt: now }],
      [lease("s1", "silent"), lease("s2", "expired", now - 1), lease("s3", "done", now + 5, true)],
      "me",
      now
    )
    expect(workers).toEqual(["b", "me", "silent"])
  })

  it("a lease held live by another worker is never taken, however long this worker waited", () => {
    const memory: Memory = {
      ...LeaseBalance.emptyMemory,
      freeSince: new Map([["s", { since: now - 100 * leaseMillis, membership: LeaseBalance.membership(["me"]) }]])
    }
    expect(acquire({ shard: "s", lease: lease("s", "other"), memory })).toEqual({
      _tag: "Leave",
      reason: "heldByOther"
    })
    expect(acquire({ shard: "s", lease: lease("s", "me", now, true) })).toEqual({ _tag: "Leave", reason: "finished" })
  })

  it("a shard this worker holds is taken again (a restarted reader), whatever its share", () => {
    const leases = [lease("s", "me"), lease("t", "me")]
    expect(
      acquire({ shard: "s", lease: leases[0], leases, workers: ["a", "b", "c", "d", "me"], mine: new Set(["s", "t"]) })
    )
      .toEqual({ _tag: "Take", reason: "mine" })
  })

  it("a free shard (never leased, released, expired) is taken under the fair share and left at it", () => {
    const leases = [lease("a", "me"), lease("b", "other"), lease("c", "other", 0), lease("d", undefined, 0)]
    const mine = new Set(["a"])
    // 4 active shards and "e" not leased yet: 5, over 2 workers a share of 3.
    expect(acquire({ shard: "e", leases, workers: ["me", "other"], mine })).toEqual({
      _tag: "Take",
      reason: "underShare"
    })
    expect(acquire({ shard: "c", lease: leases[2], leases, workers: ["me", "other"], mine })).toEqual({
      _tag: "Take",
      reason: "underShare"
    })
    const full = new Set(["a", "x", "y"])
    expect(acquire({ shard: "c", lease: leases[2], leases, workers: ["me", "other"], mine: full })).toEqual({
      _tag: "Leave",
      reason: "atShare"
    })
    // Our own released lease is free like any other: taking it back must fit the share.
    const released = lease("r", "me", 0)
    expect(
      acquire({
        shard: "r",
        lease: released,
        leases: [released, lease("q", "me")],
        workers: ["me", "other"],
        mine: new Set(["q"])
      })
    )
      .toEqual({ _tag: "Leave", reason: "atShare" })
  })

  it("a free shard left for a stranded period is taken beyond the share, and remembered as adopted", () => {
    const leases = [lease("a", "me"), lease("c", undefined, 0)]
    const mine = new Set(["a"])
    const workers = ["me", "other"]
    const input = { shard: "c", lease: leases[1], leases, workers, mine }
    const first = acquire(input)
    expect(first).toEqual({ _tag: "Leave", reason: "atShare" })
    let memory = LeaseBalance.remember(LeaseBalance.emptyMemory, "c", first, now, workers)
    const started = { since: now, membership: LeaseBalance.membership(workers) }
    expect(memory.freeSince.get("c")).toEqual(started)
    // Leaving it again keeps the first time it was seen free.
    memory = LeaseBalance.remember(memory, "c", first, now + 10, workers)
    expect(memory.freeSince.get("c")).toEqual(started)
    expect(acquire({ ...input, memory, now: now + leaseMillis - 1 })).toEqual({ _tag: "Leave", reason: "atShare" })
    const later = acquire({ ...input, memory, now: now + leaseMillis })
    expect(later).toEqual({ _tag: "Take", reason: "stranded" })
    memory = LeaseBalance.remember(memory, "c", later, now + leaseMillis, ["other", "me"])
    expect(memory.freeSince.has("c")).toBe(false)
    expect(memory.adopted.get("c")).toBe(LeaseBalance.membership(["me", "other"]))
    expect(LeaseBalance.forget(memory, "c").adopted.has("c")).toBe(false)
  })

  it("the stranded clock starts again when the live workers change: the shard was left for another share", () => {
    const leases = [lease("a", "me"), lease("b", "me"), lease("c", undefined, 0), lease("d", "x")]
    const mine = new Set(["a", "b"])
    const before = ["me", "x", "y"]
    const input = { shard: "c", lease: leases[2], leases, workers: before, mine }
    const memory = LeaseBalance.remember(LeaseBalance.emptyMemory, "c", acquire(input), now, before)
    // y left and z came: the same share of 2, but the clock restarts (z may take the shard).
    const after = ["me", "x", "z"]
    const leftWith = acquire({ ...input, workers: after, memory, now: now + leaseMillis })
    expect(leftWith).toEqual({ _tag: "Leave", reason: "atShare" })
    const restarted = LeaseBalance.remember(memory, "c", leftWith, now + leaseMillis, after)
    expect(restarted.freeSince.get("c")).toEqual({
      since: now + leaseMillis,
      membership: LeaseBalance.membership(after)
    })
    expect(acquire({ ...input, workers: after, memory: restarted, now: now + 2 * leaseMillis }))
      .toEqual({ _tag: "Take", reason: "stranded" })
  })

  it("a shard left for balance without ever being leased must be registered, so the others count it", () => {
    const atShare = acquire({ shard: "n", workers: ["me", "x"], mine: new Set(["a"]), leases: [lease("a", "me")] })
    expect(atShare).toEqual({ _tag: "Leave", reason: "atShare" })
    expect(LeaseBalance.mustRegister(atShare, undefined)).toBe(true)
    expect(LeaseBalance.mustRegister(atShare, lease("n", undefined, 0))).toBe(false)
    expect(LeaseBalance.mustRegister({ _tag: "Take", reason: "underShare" }, undefined)).toBe(false)
  })

  it("surplus shards are released only when seen at two heartbeats in a row, the same ones each time", () => {
    const mine = ["s1", "s2", "s3", "s4"]
    const leases = mine.map((id) => lease(id, "me"))
    const workers = ["me", "new"]
    const first = LeaseBalance.decideRelease({ leases, workers, mine, memory: LeaseBalance.emptyMemory })
    expect(first.release).toEqual([])
    expect(first.memory.overShare).toBe(true)
    const second = LeaseBalance.decideRelease({ leases, workers, mine, memory: first.memory })
    expect(second.release).toEqual(["s4", "s3"])
    // A dip below the surplus in between starts the count again.
    const dip = LeaseBalance.decideRelease({
      leases,
      workers: ["me", "new", "third", "fourth"],
      mine: ["s1"],
      memory: first.memory
    })
    expect(dip.memory.overShare).toBe(false)
    expect(LeaseBalance.decideRelease({ leases, workers, mine, memory: dip.memory }).release).toEqual([])
  })

  it("shards adopted under the current membership are kept on top of the share; a membership change frees them for balance", () => {
    const mine = ["s1", "s2", "s3", "s4"]
    const leases = [...mine.map((id) => lease(id, "me")), lease("t1", "b"), lease("t2", "b")]
    const adoptedUnder = (workers: ReadonlyArray<string>): Memory => ({
      freeSince: new Map(),
      adopted: new Map([["s4", LeaseBalance.membership(workers)]]),
      overShare: true
    })
    // 6 shards over 3 workers: a share of 2; s4 was adopted (the lazy worker never takes anything), so 3 count.
    const workers = ["me", "b", "lazy"]
    expect(LeaseBalance.decideRelease({ leases, workers, mine, memory: adoptedUnder(workers) }).release).toEqual(["s3"])
    // Holding the share plus what it adopted is settled: nothing else is released.
    expect(
      LeaseBalance.decideRelease({ leases, workers, mine: ["s1", "s2", "s4"], memory: adoptedUnder(workers) }).release
    )
      .toEqual([])
    const changed = [...workers, "c"]
    expect(LeaseBalance.decideRelease({ leases, workers: changed, mine, memory: adoptedUnder(workers) }).release)
      .toEqual(["s4", "s3"])
  })

  it("a worker at or under its share releases nothing", () => {
    const mine = ["s1", "s2"]
    const leases = [...mine.map((id) => lease(id, "me")), lease("s3", "b")]
    const memory = { ...LeaseBalance.emptyMemory, overShare: true }
    expect(LeaseBalance.decideRelease({ leases, workers: ["b", "me"], mine, memory }).release).toEqual([])
  })
})

// --- The simulation ---------------------------------------------------------------------------------------

interface SimLease {
  owner: string | undefined
  epoch: number
  expiresAt: number
  finished: boolean
}

interface SimWorker {
  readonly name: string
  readonly lazy: boolean
  alive: boolean
  announcedUntil: number | undefined
  /** Shard id → the epoch this worker holds it at. */
  readonly mine: Map<string, number>
  memory: Memory
}

type Step =
  | { readonly _tag: "join"; readonly lazy: boolean }
  | { readonly _tag: "crash" | "stop" | "finish"; readonly pick: number }
  | { readonly _tag: "addShard" }
  | { readonly _tag: "wait"; readonly rounds: number }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ _tag: fc.constant("join" as const), lazy: fc.constantFrom(false, false, false, true) })
  },
  {
    weight: 2,
    arbitrary: fc.record({
      _tag: fc.constantFrom("crash" as const, "stop" as const, "finish" as const),
      pick: fc.nat({ max: 50 })
    })
  },
  { weight: 2, arbitrary: fc.constant({ _tag: "addShard" as const }) },
  { weight: 4, arbitrary: fc.record({ _tag: fc.constant("wait" as const), rounds: fc.integer({ min: 1, max: 4 }) }) }
)

interface Scenario {
  readonly shards: number
  readonly workers: number
  readonly steps: ReadonlyArray<Step>
  readonly order: number
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  shards: fc.integer({ min: 1, max: 12 }),
  workers: fc.integer({ min: 1, max: 4 }),
  steps: fc.array(stepArb, { maxLength: 25 }),
  order: fc.integer({ min: 1, max: 2 ** 31 - 1 })
})

/** A small deterministic PRNG (mulberry32): the order workers act in, per round. */
const prng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A group of workers over a lease table, stepped one heartbeat (a third of a lease) at a time. */
const simulate = (scenario: Scenario) => {
  const leases = new Map<string, SimLease>()
  const shards: Array<string> = []
  const workers: Array<SimWorker> = []
  const random = prng(scenario.order)
  const violations: Array<string> = []
  let time = now
  let handOffs = 0

  const addShard = () => shards.push(`arn#shard-${String(shards.length).padStart(3, "0")}`)
  const join = (lazy: boolean) => {
    const worker: SimWorker = {
      name: `w${workers.length}`,
      lazy,
      alive: true,
      announcedUntil: time + leaseMillis,
      mine: new Map(),
      memory: LeaseBalance.emptyMemory
    }
    workers.push(worker)
  }
  const alive = () => workers.filter((worker) => worker.alive)
  const view = (me: string) => {
    const listed = [...leases].map(([id, l]): Lease => ({
      id,
      owner: l.owner,
      expiresAt: l.expiresAt,
      finished: l.finished
    }))
    const announcements = workers.flatMap((
      w
    ) => (w.announcedUntil === undefined ? [] : [{ owner: w.name, expiresAt: w.announcedUntil }]))
    return { listed, workers: LeaseBalance.liveWorkers(announcements, listed, me, time) }
  }
  const drop = (worker: SimWorker, id: string) => {
    worker.mine.delete(id)
    worker.memory = LeaseBalance.forget(worker.memory, id)
  }
  const release = (worker: SimWorker, id: string) => {
    const held = leases.get(id)!
    // Fenced as ProjectionLeases.release is: only the holder at its epoch.
    if (held.owner === worker.name && held.epoch === worker.mine.get(id)) held.expiresAt = 0
    drop(worker, id)
  }

  const heartbeat = (worker: SimWorker) => {
    for (const [id, epoch] of [...worker.mine]) {
      const held = leases.get(id)!
      // ProjectionLeases.renew: owner and epoch match, and not released.
      if (held.owner === worker.name && held.epoch === epoch && held.expiresAt > 0 && !held.finished) {
        held.expiresAt = time + leaseMillis
      } else drop(worker, id)
    }
    worker.announcedUntil = time + leaseMillis
    const { listed, workers: live } = view(worker.name)
    const decision = LeaseBalance.decideRelease({
      leases: listed,
      workers: live,
      mine: [...worker.mine.keys()],
      memory: worker.memory
    })
    worker.memory = decision.memory
    for (const id of decision.release) {
      if (!worker.mine.has(id)) violations.push(`${worker.name} released ${id}, which it does not hold`)
      release(worker, id)
    }
  }

  const discover = (worker: SimWorker) => {
    for (const id of shards) {
      if (worker.mine.has(id) || leases.get(id)?.finished === true) continue
      const { listed, workers: live } = view(worker.name)
      const current = leases.get(id)
      const decision = LeaseBalance.decideAcquire({
        shard: id,
        lease: current === undefined ? undefined : listed.find((l) => l.id === id),
        leases: listed,
        workers: live,
        me: worker.name,
        mine: new Set(worker.mine.keys()),
        memory: worker.memory,
        now: time,
        strandedMillis: leaseMillis
      })
      worker.memory = LeaseBalance.remember(worker.memory, id, decision, time, live)
      // ProjectionLeases.register: an unowned lease, so that every worker counts the shard.
      if (LeaseBalance.mustRegister(decision, current === undefined ? undefined : listed.find((l) => l.id === id))) {
        leases.set(id, { owner: undefined, epoch: 0, expiresAt: 0, finished: false })
      }
      if (decision._tag === "Leave") continue
      const state = current ?? { owner: undefined, epoch: 0, expiresAt: 0, finished: false }
      if (state.owner !== undefined && state.owner !== worker.name && state.expiresAt > time) {
        violations.push(`${worker.name} took ${id} from ${state.owner}, whose lease was live`)
        continue
      }
      const epoch = state.owner === worker.name ? state.epoch : state.epoch + 1
      if (state.owner !== undefined && state.owner !== worker.name) handOffs++
      leases.set(id, { owner: worker.name, epoch, expiresAt: time + leaseMillis, finished: false })
      worker.mine.set(id, epoch)
    }
  }

  const round = () => {
    time += leaseMillis / 3
    const order = alive().map((worker) => ({ worker, key: random() })).sort((a, b) => a.key - b.key)
    for (const { worker } of order) {
      heartbeat(worker)
      if (!worker.lazy) discover(worker)
    }
    const holders = new Map<string, string>()
    for (const worker of alive()) {
      for (const id of worker.mine.keys()) {
        const l = leases.get(id)!
        if (l.owner !== worker.name || l.expiresAt <= time) continue
        if (holders.has(id)) violations.push(`${id} held by ${holders.get(id)} and ${worker.name}`)
        holders.set(id, worker.name)
      }
    }
  }

  const snapshot = () => JSON.stringify([...leases].map(([id, l]) => [id, l.owner, l.epoch, l.finished]))

  for (let i = 0; i < scenario.shards; i++) addShard()
  for (let i = 0; i < scenario.workers; i++) join(false)
  for (const step of scenario.steps) {
    const living = alive()
    switch (step._tag) {
      case "join":
        join(step.lazy)
        break
      case "crash":
      case "stop": {
        const worker = living[step.pick % Math.max(1, living.length)]
        if (worker === undefined) break
        worker.alive = false
        if (step._tag === "stop") {
          // Graceful: withdraw the announcement, release every lease.
          worker.announcedUntil = undefined
          for (const id of [...worker.mine.keys()]) release(worker, id)
        }
        break
      }
      case "finish": {
        const open = shards.filter((id) => leases.get(id)?.owner !== undefined && !leases.get(id)!.finished)
        const id = open[step.pick % Math.max(1, open.length)]
        const held = id === undefined ? undefined : leases.get(id)!
        if (id === undefined || held === undefined) break
        const owner = workers.find((worker) => worker.alive && worker.name === held.owner && held.expiresAt > time)
        if (owner === undefined) break
        held.finished = true
        drop(owner, id)
        break
      }
      case "addShard":
        addShard()
        break
      case "wait":
        for (let i = 0; i < step.rounds; i++) round()
    }
  }
  if (!alive().some((worker) => !worker.lazy)) join(false)
  // Quiet: nobody joins or leaves; give the group time to settle.
  for (let i = 0; i < 40; i++) round()
  const settled = snapshot()
  const handOffsSettled = handOffs
  for (let i = 0; i < 20; i++) round()

  const open = shards.filter((id) => leases.get(id)?.finished !== true)
  const living = alive()
  return {
    leases,
    open,
    living,
    violations,
    settled,
    stillSettled: snapshot(),
    handOffsAfterSettling: handOffs - handOffsSettled,
    time
  }
}

describe("LeaseBalance over a simulated group of workers", () => {
  it("never takes a live lease, never strands a shard, converges to at most ceil(n/w) each, then stays put", () => {
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        const result = simulate(scenario)
        expect(result.violations).toEqual([])
        // Every shard not finished is held, live, by a living worker that knows it holds it.
        for (const id of result.open) {
          const l = result.leases.get(id)
          const holder = result.living.find((worker) => worker.name === l?.owner)
          expect({ id, held: holder !== undefined && l!.expiresAt > result.time && holder.mine.get(id) === l!.epoch })
            .toEqual({ id, held: true })
        }
        const held = result.living.reduce((sum, worker) => sum + worker.mine.size, 0)
        expect(held).toBe(result.open.length)
        // Fair when every living worker takes its part (a worker that never takes leaves its part to the others).
        if (!result.living.some((worker) => worker.lazy)) {
          const share = LeaseBalance.fairShare(result.open.length, result.living.length)
          for (const worker of result.living) {
            expect({ worker: worker.name, held: worker.mine.size <= share }).toEqual({
              worker: worker.name,
              held: true
            })
          }
        }
        // Settled means settled: no hand-off and no change of owner or epoch afterwards.
        expect(result.stillSettled).toBe(result.settled)
        expect(result.handOffsAfterSettling).toBe(0)
      }),
      params
    )
  })

  it("a worker joining a busy group gets its share through hand-offs, each moving the epoch by one", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 16 }), fc.integer({ min: 1, max: 4 }), (shards, joining) => {
        const result = simulate({
          shards,
          workers: 1,
          steps: [
            { _tag: "wait", rounds: 3 },
            ...Array.from({ length: joining }, () => ({ _tag: "join" as const, lazy: false }))
          ],
          order: shards * 31 + joining
        })
        expect(result.violations).toEqual([])
        const share = LeaseBalance.fairShare(shards, joining + 1)
        const counts = result.living.map((worker) => worker.mine.size).sort((a, b) => a - b)
        expect(counts.reduce((a, b) => a + b, 0)).toBe(shards)
        expect(Math.max(...counts)).toBeLessThanOrEqual(share)
        // The first worker took every shard at epoch 1; each later owner change bumped it by exactly one.
        for (const [, l] of result.leases) expect(l.epoch).toBe(l.owner === "w0" ? 1 : 2)
      }),
      params
    )
  })
})
