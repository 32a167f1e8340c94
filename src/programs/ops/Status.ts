/**
 * `dynastate status`: how the store's table, stream, TTL and projection workers stand, read from DynamoDB and the
 * stream (nothing is changed). A worker's lag per shard is measured here rather than taken from the worker: the
 * age of the first stream record after the shard's checkpoint (0 when there is none), so it is right even when the
 * worker is down. Quarantined keys live in the worker's memory only and are not in the table: the report says
 * where to look instead.
 */
import { Clock, Effect } from "effect"
import type { Dynamo } from "../../infra/Dynamo.ts"
import * as TableAdmin from "../../infra/ops/TableAdmin.ts"
import type { AdminError } from "../../infra/ops/TableAdmin.ts"
import * as ProjectionLeases from "../../infra/ProjectionLeases.ts"
import { StreamsApi } from "../../infra/streams/StreamsApi.ts"
import type { ShardDescription } from "../../infra/streams/StreamsApi.ts"
import type { Target } from "./Target.ts"

/** The TTL attribute the store's tables expire items by. */
export const ttlAttribute = "ttl"

/** How far a shard's readers are behind, as measured from its checkpoint. */
export interface ShardLag {
  /** Age of the oldest record not yet checkpointed; 0 when the checkpoint is at the shard's tip. */
  readonly millis: number | undefined
  /** Records waiting after the checkpoint in the first page read (a lower bound; `more` if the page was full). */
  readonly pending: number | undefined
  readonly more: boolean
  /** Why the lag is unknown, when it is. */
  readonly note: string | undefined
}

/** A shard's lease as the lease table holds it. */
export interface ShardStatus {
  readonly shardId: string
  readonly streamArn: string
  /** Whether the shard belongs to the table's current stream (leases of older streams stay until their TTL). */
  readonly currentStream: boolean
  readonly owner: string | undefined
  readonly epoch: number
  readonly leaseExpiresAt: number
  readonly leaseLive: boolean
  readonly checkpoint: string | undefined
  readonly finished: boolean
  readonly lag: ShardLag | undefined
}

/** Everything `status` reports; plain data, so `JSON.stringify` gives the `-o json` output. */
export interface StatusReport {
  readonly checkedAt: number
  readonly namespace: string
  readonly storeId: string
  readonly table: {
    readonly name: string
    readonly exists: boolean
    readonly status: string | undefined
    readonly billingMode: string | undefined
    readonly readCapacityUnits: number | undefined
    readonly writeCapacityUnits: number | undefined
    readonly itemCountEstimate: number | undefined
    readonly sizeBytes: number | undefined
    readonly deletionProtection: boolean | undefined
    readonly encryption: string | undefined
  }
  readonly stream: {
    readonly enabled: boolean
    readonly viewType: string | undefined
    readonly arn: string | undefined
    readonly status: string | undefined
    readonly shards: { readonly total: number; readonly open: number } | undefined
  }
  readonly ttl: { readonly status: string; readonly attribute: string | undefined; readonly ok: boolean } | undefined
  readonly workers: {
    readonly leaseTable: string
    readonly leaseTableExists: boolean
    readonly group: string
    readonly live: ReadonlyArray<{ readonly owner: string; readonly expiresAt: number }>
    readonly shards: ReadonlyArray<ShardStatus>
    /** Open shards of the current stream that no lease names yet (no worker has seen them). */
    readonly unleasedShards: ReadonlyArray<string>
  }
  readonly quarantine: { readonly recorded: false; readonly note: string }
}

const quarantineNote = "quarantined keys are held in the worker's memory, not in DynamoDB: see the worker's " +
  "status line or its metrics (dynastate_worker_quarantined_keys)"

const allShards = (arn: string) =>
  Effect.gen(function*() {
    const streams = yield* StreamsApi
    const shards: Array<ShardDescription> = []
    let start: string | undefined
    let status: string | undefined
    do {
      const page = yield* streams.describeStream(arn, start)
      status = page.status
      shards.push(...page.shards)
      start = page.lastEvaluatedShardId
    } while (start !== undefined)
    return { status, shards }
  })

/** Pages read after a checkpoint before giving up on finding a pending record (an open shard may have empty pages). */
const lagPages = 3

const measureLag = (arn: string, lease: ProjectionLeases.ListedLease, now: number) =>
  Effect.gen(function*() {
    const streams = yield* StreamsApi
    let iterator = yield* streams.getShardIterator(
      arn,
      lease.shardId,
      lease.checkpoint === undefined ? { _tag: "TrimHorizon" } : { _tag: "After", sequenceNumber: lease.checkpoint }
    )
    for (let page = 0; page < lagPages && iterator !== undefined; page++) {
      const records = yield* streams.getRecords(lease.shardId, iterator)
      const first = records.records[0]
      if (first !== undefined) {
        return {
          millis: first.approximateCreation === undefined ? undefined : Math.max(0, now - first.approximateCreation),
          pending: records.records.length,
          more: records.nextIterator !== undefined,
          note: undefined
        } satisfies ShardLag
      }
      iterator = records.nextIterator
    }
    return { millis: 0, pending: 0, more: false, note: undefined } satisfies ShardLag
  }).pipe(
    Effect.catch((error) =>
      Effect.succeed<ShardLag>({
        millis: undefined,
        pending: undefined,
        more: false,
        note: error._tag === "TrimmedData"
          ? "records after the checkpoint were trimmed (older than 24 h): the worker rebuilds its projections"
          : `cannot read the shard: ${error._tag}${"reason" in error ? ` (${error.reason})` : ""}`
      })
    )
  )

/** Reads the status of the target's store; fails only when DynamoDB cannot be asked at all. */
export const status = Effect.fn("Status.status")(function*(
  target: Target
): Effect.fn.Return<StatusReport, AdminError, Dynamo | StreamsApi> {
  const now = yield* Clock.currentTimeMillis
  const table = yield* TableAdmin.describeTable(target.table)
  const ttl = table === undefined ? undefined : yield* TableAdmin.describeTtl(target.table)
  const streamArn = table?.stream.arn
  const stream = streamArn === undefined
    ? undefined
    : yield* allShards(streamArn).pipe(Effect.catch(() => Effect.succeed(undefined)))
  const leaseTable = yield* TableAdmin.describeTable(target.leaseTable)
  const listing = leaseTable === undefined
    ? { leases: [], workers: [] }
    : yield* ProjectionLeases.list({ table: target.leaseTable, group: target.leaseGroup })
  const shards = yield* Effect.forEach(listing.leases, (lease) =>
    Effect.gen(function*() {
      const currentStream = lease.arn === streamArn
      const lag = currentStream && !lease.finished ? yield* measureLag(lease.arn, lease, now) : undefined
      return {
        shardId: lease.shardId,
        streamArn: lease.arn,
        currentStream,
        owner: lease.owner,
        epoch: lease.epoch,
        leaseExpiresAt: lease.expiresAt,
        leaseLive: lease.owner !== undefined && lease.expiresAt > now,
        checkpoint: lease.checkpoint,
        finished: lease.finished,
        lag
      } satisfies ShardStatus
    }), { concurrency: 4 })
  const leased = new Set(shards.filter((shard) => shard.currentStream).map((shard) => shard.shardId))
  return {
    checkedAt: now,
    namespace: target.namespace,
    storeId: target.storeId,
    table: {
      name: target.table,
      exists: table !== undefined,
      status: table?.status,
      billingMode: table?.billingMode,
      readCapacityUnits: table?.readCapacityUnits,
      writeCapacityUnits: table?.writeCapacityUnits,
      itemCountEstimate: table?.itemCount,
      sizeBytes: table?.sizeBytes,
      deletionProtection: table?.deletionProtection,
      encryption: table === undefined
        ? undefined
        : table.sse.status === "DEFAULT"
        ? "AWS owned key"
        : `${table.sse.type ?? "KMS"} ${table.sse.kmsKeyArn ?? ""}`.trim()
    },
    stream: {
      enabled: table?.stream.enabled ?? false,
      viewType: table?.stream.viewType,
      arn: streamArn,
      status: stream?.status,
      shards: stream === undefined
        ? undefined
        : {
          total: stream.shards.length,
          open: stream.shards.filter((shard) => shard.endingSequenceNumber === undefined).length
        }
    },
    ttl: ttl === undefined
      ? undefined
      : { ...ttl, ok: ttl.status === "ENABLED" && ttl.attribute === ttlAttribute },
    workers: {
      leaseTable: target.leaseTable,
      leaseTableExists: leaseTable !== undefined,
      group: target.leaseGroup,
      live: listing.workers
        .filter((worker) => worker.expiresAt > now)
        .map((worker) => ({ owner: worker.owner, expiresAt: worker.expiresAt })),
      shards,
      unleasedShards: (stream?.shards ?? [])
        .filter((shard) => shard.endingSequenceNumber === undefined && !leased.has(shard.shardId))
        .map((shard) => shard.shardId)
    },
    quarantine: { recorded: false, note: quarantineNote }
  }
})

const iso = (millis: number) => new Date(millis).toISOString()

const bytes = (size: number) =>
  size < 1024
    ? `${size} B`
    : size < 1024 ** 2
    ? `${(size / 1024).toFixed(1)} KiB`
    : `${(size / 1024 ** 2).toFixed(1)} MiB`

const lagText = (lag: ShardLag | undefined) =>
  lag === undefined
    ? "-"
    : lag.note !== undefined
    ? lag.note
    : lag.millis === 0
    ? "at the tip"
    : `${lag.millis ?? "?"} ms behind (${lag.pending}${lag.more ? "+" : ""} records pending)`

/** The report as text for a terminal, one fact per line. */
export const render = (report: StatusReport): string => {
  const lines: Array<string> = []
  const row = (label: string, text: string) => lines.push(`${label.padEnd(11)}${text}`)
  const { table } = report
  if (!table.exists) {
    row("table", `${table.name}: missing (create it with \`dynastate provision\`)`)
  } else {
    const capacity = table.billingMode === "provisioned"
      ? `provisioned ${table.readCapacityUnits} RCU / ${table.writeCapacityUnits} WCU`
      : "on demand"
    row(
      "table",
      `${table.name} ${table.status}, ${capacity}, ~${table.itemCountEstimate ?? 0} items, ` +
        `${bytes(table.sizeBytes ?? 0)} (estimates), deletion protection ${table.deletionProtection ? "on" : "off"}, ` +
        `encrypted at rest with ${table.encryption}`
    )
  }
  row("namespace", `${report.namespace} (values bound to store id ${report.storeId})`)
  const { stream } = report
  row(
    "stream",
    !stream.enabled
      ? "disabled: the worker and watches need one (`dynastate provision`)"
      : stream.shards === undefined
      ? `${stream.viewType} (its shards could not be listed)`
      : `${stream.viewType}, ${stream.shards.total} shard${stream.shards.total === 1 ? "" : "s"} ` +
        `(${stream.shards.open} open)`
  )
  if (report.ttl !== undefined) {
    row(
      "ttl",
      `${report.ttl.status}${report.ttl.attribute ? ` on ${report.ttl.attribute}` : ""}` +
        (report.ttl.ok ? "" : ` (expected ENABLED on ${ttlAttribute}: \`dynastate provision\`)`)
    )
  }
  const { workers } = report
  if (!workers.leaseTableExists) {
    row("workers", `none has run (${workers.leaseTable} does not exist)`)
  } else {
    row(
      "workers",
      `${workers.live.length} live in group ${workers.group}` +
        (workers.live.length === 0
          ? ""
          : `: ${workers.live.map((worker) => `${worker.owner} (until ${iso(worker.expiresAt)})`).join(", ")}`)
    )
    for (const shard of workers.shards.filter((shard) => shard.currentStream)) {
      const owner = shard.finished
        ? "finished"
        : shard.owner === undefined
        ? "unowned"
        : `${shard.owner} epoch ${shard.epoch}${shard.leaseLive ? "" : " (lease expired)"}`
      row("shard", `${shard.shardId}: ${owner}, checkpoint ${shard.checkpoint ?? "none"}, ${lagText(shard.lag)}`)
    }
    const old = workers.shards.filter((shard) => !shard.currentStream).length
    if (old > 0) row("", `${old} leases of earlier streams (removed by TTL)`)
    if (workers.unleasedShards.length > 0) row("", `${workers.unleasedShards.length} open shards no worker leased yet`)
  }
  row("quarantine", report.quarantine.note)
  return lines.join("\n")
}
