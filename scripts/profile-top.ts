/**
 * The top entries of a V8 `.cpuprofile` (from `node --cpu-prof`): self time by function, total time (the function
 * and everything it called, each function counted once per stack), and the share of samples under a few groups
 * that matter when reading where a client spends its CPU. `--under=<name>` keeps only the samples taken under a
 * function of that name (e.g. `--under=program` drops module loading, or a store operation's own function).
 *
 *   node scripts/profile-top.ts <file.cpuprofile> [entries=30] [--under=<function name>]
 */
import { readFileSync } from "node:fs"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly hitCount: number
  readonly children?: ReadonlyArray<number>
}

const [file, count = "30"] = process.argv.slice(2).filter((arg) => !arg.startsWith("--"))
const under = process.argv.find((arg) => arg.startsWith("--under="))?.slice(8)
if (file === undefined) throw new Error("usage: profile-top.ts <file.cpuprofile> [entries]")
const profile = JSON.parse(readFileSync(file, "utf8")) as { readonly nodes: ReadonlyArray<ProfileNode> }

const where = (node: ProfileNode) => {
  const url = node.callFrame.url.replace(/^file:\/\//, "")
  const short = url.includes("node_modules/")
    ? url.slice(url.lastIndexOf("node_modules/") + 13)
    : url.replace(process.cwd() + "/", "")
  return `${node.callFrame.functionName || "(anonymous)"} ${short}:${node.callFrame.lineNumber + 1}`
}

const parentOf = new Map<number, ProfileNode>()
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node)
/** The stack of a node, itself first, up to the root. */
const stackOf = (node: ProfileNode): Array<ProfileNode> => {
  const stack: Array<ProfileNode> = []
  for (let at: ProfileNode | undefined = node; at !== undefined; at = parentOf.get(at.id)) stack.push(at)
  return stack
}
const kept = profile.nodes.filter((node) =>
  node.hitCount > 0 &&
  (under === undefined || stackOf(node).some((frame) => frame.callFrame.functionName === under))
)
const total = kept.reduce((sum, node) => sum + node.hitCount, 0)
const inclusive = new Map<string, number>()
for (const node of kept) {
  for (const name of new Set(stackOf(node).map(where))) inclusive.set(name, (inclusive.get(name) ?? 0) + node.hitCount)
}
const self = new Map<string, number>()
const groups = new Map<string, number>()
const groupOf = (node: ProfileNode) => {
  const url = node.callFrame.url
  const name = node.callFrame.functionName
  if (name === "(idle)" || name === "(program)" || name === "(garbage collector)") return name
  if (url.includes("node_modules/effect/")) return "effect"
  if (url.includes("node_modules/@aws-sdk/") || url.includes("node_modules/@smithy/")) return "aws sdk"
  if (url.startsWith("node:internal/crypto") || url.includes("crypto")) return "node crypto"
  if (url.startsWith("node:")) return "node other"
  if (url.includes("/src/")) return "dynastate src"
  if (url.includes("/scripts/")) return "driver and fake"
  return url === "" ? "native" : "other"
}
for (const node of kept) {
  const name = where(node)
  self.set(name, (self.get(name) ?? 0) + node.hitCount)
  const group = groupOf(node)
  groups.set(group, (groups.get(group) ?? 0) + node.hitCount)
}
const percent = (n: number) => `${(100 * n / total).toFixed(1).padStart(5)}%`
console.log(`${total} samples${under === undefined ? "" : ` under ${under}`}\n\ngroups (self time):`)
for (const [group, hits] of [...groups].sort((a, b) => b[1] - a[1])) console.log(`${percent(hits)}  ${group}`)
console.log(`\ntop ${count} functions by self time:`)
for (const [name, hits] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(count))) {
  console.log(`${percent(hits)}  ${name}`)
}
console.log(`\ntop ${count} functions by total time:`)
for (const [name, hits] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, Number(count))) {
  console.log(`${percent(hits)}  ${name}`)
}
