/**
 * Formats the repository's TypeScript with dprint's TypeScript plugin, configured by `dprint.json` (Effect's
 * settings). `node scripts/format.ts` rewrites files; `--check` lists the files that are not formatted and exits 1.
 * It drives the plugin through `@dprint/formatter` rather than the dprint CLI, whose per-platform binaries are
 * not all on the registry this project installs from (npm ci then refuses the lock file).
 */
import { createFromBuffer } from "@dprint/formatter"
import { getPath } from "@dprint/typescript"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"

interface DprintConfig {
  readonly lineWidth: number
  readonly typescript: Record<string, string | number | boolean>
  readonly excludes: ReadonlyArray<string>
}

const root = new URL("../", import.meta.url)
const config = JSON.parse(fs.readFileSync(new URL("dprint.json", root), "utf8")) as DprintConfig
const formatter = createFromBuffer(fs.readFileSync(getPath()))
formatter.setConfig({ lineWidth: config.lineWidth }, config.typescript)

/** Tracked and new (not ignored) TypeScript files, less the configured excludes (folder prefixes). */
const files = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "*.ts"], {
  cwd: root,
  encoding: "utf8"
})
  .split("\n")
  .filter((file) => file !== "" && fs.existsSync(new URL(file, root)))
  .filter((file) => !config.excludes.some((prefix) => file.startsWith(prefix)))

const check = process.argv.includes("--check")
const unformatted: Array<string> = []
for (const file of files) {
  const text = fs.readFileSync(new URL(file, root), "utf8")
  const formatted = formatter.formatText({ filePath: file, fileText: text })
  if (formatted === text) continue
  unformatted.push(file)
  if (!check) fs.writeFileSync(new URL(file, root), formatted)
}
if (check && unformatted.length > 0) {
  console.error(`not formatted (run npm run format):\n${unformatted.map((file) => `  ${file}`).join("\n")}`)
  process.exitCode = 1
} else {
  console.log(`${files.length} files ${check ? "checked" : `formatted, ${unformatted.length} changed`}`)
}
