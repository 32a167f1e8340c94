/** A loopback port free right now, for a test's listener or child process. */
import { Effect } from "effect"
import * as net from "node:net"

/** A port nothing listens on at the moment of asking (the OS picks it). */
export const freePort = Effect.callback<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})
