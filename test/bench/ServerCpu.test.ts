import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { once } from "node:events"
import { existsSync } from "node:fs"
import { serverCpuMicros } from "../../bench/support/ServerCpu.ts"

describe.skipIf(!existsSync("/proc/self/stat"))("the bench's server CPU meter", () => {
  it("reads the CPU time a child of this process spent, and nothing when there is no such child", async () => {
    expect(serverCpuMicros("no-such-command")).toBeUndefined()
    // A child that spends about 300 ms of CPU, then waits to be read.
    const child = spawn(process.execPath, [
      "-e",
      "const end = Date.now() + 300; while (Date.now() < end); process.stdout.write('done'); setTimeout(() => {}, 10000)"
    ])
    try {
      await once(child.stdout, "data")
      // Node names its main thread, and so the process's command, "MainThread".
      const spent = serverCpuMicros("MainThread")
      expect(spent).toBeGreaterThanOrEqual(200_000)
      expect(spent).toBeLessThan(5_000_000)
      // Only children of the given parent count.
      expect(serverCpuMicros("MainThread", child.pid)).toBeUndefined()
    } finally {
      child.kill()
    }
  })
})
