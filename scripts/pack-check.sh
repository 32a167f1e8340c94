#!/usr/bin/env bash
# Proof from outside: packs dynastate, installs the tarball into a fresh project (its own package.json, effect
# installed there as the peer), type-checks the examples/ there, runs them against DynamoDB Local and against
# the in-memory store, and runs the installed `dynastate` binary. `npm run test:package`; .ci/run calls it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Node 24, the pinned dev dependency, first on PATH: the examples are .ts files run by Node's type stripping.
export PATH="$repo/node_modules/node/bin:$repo/node_modules/.bin:$PATH"
work="$(mktemp -d -t dynastate-pack-XXXXXX)"
local_pid=""
cleanup() {
  if [ -n "$local_pid" ]; then kill "$local_pid" 2>/dev/null || true; wait "$local_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n--- %s\n' "$*"; }
fail() { echo "pack-check: $*" >&2; exit 1; }

peer() { node -p "require('$repo/package.json').peerDependencies['$1']"; }
dev() { node -p "require('$repo/package.json').devDependencies['$1']"; }

step "npm pack (builds dist/ first)"
(cd "$repo" && npm pack --silent --pack-destination "$work" >/dev/null)
tarball="$(ls "$work"/dynastate-*.tgz)"
files="$(tar tzf "$tarball")"
echo "$(echo "$files" | wc -l) files in $(basename "$tarball")"
for unwanted in package/test/ package/bench/ package/.ci/ package/scripts/ package/examples/ package/node_modules/; do
  if echo "$files" | grep -q "^$unwanted"; then fail "the tarball holds $unwanted"; fi
done

step "a fresh project installs it, with effect as its own dependency"
mkdir "$work/app" && cd "$work/app"
cat > package.json <<JSON
{ "name": "dynastate-pack-check", "private": true, "type": "module" }
JSON
cat > tsconfig.json <<JSON
{
  "compilerOptions": {
    "target": "es2024", "module": "nodenext", "moduleResolution": "nodenext", "lib": ["es2024", "dom"], "types": ["node"],
    "strict": true, "exactOptionalPropertyTypes": true, "noUncheckedIndexedAccess": true,
    "allowImportingTsExtensions": true, "erasableSyntaxOnly": true, "verbatimModuleSyntax": true, "noEmit": true
  },
  "include": ["**/*.ts"]
}
JSON
npm install --no-audit --no-fund --loglevel=error "$tarball" "effect@$(peer effect)" "@effect/platform-node@$(peer @effect/platform-node)" \
  "typescript@$(dev typescript)" "@types/node@$(dev @types/node)" "vitest@$(dev vitest)" "@effect/vitest@$(dev @effect/vitest)"
copies="$(find node_modules -type f -path '*node_modules/effect/package.json' | wc -l)"
[ "$copies" = "1" ] || fail "expected one copy of effect, found $copies: $(find node_modules -type f -path '*node_modules/effect/package.json')"
echo "one copy of effect: $(node -p "require('./node_modules/effect/package.json').version")"
cp -R "$repo/examples/." .
node "$repo/scripts/readme-blocks.ts" readme

step "the examples and the README's other examples type-check against the installed package"
npx tsc -p .
echo "tsc: no errors"

step "imports resolve through the exports map only"
node --input-type=module -e '
  const main = await import("dynastate"); const testing = await import("dynastate/testing")
  const lambda = await import("dynastate/lambda"); const local = await import("dynastate/local")
  for (const [name, mod, names] of [["dynastate", main, ["Store", "StoreLive", "Keyspace", "Errors"]], ["dynastate/testing", testing, ["MemoryStore"]], ["dynastate/lambda", lambda, ["LambdaHandler"]], ["dynastate/local", local, ["DynamoDBLocal"]]])
    for (const n of names) if (!(n in mod)) throw new Error(`${name} does not export ${n}`)
  try { await import("dynastate/dist/programs/store/KeyActors.js"); throw new Error("an internal module is importable") }
  catch (e) { if (e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e }
  console.log("exports: ok")'

step "the example app's unit tests, on the in-memory store with TestClock (no Java, no DynamoDB)"
npx vitest run --root . app

step "the examples against the in-memory store (dynastate/testing)"
node tour.ts --memory
node app/main.ts --memory

step "DynamoDB Local from dynastate/local"
node local-dynamodb.ts > "$work/local.out" 2>&1 &
local_pid=$!
for _ in $(seq 1 120); do
  endpoint="$(grep -o 'http://[0-9.:]*' "$work/local.out" | head -1 || true)"
  [ -n "$endpoint" ] && break
  kill -0 "$local_pid" 2>/dev/null || { cat "$work/local.out"; fail "DynamoDB Local did not start"; }
  sleep 0.5
done
[ -n "$endpoint" ] || { cat "$work/local.out"; fail "DynamoDB Local did not start in 60 s"; }
echo "DynamoDB Local at $endpoint"
export DYNASTATE_ENDPOINT="$endpoint" DYNASTATE_TABLE_NAME="pack-check" DYNASTATE_KEYRING_FILE="$work/keyring.key"

step "the examples against DynamoDB Local"
node tour.ts
node app/main.ts

step "the installed dynastate binary"
npx dynastate --help | head -3
npx dynastate put /pack-check/greeting "hello from the tarball" >/dev/null
out="$(npx dynastate get /pack-check/greeting 2>/dev/null)"
echo "$out"
echo "$out" | grep -q '"hello from the tarball"' || fail "dynastate get did not print the value put"
rebuilt="$(npx dynastate rebuild greetings --projections projections.ts 2>/dev/null)"
echo "$rebuilt"
echo "$rebuilt" | grep -q "greetings: /pack-check/greeting seq 1 put" || fail "the projections module's rebuild did not see the value put"
echo "$rebuilt" | grep -q "rebuilt greetings: replayed 1 keys" || fail "dynastate rebuild did not report the replay"

step "the installed dynastate binary on the embedded store: its commands share one DynamoDB Local"
embedded=(env -u DYNASTATE_ENDPOINT -u DYNASTATE_KEYRING_FILE DYNASTATE_DATA_DIR="$work/embedded" DYNASTATE_LOCAL_IDLE_MS=20000)
"${embedded[@]}" npx dynastate get /embedded/k >/dev/null 2>&1 && fail "a read on a store never set up succeeded"
"${embedded[@]}" npx dynastate init
keeper="$(node -p "require('$work/embedded/local.json').keeperPid")"
"${embedded[@]}" npx dynastate put /embedded/k "shared" >/dev/null
[ "$("${embedded[@]}" npx dynastate get /embedded/k -o value)" = "shared" ] || fail "dynastate get -o value did not print the value put"
[ "$(node -p "require('$work/embedded/local.json').keeperPid")" = "$keeper" ] || fail "a command started a second DynamoDB Local"
echo "one DynamoDB Local (keeper pid $keeper) served init, put and get"
kill "$keeper"

step "OK"
