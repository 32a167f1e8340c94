/**
 * An HTTP proxy in front of DynamoDB Local that counts the readers of the table's stream: one listening port per
 * process, so every request is known by the process that sent it. It reads the DynamoDB Streams calls as they
 * pass: `GetShardIterator` names the shard and starts a reading (a chain of iterators), `GetRecords` continues the
 * reading its iterator belongs to (each response's next iterator joins the chain). A reading lasts from its
 * iterator to its last answered `GetRecords`; readings of a shard whose spans overlap ran at the same time (one
 * replaced by its process, after a refusal or a hand-off, ends before the next begins), so the proxy tells both
 * which processes read a shard and how many readings of it ran at once.
 */
import * as http from "node:http"
import type * as net from "node:net"

/** What the proxy saw of one shard. */
export interface ShardReaders {
  /** The processes that sent `GetShardIterator` or `GetRecords` for it. */
  readonly processes: Set<string>
  /** The most readings whose spans overlap. */
  readonly maxConcurrent: number
  /** Each reading: its process and span (epoch ms). */
  readonly readings: ReadonlyArray<{ readonly process: string; readonly first: number; readonly last: number }>
}

/** A running proxy. */
export interface StreamProxy {
  /** A listening port for one process, named `name`; its endpoint URL. */
  readonly endpointFor: (name: string) => Promise<string>
  /** Per shard id, what was seen. */
  readonly shards: ReadonlyMap<string, ShardReaders>
  /** Per process, when it last sent `GetRecords` (epoch ms). */
  readonly lastPoll: ReadonlyMap<string, number>
  readonly close: () => Promise<void>
}

interface Reading {
  readonly process: string
  readonly shardId: string
  readonly first: number
  last: number
}

/** The most spans that overlap at one moment. */
const mostOverlapping = (spans: ReadonlyArray<Reading>): number => {
  // At equal times a start counts before an end: spans that touch overlap.
  const edges = spans.flatMap((span) => [[span.first, 1], [span.last, -1]] as const)
    .sort((a, b) => a[0] - b[0] || b[1] - a[1])
  let open = 0
  let most = 0
  for (const [, step] of edges) {
    open += step
    most = Math.max(most, open)
  }
  return most
}

/** Starts a proxy to `target` (DynamoDB Local's URL). */
export const start = (target: string): StreamProxy => {
  const upstream = new URL(target)
  const servers: Array<http.Server> = []
  const shards = new Map<string, ShardReaders>()
  const readings: Array<Reading> = []
  const byIterator = new Map<string, Reading>()
  const lastPoll = new Map<string, number>()

  const shardOf = (shardId: string): ShardReaders => {
    const found = shards.get(shardId)
    if (found !== undefined) return found
    const fresh: ShardReaders = {
      processes: new Set(),
      get maxConcurrent() {
        return mostOverlapping(readings.filter((reading) => reading.shardId === shardId))
      },
      get readings() {
        return readings.filter((reading) => reading.shardId === shardId)
      }
    }
    shards.set(shardId, fresh)
    return fresh
  }

  /** Reads a Streams call and its answer; everything else passes untouched. */
  const observe = (process: string, operation: string, request: string, status: number, response: string) => {
    if (operation === "GetRecords") lastPoll.set(process, Date.now())
    try {
      // A refused call (expired iterator, trimmed data, throttling) continues no reading: its process asks for a
      // new iterator, which starts another.
      if (status >= 400) return
      if (operation === "GetShardIterator") {
        const { ShardId } = JSON.parse(request) as { ShardId: string }
        shardOf(ShardId).processes.add(process)
        const { ShardIterator } = JSON.parse(response) as { ShardIterator?: string }
        const now = Date.now()
        const reading: Reading = { process, shardId: ShardId, first: now, last: now }
        readings.push(reading)
        if (ShardIterator !== undefined) byIterator.set(ShardIterator, reading)
      } else if (operation === "GetRecords") {
        const { ShardIterator } = JSON.parse(request) as { ShardIterator: string }
        const reading = byIterator.get(ShardIterator)
        if (reading === undefined) return
        byIterator.delete(ShardIterator)
        shardOf(reading.shardId).processes.add(process)
        reading.last = Date.now()
        const { NextShardIterator } = JSON.parse(response) as { NextShardIterator?: string }
        if (NextShardIterator !== undefined) byIterator.set(NextShardIterator, reading)
      }
    } catch {
      // An error answer (not JSON of the call's shape) continues no reading.
    }
  }

  const endpointFor = (name: string) =>
    new Promise<string>((resolve) => {
      const server = http.createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          const body = Buffer.concat(chunks)
          const operation = String(request.headers["x-amz-target"] ?? "").split(".")[1] ?? ""
          const forwarded = http.request(
            {
              host: upstream.hostname,
              port: upstream.port,
              method: request.method,
              path: request.url,
              headers: request.headers
            },
            (answer) => {
              const parts: Array<Buffer> = []
              answer.on("data", (chunk: Buffer) => parts.push(chunk))
              answer.on("end", () => {
                const answered = Buffer.concat(parts)
                observe(name, operation, body.toString("utf8"), answer.statusCode ?? 500, answered.toString("utf8"))
                response.writeHead(answer.statusCode ?? 500, answer.headers)
                response.end(answered)
              })
            }
          )
          forwarded.on("error", () => response.destroy())
          forwarded.end(body)
        })
      })
      servers.push(server)
      server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`))
    })

  return {
    endpointFor,
    shards,
    lastPoll,
    close: () =>
      Promise.all(servers.map((server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        })
      )).then(() => undefined)
  }
}
