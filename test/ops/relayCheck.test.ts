import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as path from "node:path"
import * as RelayTls from "../../src/infra/streams/RelayTls.ts"
import * as RelayCheck from "../../src/programs/ops/RelayCheck.ts"
import * as Target from "../../src/programs/ops/Target.ts"
import { freshTable, startRelay } from "../streams/RelayHarness.ts"
import { freePort } from "../support/FreePort.ts"

const fixture = (name: string) => Option.some(path.join(import.meta.dirname, "..", "fixtures", "relay-tls", name))
const files = (cert?: string, key?: string, ca?: string): RelayTls.RelayTlsFiles => ({
  cert: cert === undefined ? Option.none() : fixture(cert),
  key: key === undefined ? Option.none() : fixture(key),
  ca: ca === undefined ? Option.none() : fixture(ca)
})
const endpoint = (port: number) => Option.some({ host: "127.0.0.1", port })

describe("doctor's check of the worker's watch relay", () => {
  it.live("passes when the worker serves the namespace; otherwise says why, with the fix", () =>
    Effect.gen(function*() {
      const location = yield* freshTable
      const target = Target.make(location.table, location.namespace)
      const port = yield* freePort
      const serverTls = yield* RelayTls.load(files("worker.pem", "worker.key", "ca.pem")).pipe(Effect.orDie)

      // Nothing listens yet.
      const nobody = yield* RelayCheck.check(target, { endpoint: endpoint(port), tls: files() })
      expect([nobody.verdict, nobody.fix]).toEqual(["fail", expect.stringContaining("watch_port")])

      yield* startRelay(location, port, 256, serverTls)
      const served = yield* RelayCheck.check(target, {
        endpoint: endpoint(port),
        tls: files("app.pem", "app.key", "ca.pem")
      })
      expect([served.verdict, served.detail]).toEqual([
        "pass",
        `the worker's relay at 127.0.0.1:${port} serves namespace ${location.namespace} (TLS, this process's ` +
        "certificate accepted)"
      ])

      const refused = yield* RelayCheck.check(target, {
        endpoint: endpoint(port),
        tls: files("rogue-app.pem", "rogue-app.key", "ca.pem")
      })
      expect([refused.verdict, refused.fix]).toEqual(["fail", expect.stringContaining("refused certificate")])

      const other = yield* RelayCheck.check(Target.make(location.table, "other"), {
        endpoint: endpoint(port),
        tls: files("app.pem", "app.key", "ca.pem")
      })
      expect([other.verdict, other.detail]).toEqual(["fail", expect.stringContaining("not other of")])

      const badFiles = yield* RelayCheck.check(target, { endpoint: endpoint(port), tls: files("app.key", "app.key") })
      expect([badFiles.verdict, badFiles.detail]).toEqual(["fail", expect.stringContaining("watch_tls_cert")])

      const none = yield* RelayCheck.check(target, { endpoint: Option.none(), tls: files() })
      expect(none.verdict).toBe("skip")
    }))
})
