/**
 * The README's examples are real files: a block marked `<!-- file: PATH -->` must be that file verbatim (the
 * package check type-checks and runs the files, and type-checks every other block against the packed package).
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import { blocks } from "../scripts/readme-blocks.ts"

const root = new URL("../", import.meta.url)
const readme = fs.readFileSync(new URL("README.md", root), "utf8")

describe("README examples", () => {
  const marked = blocks(readme).filter((block) => block.file !== undefined)

  it("shows the tour and the unit-test example from examples/", () => {
    expect(marked.map((block) => block.file)).toEqual(
      expect.arrayContaining(["examples/tour.ts", "examples/app/Sessions.test.ts"])
    )
  })

  for (const block of marked) {
    it(`the block at line ${block.line} is ${block.file} verbatim`, () => {
      expect(block.code).toBe(fs.readFileSync(new URL(block.file!, root), "utf8"))
    })
  }

  it("imports the package by its name, never by a path into the repository", () => {
    for (const block of blocks(readme)) {
      expect(block.code, `block at line ${block.line}`).not.toMatch(/from "\.\.?\/(src|dist)\//)
    }
  })
})
