/**
 * A child process of the memory workload: writes `keys` distinct keys through the peer or a dynastate store over
 * a stub transport (an empty table that accepts every write, so no server limits the pace), then prints its
 * resident set size after garbage collection as one JSON line. Run with `--expose-gc`.
 *
 * Settings come as one JSON document in BENCH_MEMORY (see {@link MemorySettings}).
 */
import { Effect, References } from "effect"
import * as fs from "node:fs"
import * as v8 from "node:v8"
import * as TeleportStore from "../peer/TeleportStore.ts"
import { makeClients } from "../support/Clients.ts"
import * as Dynastate from "../support/Dynastate.ts"
import { measure } from "../support/Measure.ts"
import * as Stub from "../support/Stub.ts"

/** What the parent tells a child. */
export interface MemorySettings {
  readonly store: "peer" | "dynastate"
  readonly keys: number
  readonly table: string
  /** dynastate's raw AES key (base64). */
  readonly key: string
  readonly valueBytes: number
}

/** What a child reports, in MiB. */
export interface MemoryResult {
  readonly rssBefore: number
  readonly rssAfter: number
  readonly heapAfter: number
  /**
   * V8's young generation, resident: it grows with a process's allocation history (up to 128 MiB here), not with
   * what it keeps, so it is most of what RSS grows by between 10k and 100k keys.
   */
  readonly youngAfter: number
  /** Every V8 heap space, resident (young generation included). */
  readonly v8After: number
  /**
   * Anonymous memory outside V8's heaps: what native code allocated (malloc arenas, OpenSSL, libuv, array buffers'
   * backing stores). Absent where the kernel does not report it (`/proc/self/smaps_rollup`, Linux).
   */
  readonly nativeAfter?: number
  /**
   * The highest native memory seen while the keys were written (sampled each second): whether what stays after the
   * run was in use at some point, or came at its end.
   */
  readonly nativePeak?: number
  /**
   * Native memory two seconds after the figures above, the process idle: whether pages freed by the collections
   * were still waiting for V8's background threads to give them back when the figures were taken.
   */
  readonly nativeSettled?: number
  /** Of native memory, the resident part of glibc malloc's main arena (`[heap]`); the rest is other threads' arenas and mappings. */
  readonly mainArenaAfter?: number
  /** Resident pages of mapped files: the node binary and shared libraries. Absent as `nativeAfter` is. */
  readonly fileAfter?: number
  /**
   * RSS once V8 has given back what it keeps for reuse (a last-resort collection, as under memory pressure: the
   * young generation shrunk, free pages of its page pool, which its heap statistics do not count, unmapped): what
   * the process holds for what it keeps, taken after every figure above.
   */
  readonly rssReleased: number
  /** Native memory (as `nativeAfter`) at the same moment as `rssReleased`. */
  readonly nativeReleased?: number
  readonly seconds: number
}

const settings = JSON.parse(process.env["BENCH_MEMORY"] ?? "{}") as MemorySettings

/** V8's `gc` of `--expose-gc`: a full collection, or with a flavor of `last-resort` the one V8 runs under memory pressure. */
type Collector = (
  options?: { readonly type: "major"; readonly execution: "sync"; readonly flavor: "last-resort" }
) => void

const collector = (): Collector => {
  const gc = (globalThis as { gc?: Collector }).gc
  if (gc === undefined) throw new Error("run with --expose-gc")
  return gc
}

const collect = () => {
  const gc = collector()
  for (let i = 0; i < 3; i++) gc()
}

const mib = (bytes: number) => bytes / (1024 * 1024)

/** A file of `/proc/self`, or nothing where there is none (not Linux). */
const procSelf = (name: string): string | undefined => {
  try {
    return fs.readFileSync(`/proc/self/${name}`, "utf8")
  } catch {
    return undefined
  }
}

/** The process's resident pages split into anonymous and file-backed, in MiB, where Linux reports it. */
const residentKinds = (): { readonly anonymous: number; readonly file: number } | undefined => {
  const rollup = procSelf("smaps_rollup")
  if (rollup === undefined) return undefined
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(rollup)?.[1] ?? Number.NaN)
  const rss = kib("Rss")
  const anonymous = kib("Anonymous")
  return Number.isNaN(rss) || Number.isNaN(anonymous)
    ? undefined
    : { anonymous: anonymous / 1024, file: (rss - anonymous) / 1024 }
}

/** V8's heap spaces, resident, in MiB. */
const v8Resident = () => mib(v8.getHeapStatistics().total_physical_size)

/** Native memory now: anonymous pages outside V8's heap spaces, in MiB. */
const nativeNow = (): number | undefined => {
  const kinds = residentKinds()
  return kinds === undefined ? undefined : kinds.anonymous - v8Resident()
}

/** Resident MiB of the main malloc arena (the `[heap]` mapping), where Linux reports it. */
const mainArena = (): number | undefined => {
  const rss = /\[heap\]\n(?:.*\n)*?Rss:\s+(\d+) kB/.exec(procSelf("smaps") ?? "")?.[1]
  return rss === undefined ? undefined : Number(rss) / 1024
}

const program = Effect.gen(function*() {
  const clients = yield* Effect.acquireRelease(
    Effect.sync(() => makeClients("http://127.0.0.1:9", { requestHandler: Stub.handler(Stub.emptyTable)! })),
    (c) => Effect.sync(c.destroy)
  )
  const value = new Uint8Array(settings.valueBytes)
  const put: (key: string) => Effect.Effect<unknown, unknown> = settings.store === "peer"
    ? ((peer) => (key: string) => peer.put(key, value))(TeleportStore.make(clients.dynamodb, settings.table))
    : ((store) => (key: string) => store.put({ key, value }))(
      (yield* Dynastate.open({
        clients,
        location: { table: settings.table, namespace: "bench" },
        key: settings.key,
        calls: { generate: 0, wrap: 0, unwrap: 0 }
      })).store
    )
  // Warm-up, so code loaded and compiled on first use is not counted as the keys' memory.
  yield* measure({ operations: 200, concurrency: 16 }, (i) => put(`/warm/${i}`))
  collect()
  const rssBefore = mib(process.memoryUsage().rss)
  const started = performance.now()
  let nativePeak = nativeNow()
  const sampler = setInterval(() => {
    const native = nativeNow()
    if (native !== undefined) nativePeak = Math.max(nativePeak ?? native, native)
  }, 1000)
  yield* measure({ operations: settings.keys, concurrency: 16 }, (i) => put(`/memory/${i}`)).pipe(
    Effect.ensuring(Effect.sync(() => clearInterval(sampler)))
  )
  collect()
  const usage = process.memoryUsage()
  const v8After = v8Resident()
  const kinds = residentKinds()
  const arena = mainArena()
  const result = {
    rssBefore,
    rssAfter: mib(usage.rss),
    heapAfter: mib(usage.heapUsed),
    youngAfter: mib(
      v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space")?.physical_space_size ?? 0
    ),
    v8After,
    ...(kinds === undefined ? {} : { nativeAfter: kinds.anonymous - v8After, fileAfter: kinds.file }),
    ...(nativePeak === undefined ? {} : { nativePeak }),
    ...(arena === undefined ? {} : { mainArenaAfter: arena }),
    seconds: (performance.now() - started) / 1000
  }
  yield* Effect.sleep("2 seconds")
  const nativeSettled = nativeNow()
  collector()({ type: "major", execution: "sync", flavor: "last-resort" })
  const nativeReleased = nativeNow()
  const settled: MemoryResult = {
    ...result,
    ...(nativeSettled === undefined ? {} : { nativeSettled }),
    rssReleased: mib(process.memoryUsage().rss),
    ...(nativeReleased === undefined ? {} : { nativeReleased })
  }
  process.stdout.write(`${JSON.stringify({ result: settled })}\n`)
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provideService(References.MinimumLogLevel, "Error"))).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`memory process failed: ${String(error)}\n`)
    process.exit(1)
  }
)
