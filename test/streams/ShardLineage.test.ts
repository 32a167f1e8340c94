import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import type { ShardNode } from "../../src/domain/ShardLineage.ts"
import { parentsFirst, readyShards } from "../../src/domain/ShardLineage.ts"

const params = { seed: Number(process.env["FC_SEED"] ?? 20261125), numRuns: 200 }

const node = (shardId: string, parentShardId?: string): ShardNode => ({ shardId, parentShardId })
const ids = (shards: ReadonlyArray<ShardNode>) => shards.map((shard) => shard.shardId)
const none = new Set<string>()

/**
 * A random forest of shards (a parent is always created before its children),
 * listed in a random order, some shards left out of the listing, and random
 * finished / active sets.
 */
const forest = fc.array(
  fc.record({
    parent: fc.option(fc.nat(), { nil: undefined }),
    listed: fc.integer({ min: 0, max: 4 }).map((n) => n > 0),
    finished: fc.boolean(),
    active: fc.boolean(),
    order: fc.nat()
  }),
  { minLength: 1, maxLength: 30 }
).map((specs) => {
  const all = specs.map((spec, i) =>
    node(`s${i}`, spec.parent === undefined || i === 0 ? undefined : `s${spec.parent % i}`)
  )
  const listed = specs
    .map((spec, i) => ({ spec, shard: all[i]! }))
    .filter(({ spec }) => spec.listed)
    .sort((a, b) => a.spec.order - b.spec.order)
    .map(({ shard }) => shard)
  return {
    all,
    listed,
    finished: new Set(specs.flatMap((spec, i) => (spec.finished ? [`s${i}`] : []))),
    active: new Set(specs.flatMap((spec, i) => (spec.active && !spec.finished ? [`s${i}`] : [])))
  }
})

describe("readyShards", () => {
  it("a root shard is ready; its children wait while it is listed and unfinished", () => {
    const listed = [node("a"), node("b", "a"), node("c", "a")]
    expect(ids(readyShards(listed, none, none))).toEqual(["a"])
    expect(ids(readyShards(listed, none, new Set(["a"])))).toEqual([])
    expect(ids(readyShards(listed, new Set(["a"]), none))).toEqual(["b", "c"])
  })

  it("a parent listed as open (no ending sequence number) still keeps its children waiting", () => {
    const listed = [
      { ...node("child", "parent"), endingSequenceNumber: undefined },
      { ...node("parent"), endingSequenceNumber: undefined }
    ]
    expect(ids(readyShards(listed, none, none))).toEqual(["parent"])
  })

  it("a child whose parent is no longer listed is ready", () => {
    expect(ids(readyShards([node("child", "gone")], none, none))).toEqual(["child"])
  })

  it("finished and active shards are never ready", () => {
    const listed = [node("a"), node("b"), node("c")]
    expect(ids(readyShards(listed, new Set(["a"]), new Set(["b"])))).toEqual(["c"])
  })

  // Regression: a parent this process is still reading (active) but that an inconsistent
  // listing left out makes its children ready, so a child can be read alongside its parent.
  it("a child waits while its parent is still being read, even if the listing left the parent out", () => {
    expect(ids(readyShards([node("child", "parent")], none, new Set(["parent"])))).toEqual([])
  })

  it("property: a child is never ready before its parent is finished while the parent is listed", () => {
    fc.assert(
      fc.property(forest, ({ listed, finished, active }) => {
        const listedIds = new Set(ids(listed))
        for (const shard of readyShards(listed, finished, active)) {
          expect(listedIds.has(shard.shardId)).toBe(true)
          expect(finished.has(shard.shardId) || active.has(shard.shardId)).toBe(false)
          if (shard.parentShardId !== undefined && listedIds.has(shard.parentShardId)) {
            expect(finished.has(shard.parentShardId)).toBe(true)
          }
        }
      }),
      params
    )
  })

  it("property: every listed shard that may be read is ready (no shard starves)", () => {
    fc.assert(
      fc.property(forest, ({ listed, finished, active }) => {
        const listedIds = new Set(ids(listed))
        const ready = new Set(ids(readyShards(listed, finished, active)))
        for (const shard of listed) {
          const parent = shard.parentShardId
          // A parent that aged out of the listing frees its children, unless this process is still reading it.
          const free = parent === undefined || finished.has(parent) || (!listedIds.has(parent) && !active.has(parent))
          expect(ready.has(shard.shardId)).toBe(free && !finished.has(shard.shardId) && !active.has(shard.shardId))
        }
      }),
      params
    )
  })

  it("property: reading whatever is ready, in any order, finishes every listed shard, each after its listed parent", () => {
    fc.assert(
      fc.property(forest, fc.array(fc.nat(), { minLength: 60, maxLength: 60 }), ({ listed }, picks) => {
        const finished = new Set<string>()
        const finishedAt = new Map<string, number>()
        for (let step = 0; finished.size < listed.length; step++) {
          const ready = readyShards(listed, finished, none)
          expect(ready.length).toBeGreaterThan(0) // never stuck
          const shard = ready[(picks[step % picks.length] ?? 0) % ready.length]!
          finished.add(shard.shardId)
          finishedAt.set(shard.shardId, step)
        }
        for (const shard of listed) {
          const parentAt = shard.parentShardId === undefined ? undefined : finishedAt.get(shard.parentShardId)
          if (parentAt !== undefined) expect(parentAt).toBeLessThan(finishedAt.get(shard.shardId)!)
        }
      }),
      params
    )
  })
})

describe("parentsFirst", () => {
  it("orders children listed before their parents after them, keeping the listing order otherwise", () => {
    const listed = [node("grandchild", "child"), node("x"), node("child", "root"), node("root"), node("y")]
    expect(ids(parentsFirst(listed))).toEqual(["x", "root", "y", "child", "grandchild"])
  })

  it("terminates on cycles and self-parents", () => {
    const listed = [node("a", "b"), node("b", "a"), node("self", "self")]
    expect([...ids(parentsFirst(listed))].sort()).toEqual(["a", "b", "self"])
  })

  it("property: a permutation of the listing with every listed parent before its children", () => {
    fc.assert(
      fc.property(forest, ({ listed }) => {
        const ordered = parentsFirst(listed)
        expect([...ids(ordered)].sort()).toEqual([...ids(listed)].sort())
        const at = new Map(ids(ordered).map((id, i) => [id, i] as const))
        for (const shard of ordered) {
          const parentAt = shard.parentShardId === undefined ? undefined : at.get(shard.parentShardId)
          if (parentAt !== undefined) expect(parentAt).toBeLessThan(at.get(shard.shardId)!)
        }
      }),
      params
    )
  })

  it("property: stable: shards without listed parents keep their relative listing order", () => {
    fc.assert(
      fc.property(forest, ({ listed }) => {
        const listedIds = new Set(ids(listed))
        const roots = (shards: ReadonlyArray<ShardNode>) =>
          ids(shards.filter((s) => s.parentShardId === undefined || !listedIds.has(s.parentShardId)))
        expect(roots(parentsFirst(listed))).toEqual(roots(listed))
      }),
      params
    )
  })

  it("property: parentsFirst of the ready shards starts parents before children across successive rounds", () => {
    fc.assert(
      fc.property(forest, ({ all }) => {
        // Readers start in parentsFirst(readyShards(...)) order; each round finishes what was started.
        const finished = new Set<string>()
        const startedAt: Array<string> = []
        while (finished.size < all.length) {
          const round = parentsFirst(readyShards(all, finished, none))
          expect(round.length).toBeGreaterThan(0)
          for (const shard of round) startedAt.push(shard.shardId)
          for (const shard of round) finished.add(shard.shardId)
        }
        for (const shard of all) {
          if (shard.parentShardId !== undefined) {
            expect(startedAt.indexOf(shard.parentShardId)).toBeLessThan(startedAt.indexOf(shard.shardId))
          }
        }
      }),
      params
    )
  })
})
