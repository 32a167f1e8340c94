/**
 * The layout rule that the DynamoDB item format lives in `src/infra` only: programs see stored events as
 * parsed records (`EventRecord.StoredEvent`: key, seq, op, expiry, timestamp, and the item itself as an
 * opaque handle they give back to the infra) and never read attribute names or raw attribute values.
 *
 * The check reads the source text of `src/programs/**` with comments removed, so prose may name
 * attributes; every rule matches code shapes that only raw item handling has.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import { describe, expect, it } from "vitest"
import { Attr } from "../src/infra/EventRecord.ts"
import { tombstoneSortAttr } from "../src/infra/GraveRecord.ts"

const root = join(import.meta.dirname, "..")
const programs = join(root, "src", "programs")

interface Rule {
  readonly name: string
  readonly pattern: RegExp
}

/** Every attribute name an item of the event table has; view and lease tables keep theirs private the same way. */
const attributeNames = [...Object.values(Attr), tombstoneSortAttr]

const rawValues = "reads a raw attribute value (`…]?.S`, `.N`, `.B`, …)"
const attributeValueType = "uses the SDK's AttributeValue type (a raw DynamoDB item)"

const rules: ReadonlyArray<Rule> = [
  {
    name: "uses the item codecs' attribute names or raw attribute maps " +
      "(EventRecord.Attr, attributesOf, tombstoneSortAttr, AttributeMap)",
    pattern: /\b(?:Attr|attributesOf|tombstoneSortAttr|AttributeMap)\b/
  },
  { name: attributeValueType, pattern: /\bAttributeValue\b/ },
  {
    name:
      "imports a DynamoDB item command (raw Query, Scan, GetItem, PutItem, …): item reads and writes belong in src/infra",
    pattern: /import\s*(?:type\s*)?\{[^}]*\b\w+Command\b[^}]*\}\s*from\s*["']@aws-sdk\/client-dynamodb["']/
  },
  {
    name: "imports @aws-sdk/util-dynamodb (marshalling of raw items)",
    pattern: /from\s*["']@aws-sdk\/util-dynamodb["']/
  },
  { name: "indexes a stored item (`.item[...]`)", pattern: /\.item\s*(?:\?\.)?\s*\[/ },
  {
    name: "indexes by an attribute name (`[\"op\"]`, …)",
    pattern: new RegExp(`\\[\\s*["'\`](?:${attributeNames.join("|")})["'\`]\\s*\\]`)
  },
  {
    name: rawValues,
    pattern: /(?:\]|\w)\s*\??\.(?:S|N|B|SS|NS|BS|BOOL|NULL|L|M)\b(?!\s*[(:])/
  }
]

/**
 * Files allowed to break some rules, and why. Each exemption must still be needed (the test fails otherwise),
 * so it is removed with the code that needed it.
 */
const exemptions: ReadonlyArray<
  { readonly file: string; readonly rules: ReadonlyArray<string>; readonly why: string }
> = []

/** Source text without comments; string contents stay (`//` inside a string is kept when not preceded by a space). */
const code = (source: string): string =>
  source
    .replace(/\/\*[\s\S]*?\*\//g, (comment) => comment.replace(/[^\n]/g, " "))
    .replace(/(^|\s)\/\/.*$/gm, "$1")

/** Every violation of `rules` in a source text, as line number and rule. */
const violations = (source: string): Array<{ readonly line: number; readonly rule: string; readonly text: string }> => {
  const stripped = code(source)
  const lines = stripped.split("\n")
  const original = source.split("\n")
  const found: Array<{ line: number; rule: string; text: string }> = []
  // Imports may span lines: test each rule on each line and on each whole import statement.
  for (const rule of rules) {
    lines.forEach((text, index) => {
      if (rule.pattern.test(text)) found.push({ line: index + 1, rule: rule.name, text: original[index]!.trim() })
    })
    for (const statement of stripped.matchAll(/\bimport\b[^;]*?\bfrom\s*["'][^"']+["']/g)) {
      const line = stripped.slice(0, statement.index).split("\n").length
      if (rule.pattern.test(statement[0]) && !found.some((f) => f.line === line && f.rule === rule.name)) {
        found.push({ line, rule: rule.name, text: statement[0].replace(/\s+/g, " ") })
      }
    }
  }
  return found
}

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  )

describe("layout: the DynamoDB item format lives in src/infra", () => {
  it("recognises raw item handling (the rules are not vacuous)", () => {
    const offending = [
      `import { Attr } from "../../infra/EventRecord.ts"`,
      `const op = stored.item[Attr.op]?.S`,
      `const sortKey = stored[EventRecord.Attr.sort]?.B`,
      `import type { AttributeValue } from "@aws-sdk/client-dynamodb"`,
      `import {\n  QueryCommand\n} from "@aws-sdk/client-dynamodb"`,
      `const ttl = stored.item?.["ttl"]`,
      `const n = output.Item?.seq?.N`,
      `const all = item["exp"]`
    ]
    for (const snippet of offending) expect(violations(snippet), snippet).not.toEqual([])
    const fine = [
      `// stored.item[Attr.op]?.S in a comment`,
      `/** reads item["op"]?.S */ const x = 1`,
      `import type { DynamoDBClientConfig } from "@aws-sdk/client-dynamodb"`,
      `const url = "http://localhost:8000" // a comment`,
      `if (stored.op === "put" && stored.expires !== undefined) schedule(stored.key, stored.expires)`,
      `yield* table.decode(stored)`,
      `const { key, seq } = event; Schema.Number; Stream.map(x)`
    ]
    for (const snippet of fine) expect(violations(snippet), snippet).toEqual([])
  })

  it("src/programs reads stored events through the infra's records, never raw DynamoDB items", () => {
    const problems: Array<string> = []
    const used = new Set<string>()
    for (const path of sourceFiles(programs)) {
      const file = relative(root, path).split("\\").join("/")
      for (const violation of violations(readFileSync(path, "utf8"))) {
        const exemption = exemptions.find((e) => e.file === file && e.rules.includes(violation.rule))
        if (exemption !== undefined) used.add(`${file}\u0000${violation.rule}`)
        else problems.push(`${file}:${violation.line}: ${violation.rule}\n    ${violation.text}`)
      }
    }
    const stale = exemptions.flatMap((e) =>
      e.rules
        .filter((rule) => !used.has(`${e.file}\u0000${rule}`))
        .map((rule) => `${e.file}: exemption from "${rule}" is no longer needed; remove it`)
    )
    expect(
      [...problems, ...stale],
      "Programs must not read DynamoDB items: use the parsed records of src/infra (EventTable.scan/graves, " +
        "HistoryArea, ViewTable.filed give EventRecord.StoredEvent; decrypt with EventTable.decode), and keep attribute " +
        "names in the infra's record codecs (EventRecord, GraveRecord, ViewTable, ProjectionLeases)."
    ).toEqual([])
  })
})
