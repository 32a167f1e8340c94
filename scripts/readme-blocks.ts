/**
 * The README's TypeScript examples. A block right after `<!-- file: PATH -->` is that file of the repository,
 * verbatim (a unit test checks it); every other block is a module of its own, which the package check
 * (`scripts/pack-check.sh`) writes out with `node scripts/readme-blocks.ts <dir>` and type-checks against the
 * installed package.
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** One ```ts block of the README, with the file it claims to be, if any. */
export interface Block {
  readonly line: number
  readonly file: string | undefined
  readonly code: string
}

/** The ```ts blocks of a Markdown text. */
export const blocks = (markdown: string): ReadonlyArray<Block> => {
  const lines = markdown.split("\n")
  const found: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== "```ts") continue
    const marker = /^<!-- file: (\S+) -->$/.exec(lines[i - 1] ?? "")
    const end = lines.indexOf("```", i + 1)
    if (end < 0) throw new Error(`README line ${i + 1}: a \`\`\`ts block never ends`)
    found.push({ line: i + 1, file: marker?.[1], code: lines.slice(i + 1, end).join("\n") + "\n" })
    i = end
  }
  return found
}

if (import.meta.main) {
  const out = process.argv[2]
  if (out === undefined) throw new Error("usage: node scripts/readme-blocks.ts <output directory>")
  const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8")
  fs.mkdirSync(out, { recursive: true })
  for (const block of blocks(readme).filter((block) => block.file === undefined)) {
    fs.writeFileSync(path.join(out, `readme-line-${block.line}.ts`), block.code)
  }
}
