/**
 * No merge conflict marker survives in what the package ships or the project runs: a marker inside a doc comment
 * compiles, passes the linter and reaches users in the published sources and declarations.
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join, relative } from "node:path"
import { describe, expect, it } from "vitest"

const root = join(import.meta.dirname, "..")
const checked = ["src", "test", "bench", "scripts", "examples", "README.md", "package.json", ".ci"]
const textFile = /\.(ts|js|mjs|cjs|json|md|sh|ya?ml|toml)$|^run$/

/** A line that begins a conflict's side or divides them, also when a comment's ` * ` precedes it. */
const marker = /^(?:\s*\*\s*)?(?:<{7}|>{7})(?: |$)|^={7}$/m

const filesUnder = (path: string): ReadonlyArray<string> => {
  const full = join(root, path)
  if (statSync(full, { throwIfNoEntry: false }) === undefined) return []
  if (!statSync(full).isDirectory()) return [full]
  return readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && textFile.test(entry.name))
    .map((entry) => join(entry.parentPath, entry.name))
}

describe("merge conflict markers", () => {
  it("are recognised, in code and in doc comments alike (the check is not vacuous)", () => {
    expect(marker.test("a\n<<<<<<< HEAD\nb")).toBe(true)
    expect(marker.test("/**\n * >>>>>>> fence\n */")).toBe(true)
    expect(marker.test("x\n=======\ny")).toBe(true)
    expect(marker.test("// a <<<<<<< in prose, === and ======== rules")).toBe(false)
  })

  it("appear in no file of the project", () => {
    const files = checked.flatMap(filesUnder)
    expect(files.length).toBeGreaterThan(100)
    const marked = files.filter((file) => marker.test(readFileSync(file, "utf8"))).map((file) => relative(root, file))
    expect(marked).toEqual([])
  })
})
