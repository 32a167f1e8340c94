/**
 * `npm run bench`: dynastate beside a teleport-shaped store (and the raw SDK where that means something) on one
 * DynamoDB, phases alternated, one table of throughput, latency and costs with the ratio dynastate/peer, and
 * optionally the same as JSON. Exits 1 when a workload fails (never because of a timing), 2 on a bad flag.
 */
import { Cause, Effect, Exit, References } from "effect"
import * as fs from "node:fs"
import * as Env from "./Env.ts"
import type { Row } from "./Report.ts"
import * as Report from "./Report.ts"
import { BadOption, parse, usage } from "./support/Options.ts"
import type { BenchOptions } from "./support/Options.ts"
import { workloads } from "./workloads/index.ts"

const main = (options: BenchOptions, print: (line: string) => void) =>
  Effect.gen(function*() {
    const selected = options.only.length === 0 ? workloads : workloads.filter((w) => options.only.includes(w.name))
    const unknown = options.only.filter((name) => !workloads.some((w) => w.name === name))
    if (unknown.length > 0) {
      return yield* Effect.fail(
        new BadOption(`unknown workload ${unknown.join(", ")}; known: ${workloads.map((w) => w.name).join(", ")}`)
      )
    }
    // A full run on the bench's own DynamoDB Local gives each workload a fresh one: a DynamoDB Local slows down with
    // every stream record it holds (see `Env.streamStartKey`), so later workloads ran on a slower server than earlier
    // ones (the capacity workload took 614 s after the others; the partitions workload had not finished after about
    // 40 minutes). A quick run, whose workloads write little, shares one and saves a JVM start per workload.
    const ownLocals = options.endpoint === undefined && !options.quick
    const endpoint = ownLocals ? undefined : options.endpoint ?? (yield* Env.startLocal)
    const started = performance.now()
    print(
      `dynastate bench${options.quick ? " (quick)" : ""}: ${options.keys} keys, concurrency ${options.concurrency}, ` +
        `${options.seconds === undefined ? `${options.operations} operations` : `${options.seconds} s`} per phase, ` +
        `best of ${options.rounds} after ${options.settle} thrown away, ${options.valueBytes}-byte values, ` +
        (endpoint === undefined ? "a DynamoDB Local of its own per workload" : `DynamoDB ${endpoint}`)
    )
    const shared = endpoint === undefined ? undefined : yield* Env.make(options, endpoint)
    const rows: Array<Row> = []
    const failures: Array<{ workload: string; error: string }> = []
    for (const workload of selected) {
      const t0 = performance.now()
      const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        const env = shared ?? (yield* Env.make(options, yield* Env.startLocal, true))
        return yield* workload.run(env)
      })))
      const seconds = ((performance.now() - t0) / 1000).toFixed(1)
      if (Exit.isSuccess(exit)) {
        rows.push(...exit.value)
        print(`  ${workload.name}: ${seconds} s`)
      } else {
        failures.push({ workload: workload.name, error: Cause.pretty(exit.cause) })
        print(`  ${workload.name}: FAILED after ${seconds} s\n${Cause.pretty(exit.cause)}`)
      }
    }
    print("")
    print(Report.table(rows))
    print("")
    print(`${((performance.now() - started) / 1000).toFixed(0)} s; ${failures.length} workload(s) failed`)
    if (options.json !== undefined) {
      const context = { options, endpoint, localPerWorkload: ownLocals, at: new Date().toISOString() }
      const text = Report.json(rows, context, failures)
      if (options.json === "-") process.stdout.write(`${text}\n`)
      else fs.writeFileSync(options.json, `${text}\n`)
    }
    return failures.length
  })

/** An error as one line: its message, or its fields (tagged errors often carry no message). */
const describe = (error: unknown): string => {
  if (error instanceof BadOption) return error.message
  const fields = JSON.stringify(error)
  return fields === undefined || fields === "{}" ? String(error) : `${String(error)} ${fields}`
}

const run = () => {
  let options: BenchOptions
  try {
    if (process.argv.includes("--help")) {
      process.stdout.write(`${usage}\nworkloads: ${workloads.map((w) => w.name).join(", ")}\n`)
      return process.exit(0)
    }
    options = parse(process.argv.slice(2))
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${usage}`)
    return process.exit(2)
  }
  // With JSON on stdout, the human-readable report goes to stderr.
  const print = (line: string) => (options.json === "-" ? process.stderr : process.stdout).write(`${line}\n`)
  Effect.runPromise(
    Effect.scoped(main(options, print)).pipe(Effect.provideService(References.MinimumLogLevel, "Error"))
  ).then(
    (failed) => process.exit(failed > 0 ? 1 : 0),
    (error) => {
      process.stderr.write(`${describe(error)}\n`)
      process.exit(error instanceof BadOption ? 2 : 1)
    }
  )
}

run()
