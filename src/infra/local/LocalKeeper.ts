/**
 * The keeper of a shared DynamoDB Local: a small detached process that owns the JVM of one data directory,
 * records where it answers (`local.json`), and stops it once no process has held a lease for `idleMillis`. It
 * outlives the process that started it, so a worker started after a CLI call keeps using the same JVM; and it
 * takes the start lock before it decides to stop, so a process that found the record under that lock (its lease
 * already written) is never left with a stopped instance. `keeperMain.ts` runs it.
 */
import { Effect } from "effect"
import * as DynamoDBLocal from "./DynamoDBLocal.ts"
import * as LocalRegistry from "./LocalRegistry.ts"

/** What a keeper runs with. */
export interface KeeperOptions {
  readonly dataDir: string
  /** 0 picks a free port. */
  readonly port: number
  /** How long the instance stays up after the last lease is gone, so back-to-back CLI calls share it. */
  readonly idleMillis: number
}

const TICK = "1 second"
// A JVM that stops answering is gone (killed, out of memory): the keeper then leaves, and the next user restarts.
const MAX_MISSED_PINGS = 5

/** Runs the keeper until the instance is idle, the JVM is gone, or it is interrupted (SIGTERM, SIGINT). */
export const run = Effect.fn("LocalKeeper.run")(function*(options: KeeperOptions) {
  const instance = yield* DynamoDBLocal.scoped({
    dataDir: options.dataDir,
    ...(options.port === 0 ? {} : { port: options.port })
  })
  yield* Effect.addFinalizer(() => Effect.sync(() => LocalRegistry.removeRecord(options.dataDir, process.pid)))
  LocalRegistry.writeRecord(options.dataDir, {
    endpoint: instance.endpoint,
    port: instance.port,
    keeperPid: process.pid,
    startedAt: new Date().toISOString(),
    bootedAt: LocalRegistry.bootedAt()
  })
  yield* Effect.log(`keeping DynamoDB Local on ${instance.endpoint} for ${options.dataDir}`)
  let idleSince: number | undefined
  let missed = 0
  while (true) {
    yield* Effect.sleep(TICK)
    missed = (yield* DynamoDBLocal.answers(instance.endpoint)) ? 0 : missed + 1
    if (missed >= MAX_MISSED_PINGS) {
      return yield* Effect.logError(`DynamoDB Local on ${instance.endpoint} stopped answering; leaving`)
    }
    if (LocalRegistry.liveLeases(options.dataDir) > 0) {
      idleSince = undefined
      continue
    }
    idleSince ??= Date.now()
    if (Date.now() - idleSince < options.idleMillis) continue
    const lock = LocalRegistry.tryLock(options.dataDir)
    if (lock === undefined) continue
    // Under the lock no user can be between reading the record and relying on it: one that read it has its lease.
    if (LocalRegistry.liveLeases(options.dataDir) > 0) {
      lock.release()
      idleSince = undefined
      continue
    }
    LocalRegistry.removeRecord(options.dataDir, process.pid)
    lock.release()
    return yield* Effect.log(`no process used DynamoDB Local for ${options.idleMillis} ms; stopping it`)
  }
}, Effect.scoped)
