/**
 * A small evaluator of IAM identity policies, as far as the policies `NamespacePolicy` writes need one: Allow
 * statements, exact actions, ARNs with `*`, and the condition operators `StringEquals`, `ForAllValues:StringEquals`,
 * `ForAllValues:StringLike` and `Null`, with IAM's `${$}`, `${*}` and `${?}` literals. It follows IAM's documented
 * semantics, including the one that matters most here: `ForAllValues` holds for a request without the key. It
 * reads the policy as JSON text, so escapes in the document are what is evaluated.
 */

/** What a request brings to IAM: the action, the resource's ARN and the condition keys it carries. */
export interface PolicyRequest {
  readonly action: string
  readonly resource: string
  readonly context: Readonly<Record<string, string | ReadonlyArray<string>>>
}

interface Statement {
  readonly Effect: string
  readonly Action: ReadonlyArray<string>
  readonly Resource: ReadonlyArray<string>
  readonly Condition?: Record<string, Record<string, string | ReadonlyArray<string>>>
}

type Token = { readonly literal: string } | { readonly wildcard: "*" | "?" }

/** A condition value as tokens: `${x}` literals, and `*`/`?` wildcards where `like` (StringLike, ARNs) says so. */
const tokens = (value: string, like: boolean): ReadonlyArray<Token> => {
  const out: Array<Token> = []
  for (let i = 0; i < value.length; i++) {
    const rest = value.slice(i)
    const special = /^\$\{([$*?])\}/.exec(rest)
    if (special) {
      out.push({ literal: special[1]! })
      i += 3
    } else if (like && (value[i] === "*" || value[i] === "?")) out.push({ wildcard: value[i] as "*" | "?" })
    else out.push({ literal: value[i]! })
  }
  return out
}

const matchTokens = (pattern: ReadonlyArray<Token>, text: string): boolean => {
  const go = (p: number, t: number): boolean => {
    if (p === pattern.length) return t === text.length
    const token = pattern[p]!
    if ("literal" in token) return text[t] === token.literal && go(p + 1, t + 1)
    if (token.wildcard === "?") return t < text.length && go(p + 1, t + 1)
    for (let k = t; k <= text.length; k++) if (go(p + 1, k)) return true
    return false
  }
  return go(0, 0)
}

const equals = (value: string, text: string) => matchTokens(tokens(value, false), text)
const like = (value: string, text: string) => matchTokens(tokens(value, true), text)
const list = (value: string | ReadonlyArray<string>): ReadonlyArray<string> =>
  typeof value === "string" ? [value] : value

const holds = (operator: string, key: string, expected: ReadonlyArray<string>, request: PolicyRequest): boolean => {
  const present = request.context[key]
  const values = present === undefined ? [] : list(present)
  switch (operator) {
    case "StringEquals":
      return values.length === 1 && expected.some((value) => equals(value, values[0]!))
    case "ForAllValues:StringEquals":
      return values.every((text) => expected.some((value) => equals(value, text)))
    case "ForAllValues:StringLike":
      return values.every((text) => expected.some((value) => like(value, text)))
    case "Null":
      return (expected[0] === "true") === (present === undefined)
    default:
      throw new Error(`the evaluator does not know ${operator}`)
  }
}

/** Whether the policy (as JSON text) allows the request. */
export const allows = (policyJson: string, request: PolicyRequest): boolean => {
  const policy = JSON.parse(policyJson) as { readonly Statement: ReadonlyArray<Statement> }
  return policy.Statement.some((statement) =>
    statement.Effect === "Allow" &&
    statement.Action.includes(request.action) &&
    statement.Resource.some((resource) => like(resource, request.resource)) &&
    Object.entries(statement.Condition ?? {}).every(([operator, keys]) =>
      Object.entries(keys).every(([key, expected]) => holds(operator, key, list(expected), request))
    )
  )
}
