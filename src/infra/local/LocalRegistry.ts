/**
 * The files by which processes share one DynamoDB Local per data directory: the record of the running instance
 * (`local.json`, written atomically), a start lock (`local.lock`, so two starters never both start one: two JVMs
 * on one sqlite file fail with "database is locked"), and one lease file per process using it (`leases/`), which
 * the keeper counts to know when the last user has left. Plain synchronous file operations: each is a few
 * microseconds and they must also run in the keeper, which has no fiber to spare while holding the lock.
 */
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import { uptime } from "node:os"
import { join } from "node:path"

/** What `local.json` holds: where the shared instance answers and who keeps it. */
export interface LocalRecord {
  readonly endpoint: string
  readonly port: number
  /** The keeper process: it owns the JVM and stops it once no lease is left. */
  readonly keeperPid: number
  readonly startedAt: string
  /** When the machine booted (epoch seconds): after a reboot the recorded pid may belong to another process. */
  readonly bootedAt?: number | undefined
}

/** When this machine booted, in epoch seconds. */
export const bootedAt = (): number => Math.round(Date.now() / 1000 - uptime())

/**
 * Whether a record still describes a running keeper: its process is alive and the machine has not rebooted since
 * (a reboot hands the recorded pid to some other process).
 */
export const isCurrent = (record: LocalRecord, now: number = bootedAt()): boolean =>
  (record.bootedAt === undefined || Math.abs(record.bootedAt - now) <= 5) && isAlive(record.keeperPid)

/** The files of a data directory. */
export const paths = (dataDir: string) => ({
  record: join(dataDir, "local.json"),
  lock: join(dataDir, "local.lock"),
  leases: join(dataDir, "leases"),
  log: join(dataDir, "local.log")
})

/** Whether a process is alive; `EPERM` means it is, only someone else's. */
export const isAlive = (pid: number): boolean => {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** The recorded instance, if the record exists and is well formed. */
export const readRecord = (dataDir: string): LocalRecord | undefined => {
  try {
    const parsed = JSON.parse(fs.readFileSync(paths(dataDir).record, "utf8")) as Partial<LocalRecord>
    return typeof parsed.endpoint === "string" && typeof parsed.port === "number" &&
        typeof parsed.keeperPid === "number" && typeof parsed.startedAt === "string"
      ? (parsed as LocalRecord)
      : undefined
  } catch {
    return undefined
  }
}

/** Writes the record atomically: a reader sees the old file or the new one, never half of one. */
export const writeRecord = (dataDir: string, record: LocalRecord): void => {
  const target = paths(dataDir).record
  const temporary = `${target}.${process.pid}.${randomBytes(4).toString("hex")}`
  fs.writeFileSync(temporary, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 })
  fs.renameSync(temporary, target)
}

/** Removes the record if it still names `keeperPid` (a newer keeper's record stays). */
export const removeRecord = (dataDir: string, keeperPid: number): void => {
  if (readRecord(dataDir)?.keeperPid === keeperPid) fs.rmSync(paths(dataDir).record, { force: true })
}

/** A held lock; `release` is idempotent. */
export interface Lock {
  readonly release: () => void
}

/** A lock older than this whose holder is still alive is taken as hung (no holder keeps it for more than a start). */
const LOCK_STALE_MS = 120_000

/**
 * Takes the lock if it is free (or its holder died), else `undefined`: the caller waits and tries again. The lock
 * file holds the holder's pid; creating it with `wx` is the atomic step.
 */
export const tryLock = (dataDir: string): Lock | undefined => {
  const file = paths(dataDir).lock
  try {
    fs.writeFileSync(file, String(process.pid), { flag: "wx", mode: 0o600 })
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    breakIfStale(file)
    return undefined
  }
  let held = true
  return {
    release: () => {
      if (!held) return
      held = false
      try {
        if (fs.readFileSync(file, "utf8") === String(process.pid)) fs.rmSync(file, { force: true })
      } catch {
        // Already gone: nothing to release.
      }
    }
  }
}

const breakIfStale = (file: string): void => {
  try {
    const holder = Number(fs.readFileSync(file, "utf8"))
    const age = Date.now() - fs.statSync(file).mtimeMs
    if (!isAlive(holder) || age > LOCK_STALE_MS) fs.rmSync(file, { force: true })
  } catch {
    // Removed by its holder meanwhile: the next attempt takes it.
  }
}

/** A lease of this process on the shared instance; `release` is idempotent. */
export interface Lease {
  readonly file: string
  readonly release: () => void
}

/** Records that this process uses the instance of the data directory (before it even looks at the record). */
export const takeLease = (dataDir: string, pid: number = process.pid): Lease => {
  const dir = paths(dataDir).leases
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  const file = join(dir, `${pid}-${randomBytes(4).toString("hex")}`)
  fs.writeFileSync(file, String(pid), { mode: 0o600 })
  let held = true
  return {
    file,
    release: () => {
      if (!held) return
      held = false
      fs.rmSync(file, { force: true })
    }
  }
}

/** How many leases are held by live processes; those of dead processes (killed, crashed) are removed. */
export const liveLeases = (dataDir: string): number => {
  const dir = paths(dataDir).leases
  let live = 0
  let names: ReadonlyArray<string>
  try {
    names = fs.readdirSync(dir)
  } catch {
    return 0
  }
  for (const name of names) {
    const pid = Number(name.split("-")[0])
    if (isAlive(pid)) live++
    else fs.rmSync(join(dir, name), { force: true })
  }
  return live
}
