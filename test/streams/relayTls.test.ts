import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Option, Stream } from "effect"
import * as path from "node:path"
import * as RelayTls from "../../src/infra/streams/RelayTls.ts"
import * as WatchRpc from "../../src/infra/streams/WatchRpc.ts"
import { freePort } from "../support/FreePort.ts"
import { changes, describeEvent, startWatch } from "../support/Watching.ts"
import { eventually } from "./Harness.ts"
import { eventuallyEffect, freshTable, openPlainStore, quiet, relayedStore, startRelay } from "./RelayHarness.ts"

const fixture = (name: string) => Option.some(path.join(import.meta.dirname, "..", "fixtures", "relay-tls", name))
const none = Option.none<string>()
const tlsOf = (cert: string | undefined, key: string | undefined, ca: string | undefined) =>
  RelayTls.load({
    cert: cert === undefined ? none : fixture(cert),
    key: key === undefined ? none : fixture(key),
    ca: ca === undefined ? none : fixture(ca)
  }).pipe(Effect.orDie)

const bytes = (text: string) => new TextEncoder().encode(text)

/** Whether a client with this TLS (or none) gets the worker's `Ready`; false when the channel is refused. */
const reachesRelay = (port: number, location: { table: string; namespace: string }, tls?: RelayTls.RelayTls) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* WatchRpc.client({ host: "127.0.0.1", port }, tls)
    const first = yield* client.Watch({ table: location.table, namespace: location.namespace }).pipe(
      Stream.runHead,
      Effect.timeout("8 seconds")
    )
    return Option.isSome(first) && first.value._tag === "Ready"
  })).pipe(Effect.exit, Effect.map((exit) => Exit.isSuccess(exit) && exit.value))

describe("the watch relay over mutual TLS", () => {
  it.live("an application holding a certificate the worker's CA signed watches through it, values decrypted, no reading of its own", () =>
    Effect.gen(function*() {
      const location = yield* freshTable
      const port = yield* freePort
      const { relay } = yield* startRelay(location, port, 256, yield* tlsOf("worker.pem", "worker.key", "ca.pem"))
      const { counts, store } = yield* relayedStore(location, port, yield* tlsOf("app.pem", "app.key", "ca.pem"))
      const { watching } = yield* startWatch(store)
      expect(yield* eventually(() => watching.events.length > 0)).toBe(true)
      expect(watching.events[0]).toEqual({ _tag: "Init" })
      expect((yield* relay.status).subscribers).toBe(1)
      yield* (yield* openPlainStore(location)).put({ key: "/secure", value: bytes("sealed in transit") })
      expect(yield* eventually(() => changes(watching.events).length >= 1, 10_000)).toBe(true)
      expect(changes(watching.events).map(describeEvent)).toEqual(["Put /secure#1=sealed in transit"])
      expect(watching.error).toBeUndefined()
      expect(counts.getRecords).toBe(0)
    }))

  it.live("the worker refuses plain TCP, clients without a certificate and certificates of another CA; an application refuses a worker its CA did not sign", () =>
    Effect.gen(function*() {
      const location = yield* freshTable
      const port = yield* freePort
      yield* startRelay(location, port, 256, yield* tlsOf("worker.pem", "worker.key", "ca.pem"))
      expect(yield* reachesRelay(port, location, yield* tlsOf("app.pem", "app.key", "ca.pem"))).toBe(true)
      expect(yield* reachesRelay(port, location)).toBe(false)
      expect(yield* reachesRelay(port, location, yield* tlsOf(undefined, undefined, "ca.pem"))).toBe(false)
      expect(yield* reachesRelay(port, location, yield* tlsOf("rogue-app.pem", "rogue-app.key", "ca.pem"))).toBe(false)
      expect(yield* reachesRelay(port, location, yield* tlsOf("app.pem", "app.key", "rogue-ca.pem"))).toBe(false)
    }))

  it.live("an application the worker refuses reads the stream itself and misses nothing", () =>
    Effect.gen(function*() {
      const location = yield* freshTable
      const port = yield* freePort
      const { relay } = yield* startRelay(location, port, 256, yield* tlsOf("worker.pem", "worker.key", "ca.pem"))
      const rogue = yield* tlsOf("rogue-app.pem", "rogue-app.key", "ca.pem")
      const { counts, store } = yield* relayedStore(location, port, rogue)
      const { watching } = yield* startWatch(store)
      expect(yield* eventually(() => watching.events.length > 0)).toBe(true)
      yield* (yield* openPlainStore(location)).put({ key: "/k", value: bytes("v") })
      expect(yield* eventually(() => changes(watching.events).length >= 1, 10_000)).toBe(true)
      expect(changes(watching.events).map(describeEvent)).toEqual(["Put /k#1=v"])
      expect(counts.getRecords).toBeGreaterThan(0)
      expect(yield* eventuallyEffect(Effect.map(quiet(counts), (q) => !q), 3_000)).toBe(true)
      expect((yield* relay.status).subscribers).toBe(0)
    }))
})
