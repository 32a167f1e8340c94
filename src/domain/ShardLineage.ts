/**
 * Shard lineage of a DynamoDB stream: a child shard may be read only after
 * every record of its parent was applied, or a key's newer event (in the
 * child) would overtake an older one (in the parent). Pure, so the rules are
 * tested without a stream.
 */

/** A shard and its parent, as listed. */
export interface ShardNode {
  readonly shardId: string
  readonly parentShardId: string | undefined
}

/**
 * The shards that may be read now: neither finished nor being read, and whose
 * parent is finished, or no longer listed (it aged out of the stream, so
 * nothing of it is left to read) and not being read by us. A parent still
 * listed as open keeps its children waiting, however inconsistent the listing
 * looks.
 */
export const readyShards = <S extends ShardNode>(
  listed: ReadonlyArray<S>,
  finished: ReadonlySet<string>,
  active: ReadonlySet<string>
): ReadonlyArray<S> => {
  const listedIds = new Set(listed.map((shard) => shard.shardId))
  return listed.filter((shard) =>
    !finished.has(shard.shardId) &&
    !active.has(shard.shardId) &&
    (shard.parentShardId === undefined || finished.has(shard.parentShardId) ||
      (!listedIds.has(shard.parentShardId) && !active.has(shard.parentShardId)))
  )
}

/** Orders shards so that every parent comes before its children (a stable topological order). */
export const parentsFirst = <S extends ShardNode>(listed: ReadonlyArray<S>): ReadonlyArray<S> => {
  const byId = new Map(listed.map((shard) => [shard.shardId, shard] as const))
  const depth = (shard: S, seen = new Set<string>()): number => {
    const parent = shard.parentShardId === undefined ? undefined : byId.get(shard.parentShardId)
    if (parent === undefined || seen.has(parent.shardId)) return 0
    seen.add(shard.shardId)
    return 1 + depth(parent, seen)
  }
  return [...listed].map((shard, index) => ({ shard, index, depth: depth(shard) }))
    .sort((a, b) => a.depth - b.depth || a.index - b.index)
    .map((entry) => entry.shard)
}
