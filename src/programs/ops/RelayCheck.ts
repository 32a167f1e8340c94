/**
 * `doctor`'s check of the worker's watch relay (`watch_endpoint`): whether this process would watch through the
 * worker or fall back to reading the stream itself. A process falls back quietly but for a warning in its log (see
 * the store's `WatchSource`), so this is where an operator learns why: no worker listening, the wrong namespace,
 * a certificate refused, a worker not trusted.
 */
import { Cause, Effect, Option, Stream } from "effect"
import type { RelayAddress } from "../../infra/streams/RelayAddress.ts"
import * as RelayTls from "../../infra/streams/RelayTls.ts"
import * as WatchRpc from "../../infra/streams/WatchRpc.ts"
import { fail, pass, skip, warn } from "./Checks.ts"
import type { Target } from "./Target.ts"

/** Where the configuration points watches (`watch_endpoint`), with the relay's TLS files. */
export interface RelayCheckOptions {
  readonly endpoint: Option.Option<RelayAddress>
  readonly tls: RelayTls.RelayTlsFiles
  /** How long the worker may take to say `Ready` (default 10 s). */
  readonly readyTimeoutMillis?: number | undefined
}

const id = "relay"

/**
 * Connects to the relay as a watching process would and asks for the target's namespace: passes on the worker's
 * `Ready`; fails, with the fix, when the files are wrong, nothing answers, the channel is refused or the worker
 * serves another namespace; warns when the worker answers but is not ready in time. Skipped without an endpoint.
 */
export const check = Effect.fn("RelayCheck.check")(function*(target: Target, options: RelayCheckOptions) {
  if (Option.isNone(options.endpoint)) {
    return skip(id, "watch_endpoint is not set: each watching process reads the stream itself")
  }
  const address = options.endpoint.value
  const where = `${address.host}:${address.port}`
  const loaded = yield* Effect.result(RelayTls.load(options.tls))
  if (loaded._tag === "Failure") {
    return fail(id, `the relay's TLS files: ${loaded.failure.message}`, "fix the files the watch_tls_* keys name")
  }
  const tls = loaded.success
  const channel = tls === undefined
    ? "plain TCP"
    : tls.cert === undefined
    ? "TLS"
    : "TLS, this process's certificate accepted"
  const readyTimeoutMillis = options.readyTimeoutMillis ?? 10_000
  const first = yield* Effect.scoped(Effect.gen(function*() {
    const client = yield* WatchRpc.client(address, tls)
    return yield* client.Watch({ table: target.table, namespace: target.namespace }).pipe(
      Stream.runHead,
      Effect.timeout(readyTimeoutMillis)
    )
  })).pipe(Effect.exit)
  if (first._tag === "Success") {
    return Option.isSome(first.value) && first.value.value._tag === "Ready"
      ? pass(id, `the worker's relay at ${where} serves namespace ${target.namespace} (${channel})`)
      : warn(
        id,
        `the worker's relay at ${where} took the watch but did not say Ready`,
        "look at the worker's log: its relay reader may be starting or unable to read the stream"
      )
  }
  const failure = Cause.findErrorOption(first.cause)
  if (Option.isSome(failure) && failure.value._tag === "RelayRefused") {
    return fail(
      id,
      failure.value.message,
      "point watch_endpoint at a worker of this table and namespace (each worker relays its own namespace)"
    )
  }
  if (Option.isSome(failure) && failure.value._tag === "TimeoutError") {
    return warn(
      id,
      `the worker's relay at ${where} did not say Ready within ${readyTimeoutMillis} ms`,
      "look at the worker's log: its relay reader may still be catching up with the stream"
    )
  }
  const reason = Cause.pretty(first.cause).split("\n")[0] ?? "no answer"
  return fail(
    id,
    `the worker's relay at ${where} does not serve (${reason}): watching processes read the stream themselves`,
    tls === undefined
      ? "start a worker with watch_port (and watch_host reachable from here), or point watch_endpoint at it"
      : "start a worker with watch_port and TLS (watch_tls_cert, watch_tls_key), check that watch_tls_ca signed " +
        "its certificate and that the worker's watch_tls_ca signed this process's (over TLS a refused certificate " +
        "shows as a closed connection)"
  )
})
