/**
 * A scripted, in-memory DynamoDB Streams (`StreamsApi`) for the topologies
 * DynamoDB Local cannot produce: shard lineage (splits), closed shards,
 * trimming, expired iterators, throttling, inconsistent or paged shard
 * listings, and streams that are disabled and re-enabled under a new ARN.
 *
 * Sequence numbers are global, increasing and zero-padded (so they compare as
 * strings). Iterators are opaque strings that encode the stream, the shard,
 * the index of the next record and the iterator "generation" (bumped to make
 * every iterator handed out so far expire). Every call is logged with the
 * time of its Clock, so tests can count calls per window.
 */
import { Clock, Effect } from "effect"
import { Buffer } from "node:buffer"
import { StorageFailure, Throttled } from "../../src/domain/Errors.ts"
import type {
  ShardDescription,
  ShardPosition,
  StreamPage,
  StreamRecord,
  StreamsError
} from "../../src/infra/streams/StreamsApi.ts"
import {
  describeStreamSpacingMillis,
  IteratorExpired,
  pacer,
  StreamGone,
  StreamsApi,
  TrimmedData
} from "../../src/infra/streams/StreamsApi.ts"

export type Operation = "latestStreamArn" | "describeStream" | "getShardIterator" | "getRecords"

/** One call the reader made, and how it ended. */
export interface Call {
  readonly op: Operation
  /** Clock time (TestClock under `it.effect`, wall time under `it.live`). */
  readonly at: number
  readonly arn?: string | undefined
  readonly shardId?: string | undefined
  readonly position?: ShardPosition | undefined
  readonly exclusiveStartShardId?: string | undefined
  /** "ok" or the error's tag. */
  outcome: string
}

export interface ScriptedOptions {
  /** Shards per DescribeStream page (LastEvaluatedShardId paging). */
  readonly pageSize?: number | undefined
  /** Records per GetRecords page. */
  readonly recordsPerPage?: number | undefined
  /** Pace DescribeStream as the real service does (`pacer(describeStreamSpacingMillis)` from src). */
  readonly pace?: boolean | undefined
  /** Listing order: by creation, or newest first (children listed before their parents). */
  readonly listing?: "created" | "childrenFirst" | undefined
  readonly table?: string | undefined
}

interface ScriptedShard {
  readonly shardId: string
  readonly parentShardId: string | undefined
  readonly records: Array<StreamRecord>
  /** `records[0, trimmed)` are gone. */
  trimmed: number
  trimmedThrough: string | undefined
  endingSequenceNumber: string | undefined
}

interface ScriptedStream {
  readonly arn: string
  readonly shards: Array<ScriptedShard>
}

interface IteratorState {
  readonly arn: string
  readonly shardId: string
  readonly index: number
  readonly generation: number
}

/** The label a scripted record carries (its "key"). */
export const labelOf = (record: StreamRecord): string => record.keys["label"]?.S ?? "?"

/** Zero-padded sequence numbers, so string order is numeric order. */
const seqOf = (n: number) => String(n).padStart(21, "0")

export const makeScriptedStreams = (options: ScriptedOptions = {}) => {
  const pageSize = options.pageSize ?? 100
  const recordsPerPage = options.recordsPerPage ?? 1000
  const table = options.table ?? "scripted-table"
  const streams: Array<ScriptedStream> = []
  const hidden = new Set<string>()
  const listedOpen = new Set<string>()
  const injected = new Map<Operation, Array<() => StreamsError>>()
  const calls: Array<Call> = []
  let enabled = true
  let counter = 0
  let streamCounter = 0
  let generation = 0
  let expireAfterCalls: number | undefined
  let expiredFailures = 0

  const newStream = () => {
    const stream: ScriptedStream = {
      arn: `arn:aws:dynamodb:us-east-1:000000000000:table/${table}/stream/${++streamCounter}`,
      shards: []
    }
    streams.push(stream)
    return stream
  }
  newStream()
  const current = () => streams[streams.length - 1]!
  const findShard = (shardId: string): ScriptedShard => {
    for (const stream of streams) {
      const shard = stream.shards.find((s) => s.shardId === shardId)
      if (shard) return shard
    }
    throw new Error(`scripted: no shard ${shardId}`)
  }

  const encode = (state: IteratorState) => Buffer.from(JSON.stringify(state)).toString("base64url")
  const decode = (iterator: string): IteratorState | undefined => {
    try {
      return JSON.parse(Buffer.from(iterator, "base64url").toString("utf8")) as IteratorState
    } catch {
      return undefined
    }
  }

  const record = (call: Omit<Call, "at" | "outcome">) =>
    Effect.gen(function*() {
      const entry: Call = { ...call, at: yield* Clock.currentTimeMillis, outcome: "ok" }
      calls.push(entry)
      const failure = injected.get(call.op)?.shift()
      if (failure !== undefined) {
        const error = failure()
        entry.outcome = error._tag
        return yield* Effect.fail(error)
      }
      return entry
    })

  const failWith = (entry: Call, error: StreamsError) => {
    entry.outcome = error._tag
    if (error._tag === "IteratorExpired") expiredFailures++
    return Effect.fail(error)
  }

  const findStream = (arn: string) => streams.find((stream) => stream.arn === arn)

  const describe = (arn: string, exclusiveStartShardId: string | undefined): Effect.Effect<StreamPage, StreamsError> =>
    Effect.gen(function*() {
      const entry = yield* record({ op: "describeStream", arn, exclusiveStartShardId })
      const stream = findStream(arn)
      if (stream === undefined) {
        return yield* failWith(entry, new StreamGone({ arn, reason: "scripted: no such stream" }))
      }
      const ordered = options.listing === "childrenFirst" ? [...stream.shards].reverse() : stream.shards
      const visible = ordered.filter((shard) => !hidden.has(shard.shardId))
      let start = 0
      if (exclusiveStartShardId !== undefined) {
        const at = visible.findIndex((shard) => shard.shardId === exclusiveStartShardId)
        if (at === -1) {
          return yield* failWith(
            entry,
            new StorageFailure({ operation: "DescribeStream", reason: "scripted: bad start" })
          )
        }
        start = at + 1
      }
      const page = visible.slice(start, start + pageSize)
      const more = start + pageSize < visible.length
      return {
        status: stream === current() && enabled ? "ENABLED" : "DISABLED",
        lastEvaluatedShardId: more ? page[page.length - 1]!.shardId : undefined,
        shards: page.map((shard): ShardDescription => ({
          shardId: shard.shardId,
          parentShardId: shard.parentShardId,
          endingSequenceNumber: listedOpen.has(shard.shardId) ? undefined : shard.endingSequenceNumber
        }))
      }
    })

  const paced = pacer(describeStreamSpacingMillis)

  const api = StreamsApi.of({
    latestStreamArn: () =>
      record({ op: "latestStreamArn" }).pipe(Effect.map(() => (enabled ? current().arn : undefined))),

    describeStream: (arn, exclusiveStartShardId) =>
      options.pace
        ? paced.pipe(Effect.andThen(describe(arn, exclusiveStartShardId)))
        : describe(arn, exclusiveStartShardId),

    getShardIterator: (arn, shardId, position) =>
      Effect.gen(function*() {
        const entry = yield* record({ op: "getShardIterator", arn, shardId, position })
        const shard = findStream(arn)?.shards.find((s) => s.shardId === shardId)
        if (shard === undefined) {
          return yield* failWith(entry, new StreamGone({ arn, reason: `scripted: no shard ${shardId}` }))
        }
        let index: number
        switch (position._tag) {
          case "TrimHorizon":
            index = shard.trimmed
            break
          case "Latest":
            index = shard.records.length
            break
          case "After":
            if (shard.trimmedThrough !== undefined && position.sequenceNumber <= shard.trimmedThrough) {
              return yield* failWith(entry, new TrimmedData({ shardId }))
            }
            index = shard.records.filter((r) => r.sequenceNumber <= position.sequenceNumber).length
        }
        return encode({ arn, shardId, index, generation })
      }),

    getRecords: (shardId, iterator) =>
      Effect.gen(function*() {
        const entry = yield* record({ op: "getRecords", shardId })
        const state = decode(iterator)
        if (state === undefined || state.shardId !== shardId) {
          return yield* failWith(
            entry,
            new StorageFailure({ operation: "GetRecords", reason: "scripted: bad iterator" })
          )
        }
        if (state.generation < generation) return yield* failWith(entry, new IteratorExpired({ shardId }))
        const shard = findStream(state.arn)?.shards.find((s) => s.shardId === shardId)
        if (shard === undefined) {
          return yield* failWith(entry, new StreamGone({ arn: state.arn, reason: "scripted: gone" }))
        }
        if (state.index < shard.trimmed) {
          return yield* failWith(entry, new TrimmedData({ shardId }))
        }
        const records = shard.records.slice(state.index, state.index + recordsPerPage)
        const next = state.index + records.length
        const closedAndRead = shard.endingSequenceNumber !== undefined && next >= shard.records.length
        if (expireAfterCalls !== undefined && --expireAfterCalls <= 0) {
          expireAfterCalls = undefined
          generation++
        }
        return {
          records,
          nextIterator: closedAndRead ? undefined : encode({ ...state, index: next })
        }
      })
  })

  const script = {
    /** The current stream's ARN. */
    get arn() {
      return current().arn
    },
    calls,
    /** GetRecords calls that failed because their iterator had expired. */
    get expiredFailures() {
      return expiredFailures
    },
    count: (op: Operation, predicate: (call: Call) => boolean = () => true) =>
      calls.filter((call) => call.op === op && predicate(call)).length,

    /** Adds an open shard to the current stream. */
    addShard: (shardId: string, parentShardId?: string) => {
      current().shards.push({
        shardId,
        parentShardId,
        records: [],
        trimmed: 0,
        trimmedThrough: undefined,
        endingSequenceNumber: undefined
      })
      return shardId
    },
    /** Appends records (one per label) to an open shard; returns their sequence numbers. */
    append: (shardId: string, ...labels: ReadonlyArray<string>): ReadonlyArray<string> =>
      script.appendRecords(
        shardId,
        labels.map((label): StreamRecord => ({
          eventName: "INSERT",
          sequenceNumber: "",
          keys: { label: { S: label } },
          newImage: { label: { S: label } },
          principal: undefined,
          approximateCreation: Date.now()
        }))
      ),
    /** Appends copies of real records (e.g. read from DynamoDB Local) with new sequence numbers; returns them. */
    appendRecords: (shardId: string, records: ReadonlyArray<StreamRecord>): ReadonlyArray<string> => {
      const shard = findShard(shardId)
      if (shard.endingSequenceNumber !== undefined) throw new Error(`scripted: shard ${shardId} is closed`)
      return records.map((record) => {
        const sequenceNumber = seqOf(++counter)
        shard.records.push({ ...record, sequenceNumber })
        return sequenceNumber
      })
    },
    /** Closes a shard: it gets an ending sequence number and takes no more records. */
    close: (shardId: string) => {
      const shard = findShard(shardId)
      shard.endingSequenceNumber ??= seqOf(++counter)
    },
    /** Closes a shard and adds children to the current stream. */
    split: (parentShardId: string, ...children: ReadonlyArray<string>) => {
      script.close(parentShardId)
      for (const child of children) script.addShard(child, parentShardId)
    },
    /** Trims every record with a sequence number up to and including `sequenceNumber`, in every shard. */
    trimThrough: (sequenceNumber: string) => {
      for (const stream of streams) {
        for (const shard of stream.shards) {
          const gone = shard.records.filter((record) => record.sequenceNumber <= sequenceNumber).length
          if (gone > shard.trimmed) {
            shard.trimmed = gone
            shard.trimmedThrough = shard.records[gone - 1]!.sequenceNumber
          }
        }
      }
    },
    /** Every iterator handed out so far expires now. */
    expireIterators: () => {
      generation++
    },
    /** Every iterator handed out so far expires after `n` more successful GetRecords calls. */
    expireIteratorsAfter: (n: number) => {
      expireAfterCalls = n
    },
    /** The next `times` calls of `op` fail (Throttled by default). */
    fail: (
      op: Operation,
      times: number,
      error: () => StreamsError = () => new Throttled({ operation: op, reason: "scripted" })
    ) => {
      const queue = injected.get(op) ?? []
      for (let i = 0; i < times; i++) queue.push(error)
      injected.set(op, queue)
    },
    /** Failures injected but not yet served. */
    pendingFailures: (op: Operation) => injected.get(op)?.length ?? 0,
    /** Lists a (closed) shard without its ending sequence number, as an eventually consistent listing may. */
    listAsOpen: (shardId: string) => listedOpen.add(shardId),
    /** Leaves a shard out of the listing (it is still readable). */
    hide: (shardId: string) => hidden.add(shardId),
    unhide: (shardId: string) => hidden.delete(shardId),
    /** Streams disabled: every open shard of the current stream closes, and the table has no stream. */
    disableStream: () => {
      for (const shard of current().shards) script.close(shard.shardId)
      enabled = false
    },
    /** Streams (re-)enabled: a new stream with a new ARN and one open shard. */
    enableStream: (shardId: string) => {
      newStream()
      enabled = true
      script.addShard(shardId)
      return current().arn
    },
    api
  }

  return script
}

export type ScriptedStreams = ReturnType<typeof makeScriptedStreams>
