import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { once } from "node:events"
import { existsSync } from "node:fs"
import { figureOf } from "../../bench/Report.ts"
import { leastMeaningfulMicros, serverCpuMicros } from "../../bench/support/ServerCpu.ts"

// Linux has `/proc`; elsewhere the meter reads nothing, which is what the bench then shows.
const hasProc = existsSync("/proc/self/stat")

describe("the bench's server CPU meter", () => {
  it("reads a child's CPU time where there is /proc, and nothing without such a child", async () => {
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
      if (hasProc) {
        expect(spent).toBeGreaterThanOrEqual(200_000)
        expect(spent).toBeLessThan(5_000_000)
      } else {
        expect(spent).toBeUndefined()
      }
      // Only children of the given parent count.
      expect(serverCpuMicros("MainThread", child.pid)).toBeUndefined()
    } finally {
      child.kill()
    }
  })
})

describe("a phase's figure", () => {
  const sample = (serverCpuMicros: number | undefined) => ({
    operations: 100,
    seconds: 1,
    latencies: [1],
    cpuMicros: 50_000,
    serverCpuMicros
  })

  it("gives the server's CPU per operation when the phase used enough of it to read", () => {
    expect(figureOf(sample(leastMeaningfulMicros), undefined, true).serverCpuPerOp).toBe(leastMeaningfulMicros / 100)
    expect(figureOf(sample(leastMeaningfulMicros), undefined, true).cpuPerOp).toBe(500)
  })

  it("leaves it out below the clock ticks' resolution, when not measured, and when CPU is not asked for", () => {
    expect(figureOf(sample(leastMeaningfulMicros - 10_000), undefined, true).serverCpuPerOp).toBeUndefined()
    expect(figureOf(sample(undefined), undefined, true).serverCpuPerOp).toBeUndefined()
    expect(figureOf(sample(leastMeaningfulMicros), undefined, false).serverCpuPerOp).toBeUndefined()
  })
})
