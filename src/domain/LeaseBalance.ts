/**
 * How the projection workers of one group share a stream's shards fairly.
 * Pure, so the rules are tested without DynamoDB (which, locally, has one
 * shard per table) and the worker only feeds it what it read.
 *
 * - Each worker's fair share is ceil(active shards / live workers).
 * - A worker takes a free shard (never owned, released, or expired) only
 *   while it holds fewer than its share, so a shard released for balance
 *   lands on an under-loaded worker and does not come back (no ping-pong).
 *   A shard a worker left free for a whole stranded period, with the same
 *   workers alive all along, is taken anyway: balance never leaves a shard
 *   unread. A shard left without ever being leased gets an unowned lease
 *   (`mustRegister`), so every worker counts it.
 * - A live lease of another worker is never taken: shards change hands only
 *   when their holder releases them or stops renewing.
 * - A worker over its share (by even one shard: the ceiling is the slack)
 *   releases the surplus, but only once it saw the surplus at two heartbeats
 *   in a row, so a count that dips for a moment (a shard just ended, its
 *   child not yet leased) moves nothing. Shards it adopted as stranded are
 *   kept on top of its share until the set of live workers changes, or a
 *   worker that never takes anything would make shards bounce.
 */

/** A shard lease as the balancer sees it; `id` names the shard across streams. */
export interface Lease {
  readonly id: string
  readonly owner: string | undefined
  readonly expiresAt: number
  readonly finished: boolean
}

/** A worker's announcement that it is alive. */
export interface Announcement {
  readonly owner: string
  readonly expiresAt: number
}

/** Whether a lease is held now: owned, not expired or released, and its shard not done. */
export const isLive = (lease: Lease, now: number): boolean =>
  !lease.finished && lease.owner !== undefined && lease.expiresAt > now

/**
 * The workers sharing the shards now, sorted: those whose announcement has
 * not expired, those holding a live lease (a worker that cannot announce
 * itself still holds its shards), and always `me`.
 */
export const liveWorkers = (
  announcements: ReadonlyArray<Announcement>,
  leases: ReadonlyArray<Lease>,
  me: string,
  now: number
): ReadonlyArray<string> => {
  const live = new Set<string>([me])
  for (const announcement of announcements) if (announcement.expiresAt > now) live.add(announcement.owner)
  for (const lease of leases) if (isLive(lease, now)) live.add(lease.owner!)
  return [...live].sort()
}

/** Names a set of live workers, so a decision can be tied to the membership it was made under. */
export const membership = (workers: ReadonlyArray<string>): string => [...workers].sort().join("\n")

/** The shards that still need a reader: unfinished leases, the shards this worker holds, and `extra` (a shard without a lease yet). */
export const activeShards = (leases: ReadonlyArray<Lease>, mine: Iterable<string>, extra?: string): number => {
  const ids = new Set<string>(mine)
  for (const lease of leases) if (!lease.finished) ids.add(lease.id)
  if (extra !== undefined) ids.add(extra)
  return ids.size
}

/** ceil(active / workers): a split where nobody holds more always exists and leaves no shard out. */
export const fairShare = (active: number, workers: number): number => Math.ceil(active / Math.max(1, workers))

/** What a worker remembers between decisions. */
export interface Memory {
  /**
   * When this worker first left each free shard for balance, and under which live workers (the
   * stranded clock: it starts again when they change, since the shard was then left for a share
   * that no longer holds).
   */
  readonly freeSince: ReadonlyMap<string, { readonly since: number; readonly membership: string }>
  /** Shards it took because nobody else did, and the membership it took them under. */
  readonly adopted: ReadonlyMap<string, string>
  /** Whether the previous heartbeat found this worker over its share. */
  readonly overShare: boolean
}

/** A worker's memory when it starts. */
export const emptyMemory: Memory = { freeSince: new Map(), adopted: new Map(), overShare: false }

/** How a shard's lease stands for `me`. */
export type Standing = "finished" | "heldByOther" | "mine" | "free"

/** How a shard's lease stands for `me`, who holds the shards in `mine`; `undefined` is a shard never leased. */
export const standing = (lease: Lease | undefined, me: string, mine: ReadonlySet<string>, now: number): Standing => {
  if (lease?.finished === true) return "finished"
  if (lease !== undefined && isLive(lease, now) && lease.owner !== me) return "heldByOther"
  if (lease !== undefined && mine.has(lease.id)) return "mine"
  return "free"
}

/** Whether to take a shard the stream reader offers, and why. */
export type AcquireDecision =
  | { readonly _tag: "Take"; readonly reason: "mine" | "underShare" | "stranded" }
  | { readonly _tag: "Leave"; readonly reason: "finished" | "heldByOther" | "atShare" }

/** What an acquire decision looks at. */
export interface AcquireInput {
  readonly shard: string
  /** The shard's lease as read now; `undefined` when it was never leased. */
  readonly lease: Lease | undefined
  /** Every lease of the group, to count the active shards. */
  readonly leases: ReadonlyArray<Lease>
  /** The live workers, `me` included. */
  readonly workers: ReadonlyArray<string>
  readonly me: string
  /** The shards this worker holds. */
  readonly mine: ReadonlySet<string>
  readonly memory: Memory
  readonly now: number
  /** How long a free shard is left for an under-loaded worker before anyone takes it. */
  readonly strandedMillis: number
}

/** Decides whether this worker takes a shard now. */
export const decideAcquire = (input: AcquireInput): AcquireDecision => {
  const lease = input.lease ?? { id: input.shard, owner: undefined, expiresAt: 0, finished: false }
  const current = standing(lease, input.me, input.mine, input.now)
  if (current === "finished" || current === "heldByOther") return { _tag: "Leave", reason: current }
  if (current === "mine") return { _tag: "Take", reason: "mine" }
  const share = fairShare(activeShards(input.leases, input.mine, input.shard), input.workers.length)
  if (input.mine.size < share) return { _tag: "Take", reason: "underShare" }
  const free = input.memory.freeSince.get(input.shard)
  if (
    free !== undefined && free.membership === membership(input.workers) &&
    input.now - free.since >= input.strandedMillis
  ) {
    return { _tag: "Take", reason: "stranded" }
  }
  return { _tag: "Leave", reason: "atShare" }
}

/**
 * Whether a shard left for balance must get an unowned lease: it has none
 * yet, and the other workers only count the shards that have one.
 */
export const mustRegister = (decision: AcquireDecision, lease: Lease | undefined): boolean =>
  decision._tag === "Leave" && decision.reason === "atShare" && lease === undefined

/** The memory after deciding on `shard` under the live workers `workers` (and taking it, if the decision was Take). */
export const remember = (
  memory: Memory,
  shard: string,
  decision: AcquireDecision,
  now: number,
  workers: ReadonlyArray<string>
): Memory => {
  const freeSince = new Map(memory.freeSince)
  const adopted = new Map(memory.adopted)
  if (decision._tag === "Leave" && decision.reason === "atShare") {
    const members = membership(workers)
    const started = memory.freeSince.get(shard)
    freeSince.set(
      shard,
      started !== undefined && started.membership === members ? started : { since: now, membership: members }
    )
  } else {
    freeSince.delete(shard)
  }
  if (decision._tag === "Take" && decision.reason === "stranded") adopted.set(shard, membership(workers))
  else if (decision._tag === "Take" && decision.reason === "underShare") adopted.delete(shard)
  return { ...memory, freeSince, adopted }
}

/** The memory after `shard` left this worker's hands (released, lost or finished). */
export const forget = (memory: Memory, shard: string): Memory => {
  if (!memory.adopted.has(shard)) return memory
  const adopted = new Map(memory.adopted)
  adopted.delete(shard)
  return { ...memory, adopted }
}

/** What a release decision looks at. */
export interface ReleaseInput {
  readonly leases: ReadonlyArray<Lease>
  /** The live workers, `me` included. */
  readonly workers: ReadonlyArray<string>
  /** The shards this worker holds. */
  readonly mine: ReadonlyArray<string>
  readonly memory: Memory
}

/**
 * The shards to hand off now (and the memory after the decision), at one
 * heartbeat. Shards adopted under the current membership come on top of the
 * share: counting them in would make the adopter release another shard,
 * which nobody takes either, which someone adopts, and so round.
 */
export const decideRelease = (
  input: ReleaseInput
): { readonly release: ReadonlyArray<string>; readonly memory: Memory } => {
  const share = fairShare(activeShards(input.leases, input.mine), input.workers.length)
  const members = membership(input.workers)
  const candidates = input.mine.filter((id) => input.memory.adopted.get(id) !== members)
  const surplus = candidates.length - share
  const memory = { ...input.memory, overShare: surplus > 0 }
  if (surplus <= 0 || !input.memory.overShare) return { release: [], memory }
  return { release: [...candidates].sort().reverse().slice(0, surplus), memory }
}
