/**
 * A TCP fault proxy for the campaign: one per process, on a loopback port, forwarding to DynamoDB Local.
 * It reads no HTTP, only the turns of the conversation: bytes from the client after bytes from the server start
 * a request, bytes from the server after bytes from the client start its response. On those turns it injects,
 * as the seeded PRNG says:
 *
 * - `latency`: each chunk held back up to `maxLatencyMillis` (order kept);
 * - `reset`: the connection reset before the request is forwarded (nothing applied, the client cannot know);
 * - `blackhole`: the request swallowed, the connection held silent for a while, then reset;
 * - `lostResponse`: the request forwarded and applied, the connection cut before the response reaches the client;
 * - `partition`: for a while every connection of the process is reset and new ones refused.
 *
 * No fault delivers a request later than `maxLatencyMillis` after the client sent it (a swallowed request is never
 * forwarded), which is the late-delivery margin the campaign's fence settings are argued from.
 */
import * as net from "node:net"
import type { Prng } from "./Prng.ts"

/** The kinds of fault the proxy injects. */
export type FaultKind = "latency" | "reset" | "blackhole" | "lostResponse" | "partition"

/** The kinds, for reports. */
export const faultKinds: ReadonlyArray<FaultKind> = ["latency", "reset", "blackhole", "lostResponse", "partition"]

/** How often each fault happens: per chunk for latency, per request or response for the others. */
export interface FaultRates {
  readonly latency: number
  readonly maxLatencyMillis: number
  readonly reset: number
  readonly blackhole: number
  readonly maxBlackholeMillis: number
  readonly lostResponse: number
}

/** No faults: what the proxy does once the campaign heals. */
export const noFaults: FaultRates = {
  latency: 0,
  maxLatencyMillis: 0,
  reset: 0,
  blackhole: 0,
  maxBlackholeMillis: 0,
  lostResponse: 0
}

/** A running proxy. */
export interface FaultProxy {
  readonly port: number
  /** Faults injected so far, by kind. */
  readonly counts: Readonly<Record<FaultKind, number>>
  readonly setRates: (rates: FaultRates) => void
  /** Cuts the process off: resets its connections and refuses new ones until {@link FaultProxy.heal}. */
  readonly partition: () => void
  readonly heal: () => void
  readonly close: () => Promise<void>
}

interface Pipe {
  readonly client: net.Socket
  readonly upstream: net.Socket
  /** Which side spoke last: a turn starts a request (client) or a response (server). */
  turn: "client" | "server"
  /** Set once a fault decided this connection's end: nothing more is forwarded. */
  doomed: boolean
  readonly released: { toServer: number; toClient: number }
  readonly timers: Set<ReturnType<typeof setTimeout>>
}

/** Starts a proxy on 127.0.0.1 (any free port) to `target` (host and port of DynamoDB Local). */
export const start = (
  target: { readonly host: string; readonly port: number },
  prng: Prng,
  initial: FaultRates = noFaults
): Promise<FaultProxy> => {
  let rates = initial
  let partitioned = false
  const counts: Record<FaultKind, number> = { latency: 0, reset: 0, blackhole: 0, lostResponse: 0, partition: 0 }
  const pipes = new Set<Pipe>()

  const kill = (pipe: Pipe) => {
    pipe.doomed = true
    for (const timer of pipe.timers) clearTimeout(timer)
    pipe.timers.clear()
    pipe.client.resetAndDestroy()
    pipe.upstream.destroy()
    pipes.delete(pipe)
  }

  const later = (pipe: Pipe, millis: number, run: () => void) => {
    const timer = setTimeout(() => {
      pipe.timers.delete(timer)
      run()
    }, millis)
    pipe.timers.add(timer)
  }

  // Order is kept per direction: a chunk is never released before the one before it.
  const forward = (pipe: Pipe, direction: "toServer" | "toClient", chunk: Buffer) => {
    const now = Date.now()
    let delay = 0
    if (rates.latency > 0 && prng.chance(rates.latency)) {
      delay = prng.int(1, Math.max(1, rates.maxLatencyMillis))
      counts.latency++
    }
    const at = Math.max(now + delay, pipe.released[direction])
    pipe.released[direction] = at
    const write = () => {
      if (pipe.doomed) return
      if (direction === "toServer") pipe.upstream.write(chunk)
      else pipe.client.write(chunk)
    }
    if (at <= now) write()
    else later(pipe, at - now, write)
  }

  const server = net.createServer((client) => {
    if (partitioned) {
      client.resetAndDestroy()
      return
    }
    const upstream = net.connect(target.port, target.host)
    const pipe: Pipe = {
      client,
      upstream,
      turn: "server",
      doomed: false,
      released: { toServer: 0, toClient: 0 },
      timers: new Set()
    }
    pipes.add(pipe)
    client.on("data", (chunk: Buffer) => {
      if (pipe.doomed) return
      if (pipe.turn === "server") {
        pipe.turn = "client"
        if (prng.chance(rates.reset)) {
          counts.reset++
          kill(pipe)
          return
        }
        if (prng.chance(rates.blackhole)) {
          counts.blackhole++
          pipe.doomed = true
          later(pipe, prng.int(1, Math.max(1, rates.maxBlackholeMillis)), () => kill(pipe))
          return
        }
      }
      forward(pipe, "toServer", chunk)
    })
    upstream.on("data", (chunk: Buffer) => {
      if (pipe.doomed) return
      if (pipe.turn === "client") {
        pipe.turn = "server"
        if (prng.chance(rates.lostResponse)) {
          counts.lostResponse++
          kill(pipe)
          return
        }
      }
      forward(pipe, "toClient", chunk)
    })
    const end = () => {
      if (!pipe.doomed) kill(pipe)
    }
    client.on("error", end)
    upstream.on("error", end)
    client.on("close", end)
    upstream.on("close", end)
  })

  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as net.AddressInfo
      resolve({
        port: address.port,
        counts,
        setRates: (next) => {
          rates = next
        },
        partition: () => {
          if (partitioned) return
          partitioned = true
          counts.partition++
          for (const pipe of [...pipes]) kill(pipe)
        },
        heal: () => {
          partitioned = false
        },
        close: () =>
          new Promise<void>((done) => {
            for (const pipe of [...pipes]) kill(pipe)
            server.close(() => done())
          })
      })
    })
  })
}
