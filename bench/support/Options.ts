/**
 * The bench's parameters, from flags (`--keys 200`) or environment variables (`BENCH_KEYS=200`); flags win.
 * `--quick` shrinks every size so that each workload still runs once, as a smoke test.
 */

/** Everything a run can be told. */
export interface BenchOptions {
  readonly quick: boolean
  /** Distinct keys the put/get workloads spread over. */
  readonly keys: number
  /** Fibers of the concurrent phases. */
  readonly concurrency: number
  /** Operations per measured phase (the concurrency-1 phases run a quarter of them). */
  readonly operations: number
  /** When set, each measured phase runs this long instead of a number of operations. */
  readonly seconds: number | undefined
  /** Alternations of peer and dynastate per workload, measured; the best of them is reported. */
  readonly rounds: number
  /**
   * Alternations run first and thrown away, so that what is measured is a settled process on a settled server:
   * every workload starts a fresh DynamoDB Local of its own, and V8 goes on optimising each client for thousands of
   * operations (see `Env.alternate` and `bench/workloads/cpu.ts`).
   */
  readonly settle: number
  readonly valueBytes: number
  /** Workload names to run (all when empty). */
  readonly only: ReadonlyArray<string>
  /** A DynamoDB endpoint to use; otherwise a DynamoDB Local is started for the run. */
  readonly endpoint: string | undefined
  /** Where to write the JSON report (`-` for stdout). */
  readonly json: string | undefined
  /** Range sizes read by the range workloads. */
  readonly rangeSizes: ReadonlyArray<number>
  /** Keys of the range workload's read over several of DynamoDB's 1 MB pages (0: none). */
  readonly pagedRangeKeys: number
  /** Events of the key whose history is read. */
  readonly historyEvents: number
  /** Distinct keys touched by the memory workload, in order. */
  readonly memoryKeys: ReadonlyArray<number>
  /** Events written before the projection worker is started on them. */
  readonly workerEvents: number
}

/** Help text for `--help`. */
export const usage = `npm run bench -- [options]

  --quick                 tiny sizes, every workload once (the CI smoke test)
  --only <a,b,…>          run only these workloads (named below)
  --keys <n>              distinct keys of the put/get workloads        (BENCH_KEYS, default 200)
  --concurrency <n>       fibers of the concurrent phases               (BENCH_CONCURRENCY, default 16)
  --ops <n>               operations per measured phase                 (BENCH_OPERATIONS, default 2000)
  --seconds <s>           run each measured phase this long instead     (BENCH_SECONDS)
  --rounds <n>            peer/dynastate alternations, best one kept    (BENCH_ROUNDS, default 2;
                          the CPU rows: at least 4)
  --settle <n>            alternations run first and thrown away        (BENCH_SETTLE, default 4)
  --value-bytes <n>       value size                                    (BENCH_VALUE_BYTES, default 256)
  --endpoint <url>        a running DynamoDB (DYNAMO_ENDPOINT); default: start a DynamoDB Local
  --json <file|->         also write the results as JSON (- for stdout, the table then goes to stderr)
`

const flagValue = (argv: ReadonlyArray<string>, name: string): string | undefined => {
  const index = argv.indexOf(`--${name}`)
  if (index >= 0) return argv[index + 1]
  const inline = argv.find((arg) => arg.startsWith(`--${name}=`))
  return inline?.slice(name.length + 3)
}

/** Thrown for a bad flag; main prints it with the usage and exits 2. */
export class BadOption extends Error {}

/** What a numeric option must be: a test, and how its error message names it. */
interface NumberKind {
  readonly valid: (value: number) => boolean
  readonly named: string
}

const positive: NumberKind = { valid: (value) => Number.isFinite(value) && value > 0, named: "a positive number" }
/** Zero or more, whole: a count of rounds, which may be none. */
const count: NumberKind = { valid: (value) => Number.isSafeInteger(value) && value >= 0, named: "a whole number" }

const numberOption = (
  argv: ReadonlyArray<string>,
  env: Record<string, string | undefined>,
  flag: string,
  variable: string,
  fallback: number,
  kind: NumberKind = positive
): number => {
  const text = flagValue(argv, flag) ?? env[variable]
  if (text === undefined) return fallback
  const value = Number(text)
  if (!kind.valid(value)) throw new BadOption(`--${flag} (${variable}) must be ${kind.named}`)
  return value
}

/** Parses the command line and the environment. */
export const parse = (
  argv: ReadonlyArray<string>,
  env: Record<string, string | undefined> = process.env
): BenchOptions => {
  const quick = argv.includes("--quick") || env["BENCH_QUICK"] === "1"
  const secondsText = flagValue(argv, "seconds") ?? env["BENCH_SECONDS"]
  const only = (flagValue(argv, "only") ?? env["BENCH_ONLY"] ?? "").split(",").map((name) => name.trim())
  return {
    quick,
    keys: numberOption(argv, env, "keys", "BENCH_KEYS", quick ? 4 : 200),
    concurrency: numberOption(argv, env, "concurrency", "BENCH_CONCURRENCY", quick ? 4 : 16),
    operations: numberOption(argv, env, "ops", "BENCH_OPERATIONS", quick ? 8 : 2000),
    seconds: secondsText === undefined ? undefined : numberOption(argv, env, "seconds", "BENCH_SECONDS", 1),
    rounds: numberOption(argv, env, "rounds", "BENCH_ROUNDS", quick ? 1 : 2),
    settle: numberOption(argv, env, "settle", "BENCH_SETTLE", quick ? 0 : 4, count),
    valueBytes: numberOption(argv, env, "value-bytes", "BENCH_VALUE_BYTES", 256),
    only: only.filter((name) => name !== ""),
    endpoint: flagValue(argv, "endpoint") ?? env["DYNAMO_ENDPOINT"],
    json: flagValue(argv, "json") ?? env["BENCH_JSON"],
    rangeSizes: quick ? [3, 6] : [100, 1000],
    // 5,000 items of 256-byte values are about 2.3 MB: three pages. Too slow to fill for a smoke test.
    pagedRangeKeys: quick ? 0 : 5000,
    historyEvents: quick ? 5 : 1000,
    memoryKeys: quick ? [100, 300] : [10_000, 100_000],
    workerEvents: quick ? 10 : 1000
  }
}
