/**
 * Fetches and caches the official DynamoDB Local (Java) distribution.
 *
 * AWS does not publish DynamoDB Local to npm, but `amplify-dynamodb-simulator` vendors the exact
 * jar + native sqlite4java libraries in its `emulator/` folder. We take only that folder from the
 * package tarball (via `npm pack`, so npm's cache, proxy and registry settings apply) and never
 * install the simulator's own dependency tree.
 */
import { Effect, Schema } from "effect"
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import { createReadStream } from "node:fs"
import * as fs from "node:fs/promises"
import { homedir } from "node:os"
import { join, resolve } from "node:path"

/** Pinned package; bumping it means updating both the version and its integrity together. */
export const DISTRIBUTION_PACKAGE = "amplify-dynamodb-simulator"
export const DISTRIBUTION_VERSION = "2.9.30"
export const DISTRIBUTION_INTEGRITY =
  "sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ=="

/** Everything that can go wrong while preparing, starting or reaching DynamoDB Local. */
export class DynamoDBLocalError extends Schema.TaggedError<DynamoDBLocalError>()("DynamoDBLocalError", {
  reason: Schema.Literals([
    "DownloadFailed",
    "IntegrityMismatch",
    "ExtractFailed",
    "JavaNotFound",
    "PortUnavailable",
    "StartFailed",
    "StartTimeout"
  ]),
  message: Schema.String
}) {}

/**
 * The per-user cache directory of dynastate: `DYNASTATE_CACHE_DIR` when set, otherwise the platform's user cache
 * (`$XDG_CACHE_HOME/dynastate` or `~/.cache/dynastate`, `~/Library/Caches/dynastate` on macOS,
 * `%LOCALAPPDATA%\\dynastate\\Cache` on Windows). Never inside an installed package, so a reinstall keeps it.
 */
export const userCacheDir = (
  env: Record<string, string | undefined> = process.env,
  platform: NodeJS.Platform = process.platform,
  home: string = homedir()
): string => {
  const override = env["DYNASTATE_CACHE_DIR"]
  if (override !== undefined && override !== "") return resolve(override)
  if (platform === "win32") return join(env["LOCALAPPDATA"] ?? join(home, "AppData", "Local"), "dynastate", "Cache")
  if (platform === "darwin") return join(home, "Library", "Caches", "dynastate")
  const xdg = env["XDG_CACHE_HOME"]
  return join(xdg !== undefined && xdg !== "" ? xdg : join(home, ".cache"), "dynastate")
}

/** Where versions of DynamoDB Local are cached; versioned subfolders let several coexist. */
export const cacheRootDir = (): string => join(userCacheDir(), "dynamodb-local")

/** Where the extracted `emulator/` folder of the pinned version lives once complete. */
export const distributionDir = (): string => join(cacheRootDir(), DISTRIBUTION_VERSION)

// Written last, inside the staging dir, so its presence in the final dir proves a whole extraction.
const MARKER = ".complete"
// Crashed runs leave staging dirs behind; anything this old cannot belong to a live extraction.
const STALE_STAGING_MS = 60 * 60 * 1000

const run = (file: string, args: ReadonlyArray<string>, cwd: string) =>
  new Promise<string>((resolve, reject) =>
    execFile(
      file,
      args,
      { cwd, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) =>
        error
          ? reject(new Error(`${file} ${args.join(" ")} failed: ${error.message}\n${String(stderr).slice(-2000)}`))
          : resolve(String(stdout))
    )
  )

const exists = (path: string) => fs.access(path).then(() => true, () => false)

const sha512Of = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const hash = createHash("sha512")
    createReadStream(file)
      .on("error", reject)
      .on("data", (chunk) => hash.update(chunk))
      .on("end", () => resolve(`sha512-${hash.digest("base64")}`))
  })

const attempt = <A>(reason: DynamoDBLocalError["reason"], what: string, f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (cause) =>
      new DynamoDBLocalError({ reason, message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

const sweepStaleStaging = (cacheRoot: string) =>
  Effect.promise(async () => {
    const entries = await fs.readdir(cacheRoot).catch(() => [] as Array<string>)
    for (const name of entries.filter((n) => n.startsWith(".staging-") || n.startsWith(".stale-"))) {
      const path = join(cacheRoot, name)
      const stat = await fs.stat(path).catch(() => undefined)
      if (stat && Date.now() - stat.mtimeMs > STALE_STAGING_MS) await fs.rm(path, { recursive: true, force: true })
    }
  })

const download = Effect.fn("DynamoDBLocal.download")(function*(staging: string) {
  const packDir = join(staging, "pack")
  yield* Effect.log(`Fetching ${DISTRIBUTION_PACKAGE}@${DISTRIBUTION_VERSION} (DynamoDB Local, ~57 MB) via npm pack`)
  yield* attempt("DownloadFailed", "npm pack failed", async () => {
    await fs.mkdir(packDir, { recursive: true })
    await run("npm", [
      "pack",
      `${DISTRIBUTION_PACKAGE}@${DISTRIBUTION_VERSION}`,
      "--pack-destination",
      packDir,
      "--json",
      "--ignore-scripts"
    ], staging)
  })
  const tarballs = yield* attempt("DownloadFailed", "reading npm pack output", () => fs.readdir(packDir)).pipe(
    Effect.map((names) => names.filter((n) => n.endsWith(".tgz")))
  )
  if (tarballs.length !== 1) {
    return yield* new DynamoDBLocalError({
      reason: "DownloadFailed",
      message: `npm pack produced ${tarballs.length} tarballs in ${packDir}`
    })
  }
  const tarball = join(packDir, tarballs[0]!)
  const actual = yield* attempt("DownloadFailed", `hashing ${tarball}`, () => sha512Of(tarball))
  if (actual !== DISTRIBUTION_INTEGRITY) {
    return yield* new DynamoDBLocalError({
      reason: "IntegrityMismatch",
      message:
        `${DISTRIBUTION_PACKAGE}@${DISTRIBUTION_VERSION} tarball integrity mismatch: expected ${DISTRIBUTION_INTEGRITY}, got ${actual}`
    })
  }
  return tarball
})

const extract = Effect.fn("DynamoDBLocal.extract")(function*(tarball: string, staging: string) {
  const target = join(staging, "emulator")
  yield* attempt("ExtractFailed", "extracting package/emulator", async () => {
    await fs.mkdir(target, { recursive: true })
    await run("tar", ["xzf", tarball, "-C", target, "--strip-components=2", "package/emulator"], staging)
    if (!(await exists(join(target, "DynamoDBLocal.jar")))) {
      throw new Error("DynamoDBLocal.jar missing from the tarball")
    }
    if (!(await exists(join(target, "DynamoDBLocal_lib")))) {
      throw new Error("DynamoDBLocal_lib missing from the tarball")
    }
    await fs.writeFile(
      join(target, MARKER),
      JSON.stringify({
        package: DISTRIBUTION_PACKAGE,
        version: DISTRIBUTION_VERSION,
        integrity: DISTRIBUTION_INTEGRITY
      }) + "\n"
    )
  })
  return target
})

// rename(2) of a directory is atomic and refuses to replace a non-empty one, so when two
// processes race, exactly one wins and the loser just discards its own copy.
const publish = (extracted: string, cacheRoot: string, distributionDir: string) =>
  attempt("ExtractFailed", `publishing into ${distributionDir}`, async () => {
    for (let i = 0; i < 2; i++) {
      try {
        await fs.rename(extracted, distributionDir)
        return
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        if (code !== "EEXIST" && code !== "ENOTEMPTY" && code !== "EPERM") throw error
        if (await exists(join(distributionDir, MARKER))) return
        // A leftover without the marker (not produced by us): move it aside atomically, then retry.
        const aside = join(cacheRoot, `.stale-${process.pid}-${Date.now()}`)
        await fs.rename(distributionDir, aside).catch(() => undefined)
        await fs.rm(aside, { recursive: true, force: true })
      }
    }
    throw new Error("could not replace an incomplete cache directory")
  })

/**
 * Makes sure DynamoDB Local is available in the user cache (`<userCacheDir>/dynamodb-local/<version>/`) and returns that
 * directory (containing `DynamoDBLocal.jar` and `DynamoDBLocal_lib/`). Downloads, verifies and
 * extracts on first use only; safe to call concurrently from several processes.
 */
export const ensureDistribution: Effect.Effect<string, DynamoDBLocalError> = Effect.gen(function*() {
  const cacheRoot = cacheRootDir()
  const distributionDir = join(cacheRoot, DISTRIBUTION_VERSION)
  if (yield* Effect.promise(() => exists(join(distributionDir, MARKER)))) return distributionDir
  yield* attempt("ExtractFailed", `creating ${cacheRoot}`, () => fs.mkdir(cacheRoot, { recursive: true }))
  yield* sweepStaleStaging(cacheRoot)
  const staging = yield* attempt(
    "ExtractFailed",
    "creating a staging directory",
    () => fs.mkdtemp(join(cacheRoot, `.staging-${DISTRIBUTION_VERSION}-`))
  )
  yield* Effect.gen(function*() {
    const tarball = yield* download(staging)
    const extracted = yield* extract(tarball, staging)
    yield* publish(extracted, cacheRoot, distributionDir)
  }).pipe(Effect.ensuring(Effect.promise(() => fs.rm(staging, { recursive: true, force: true }))))
  yield* Effect.log(`DynamoDB Local ${DISTRIBUTION_VERSION} ready in ${distributionDir}`)
  return distributionDir
}).pipe(Effect.withSpan("DynamoDBLocal.ensureDistribution"))
