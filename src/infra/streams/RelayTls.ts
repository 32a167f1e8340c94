/**
 * TLS for the watch relay (see `WatchRpc`): what secures the channel between a worker serving watches and the
 * application processes reading through it. The relay carries every stored item of a namespace as the stream brings
 * it: values stay encrypted, but keys (unless sealed), revisions, expiries and the rhythm of writes do not, and a
 * peer that could pose as the worker could withhold or replay changes. So beyond one machine the channel is TLS,
 * and a worker given a CA accepts only clients holding a certificate that CA signed (mutual TLS).
 *
 * The configuration names files (`watch_tls_cert`, `watch_tls_key`, `watch_tls_ca`, PEM); they are read and checked
 * once, when a worker or store starts, so a wrong path or a file that is no certificate is a `ConfigInvalid` naming
 * the key rather than a handshake failing later.
 */
import { Effect, Option, Redacted } from "effect"
import { createPrivateKey, X509Certificate } from "node:crypto"
import { readFile } from "node:fs/promises"
import { isIP } from "node:net"
import type * as Tls from "node:tls"
import { ConfigInvalid } from "../config/ConfigInvalid.ts"
import type { ConfigProblem } from "../config/ConfigInvalid.ts"

/** TLS material, PEM text: `cert` and `key` identify this side, `ca` is the authority the other side must prove. */
export interface RelayTls {
  /** This side's certificate chain (the worker's server certificate, or an application's client certificate). */
  readonly cert?: string | undefined
  /** The private key of `cert`. */
  readonly key?: Redacted.Redacted<string> | undefined
  /**
   * The authority the peer's certificate must be signed by: for an application, the worker's (instead of the
   * system's roots); for a worker, the applications' (given, clients without such a certificate are refused).
   */
  readonly ca?: string | undefined
}

/** Where the configuration says the TLS material is (file paths), each absent or named. */
export interface RelayTlsFiles {
  readonly cert: Option.Option<string>
  readonly key: Option.Option<string>
  readonly ca: Option.Option<string>
}

/** The configuration keys naming the files, by part. */
export const tlsFields = { cert: "watch_tls_cert", key: "watch_tls_key", ca: "watch_tls_ca" } as const

/** A host as written (`[::1]` included) without the brackets an IPv6 address may carry. */
const unbracketed = (host: string): string => host.replace(/^\[|\]$/g, "")

/** Whether a host is this machine only (a loopback address or `localhost`): no one else can reach or pose as it. */
export const isLoopback = (host: string): boolean => {
  const bare = unbracketed(host).toLowerCase()
  if (bare === "localhost" || bare === "::1") return true
  return isIP(bare) === 4 && bare.startsWith("127.")
}

const problem = (part: keyof typeof tlsFields, path: string, reason: string): ConfigProblem => ({
  field: `storage.${tlsFields[part]}`,
  reason: `${JSON.stringify(path)} ${reason}`
})

const readPem = (part: keyof typeof tlsFields, path: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (error) => problem(part, path, `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`)
  })

/** Checks that the text is what the part needs; the reason when it is not. Never quotes a key's text. */
const checkPem = (part: keyof typeof tlsFields, text: string): string | undefined => {
  try {
    if (part === "key") createPrivateKey(text)
    else new X509Certificate(text)
    return undefined
  } catch {
    return part === "key" ? "holds no PEM private key" : "holds no PEM certificate"
  }
}

/**
 * The TLS material the files name, read and checked: undefined when none is named. Every unreadable or wrong file
 * is reported at once, as `ConfigInvalid`; a private key's content never appears in the error.
 */
export const load = Effect.fn("RelayTls.load")(function*(files: RelayTlsFiles) {
  const problems: Array<ConfigProblem> = []
  const loaded: { cert?: string; key?: string; ca?: string } = {}
  for (const part of ["cert", "key", "ca"] as const) {
    const path = files[part]
    if (Option.isNone(path)) continue
    const text = yield* readPem(part, path.value).pipe(
      Effect.catch((found) => Effect.sync(() => void problems.push(found)))
    )
    if (text === undefined) continue
    const wrong = checkPem(part, text)
    if (wrong !== undefined) problems.push(problem(part, path.value, wrong))
    else loaded[part] = text
  }
  const [first, ...rest] = problems
  if (first !== undefined) return yield* ConfigInvalid.of([first, ...rest])
  if (loaded.cert === undefined && loaded.key === undefined && loaded.ca === undefined) return undefined
  const tls: RelayTls = {
    cert: loaded.cert,
    key: loaded.key === undefined ? undefined : Redacted.make(loaded.key),
    ca: loaded.ca
  }
  return tls
})

// TLS 1.3 only: both ends are dynastate on Node 24, so nothing older needs serving.
const minVersion = "TLSv1.3"

/** A worker's listener options: its certificate, and (with a CA) client certificates required and checked. */
export const serverOptions = (tls: RelayTls): Tls.TlsOptions => ({
  cert: tls.cert,
  key: tls.key === undefined ? undefined : Redacted.value(tls.key),
  ca: tls.ca,
  requestCert: tls.ca !== undefined,
  rejectUnauthorized: tls.ca !== undefined,
  minVersion
})

/** An application's connection options: the worker's certificate checked (against `ca`, else the system's roots). */
export const clientOptions = (tls: RelayTls, host: string): Tls.ConnectionOptions => ({
  cert: tls.cert,
  key: tls.key === undefined ? undefined : Redacted.value(tls.key),
  ca: tls.ca,
  rejectUnauthorized: true,
  // SNI takes host names only; an address is still checked against the certificate's IP names.
  ...(isIP(unbracketed(host)) === 0 ? { servername: host } : {}),
  minVersion
})
