/**
 * Runs the `dynastate` CLI as a process, the way a user or a script does: the built entry point under the Node of
 * the repository, with its own environment (a temporary data directory, never the user's), returning exit code,
 * stdout and stderr.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"

/** What a CLI run printed and how it ended. */
export interface CliRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const root = path.resolve(import.meta.dirname, "../..")
/** The repository's Node (24): the machine's may be too old to run .ts files. */
export const nodeBinary = path.join(root, "node_modules", ".bin", "node")
/** The CLI's entry point. */
export const cliEntry = path.join(root, "src", "programs", "app", "cli.ts")

/** The working directory of CLI runs: an empty one, so no file of the repository's own is found by accident. */
export const cliCwd = fs.mkdtempSync(path.join(os.tmpdir(), "dynastate-cli-cwd-"))
// Removed after the test file that imported it: vitest isolates files, so each file evaluates this module afresh.
afterAll(() => fs.rmSync(cliCwd, { recursive: true, force: true }))

/** Environment variables of the test's shell that would change what the CLI does. */
const cleared = ["DYNASTATE_CONFIG", "AWS_PROFILE", "DYNASTATE_ENDPOINT", "DYNASTATE_TABLE_NAME", "DYNASTATE_REGION"]

/** The environment of a CLI run: the test's, without settings it did not choose, plus `env`. */
export const cliEnv = (env: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const base = { ...process.env }
  for (const name of cleared) delete base[name]
  return { ...base, ...env }
}

/** Runs the CLI to its end, feeding `stdin` when given. */
export const runCli = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly stdin?: string | Uint8Array } = {}
): Promise<CliRun> =>
  new Promise((resolve, reject) => {
    const child = spawn(nodeBinary, [cliEntry, ...args], { env: cliEnv(options.env), cwd: cliCwd, stdio: "pipe" })
    const out: Array<Buffer> = []
    const err: Array<Buffer> = []
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk))
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk))
    child.once("error", reject)
    child.once("close", (code) =>
      resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") }))
    child.stdin.end(options.stdin ?? "")
  })

/** Runs the CLI and returns its stdout as raw bytes (for `-o value`). */
export const runCliBytes = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  new Promise<{ code: number | null; stdout: Buffer }>((resolve, reject) => {
    const child = spawn(nodeBinary, [cliEntry, ...args], {
      env: cliEnv(env),
      cwd: cliCwd,
      stdio: ["ignore", "pipe", "ignore"]
    })
    const out: Array<Buffer> = []
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk))
    child.once("error", reject)
    child.once("close", (code) => resolve({ code, stdout: Buffer.concat(out) }))
  })

/** Each line of `-o json` output, parsed (throws if one is not JSON). */
export const jsonLines = (stdout: string): Array<Record<string, unknown>> =>
  stdout.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as Record<string, unknown>)
