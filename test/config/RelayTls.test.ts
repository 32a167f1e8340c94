import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as RelayTls from "../../src/infra/streams/RelayTls.ts"

const fixtures = path.join(import.meta.dirname, "..", "fixtures", "relay-tls")
const fixture = (name: string) => path.join(fixtures, name)
const files = (parts: { cert?: string; key?: string; ca?: string }): RelayTls.RelayTlsFiles => ({
  cert: Option.fromUndefinedOr(parts.cert),
  key: Option.fromUndefinedOr(parts.key),
  ca: Option.fromUndefinedOr(parts.ca)
})

describe("the watch relay's TLS files", () => {
  it.effect("are read and checked once: a certificate, its key (kept redacted) and a CA", () =>
    Effect.gen(function*() {
      const tls = yield* RelayTls.load(
        files({ cert: fixture("worker.pem"), key: fixture("worker.key"), ca: fixture("ca.pem") })
      )
      expect(tls?.cert).toBe(fs.readFileSync(fixture("worker.pem"), "utf8"))
      expect(tls?.ca).toBe(fs.readFileSync(fixture("ca.pem"), "utf8"))
      expect(Redacted.isRedacted(tls?.key)).toBe(true)
      expect(String(tls?.key)).not.toContain("PRIVATE KEY")
      expect(yield* RelayTls.load(files({}))).toBeUndefined()
      expect(yield* RelayTls.load(files({ ca: fixture("ca.pem") }))).toEqual({
        cert: undefined,
        key: undefined,
        ca: fs.readFileSync(fixture("ca.pem"), "utf8")
      })
    }))

  it.effect("every unreadable or wrong file is reported at once, naming its key and never a key's content", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(RelayTls.load(files({
        cert: fixture("worker.key"),
        key: fixture("worker.pem"),
        ca: fixture("missing.pem")
      })))
      expect(error._tag).toBe("ConfigInvalid")
      expect(error.all.map((problem) => problem.field)).toEqual([
        "storage.watch_tls_cert",
        "storage.watch_tls_key",
        "storage.watch_tls_ca"
      ])
      expect(error.message).toContain("holds no PEM certificate")
      expect(error.message).toContain("holds no PEM private key")
      expect(error.message).toContain("cannot be read (ENOENT)")
      expect(error.message).not.toContain("BEGIN")
    }))

  it("loopback hosts are this machine only", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"]) {
      expect([host, RelayTls.isLoopback(host)]).toEqual([host, true])
    }
    for (const host of ["0.0.0.0", "::", "10.0.0.1", "worker", "localhost.example.com", "128.0.0.1"]) {
      expect([host, RelayTls.isLoopback(host)]).toEqual([host, false])
    }
  })

  it("a worker with a CA requires client certificates; an application always checks the worker", () => {
    const worker = RelayTls.serverOptions({ cert: "c", key: Redacted.make("k"), ca: "a" })
    expect([worker.requestCert, worker.rejectUnauthorized, worker.key, worker.minVersion]).toEqual([
      true,
      true,
      "k",
      "TLSv1.3"
    ])
    expect(RelayTls.serverOptions({ cert: "c", key: Redacted.make("k") }).requestCert).toBe(false)
    const app = RelayTls.clientOptions({ ca: "a" }, "worker.internal")
    expect([app.rejectUnauthorized, app.servername]).toEqual([true, "worker.internal"])
    expect(RelayTls.clientOptions({ ca: "a" }, "10.0.0.1").servername).toBeUndefined()
  })
})
