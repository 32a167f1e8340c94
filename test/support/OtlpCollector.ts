/**
 * A small local OpenTelemetry collector for tests: an HTTP server that records every OTLP POST (path and body), and
 * the span names of the OTLP/JSON traces it received.
 */
import { Effect } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/** One request the collector received. */
export interface Received {
  readonly path: string
  readonly body: string
}

/** The part of an OTLP/JSON traces payload the test reads. */
export interface TracesPayload {
  readonly resourceSpans: ReadonlyArray<{
    readonly scopeSpans: ReadonlyArray<{ readonly spans: ReadonlyArray<{ readonly name: string }> }>
  }>
}

/** A local OTLP collector while the scope lives: records every POST (path and JSON body). */
export const collector = Effect.acquireRelease(
  Effect.callback<
    { readonly url: string; readonly received: Array<Received>; server: http.Server }
  >(
    (resume) => {
      const received: Array<Received> = []
      const server = http.createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          if (request.method === "POST") {
            received.push({ path: request.url ?? "", body: Buffer.concat(chunks).toString("utf8") })
          }
          response.writeHead(200, { "content-type": "application/json" })
          response.end("{}")
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, received, server }))
      })
    }
  ),
  ({ server }) =>
    Effect.callback<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
)

/** The names of the spans in the traces requests received. */
export const spanNames = (received: ReadonlyArray<Received>): ReadonlyArray<string> =>
  received.filter((request) => request.path === "/v1/traces").flatMap((request) =>
    (JSON.parse(request.body) as TracesPayload).resourceSpans.flatMap((resource) =>
      resource.scopeSpans.flatMap((scope) => scope.spans.map((span) => span.name))
    )
  )
