#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
# It installs what the tests need on a fresh machine: the npm packages of
# the JavaScript test client and of the demo page (from the committed
# lockfiles), and Debian's Chromium for the browser end-to-end test
# (demo/e2e_test.go fails rather than skips when CI=true and it is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser test fails (not skips) when it cannot run under CI=true.
export CI="${CI:-true}"

need() { command -v "$1" >/dev/null 2>&1 || { echo "test.sh: $1 is required ($2)" >&2; exit 1; }; }
need go "https://go.dev/dl"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "test.sh: installing Node.js and npm from Debian packages" >&2
	apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi

if [ ! -x /usr/lib/chromium/chromium ] && [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM:-}" ]; then
	echo "test.sh: installing Chromium from Debian packages (browser end-to-end test)" >&2
	apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

if ! command -v redis-server >/dev/null 2>&1; then
	echo "test.sh: installing redis-server from Debian packages (cluster tests)" >&2
	apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi

if ! command -v haproxy >/dev/null 2>&1; then
	echo "test.sh: installing haproxy from Debian packages (examples/cluster test)" >&2
	apt-get update -qq && apt-get install -y -qq haproxy >/dev/null
fi

echo "== npm ci (socket.io-client@4 for the integration tests and the demo page)"
npm ci --prefix internal/jsclient/node --no-audit --no-fund --loglevel=error
npm ci --prefix demo --no-audit --no-fund --ignore-scripts --loglevel=error
npm ci --prefix admin --no-audit --no-fund --ignore-scripts --loglevel=error
npm ci --prefix router/internal/redisbus/testdata/node --no-audit --no-fund --loglevel=error

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then echo "not gofmt-ed: $unformatted" >&2; exit 1; fi
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

# WebSocket-first clients are served on lean sessions by default
# (server.lean_websocket); the socket.io layer and the router run once more
# with every session on the library's objects, the path polling clients,
# upgrades and recovery take, so both stay correct for every test that
# connects over a WebSocket.
echo "== go test -race, every session on the library (RTCIO_LEAN_WEBSOCKET=0)"
RTCIO_LEAN_WEBSOCKET=0 go test -race -count=1 -timeout 20m ./router/internal/sio/ ./router/

# Each fuzz target beyond its seeds, one per go test run as go test
# requires, for a fixed number of inputs: a time budget (-fuzztime 5s) makes
# Go 1.26's fuzz coordinator fail spuriously with "context deadline
# exceeded" when the machine is busy (go.dev/issue/75804, fixed in 1.27);
# a count has no deadline to race. About 30 s in all once the build cache
# holds the coverage-instrumented build that -fuzz needs (the first run on
# an empty cache builds it: about 2 more minutes). An input that fails is
# written to testdata/fuzz/FuzzX/ under the package, where go test replays
# it from then on: commit it with the fix as a regression case.
# The counts give each target a few seconds here (a rules file takes ~100x
# longer to parse than a frame to decode); FUZZSCALE multiplies them.
echo "== fuzz, a few seconds per target"
while read -r target pkg runs; do
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$((runs * ${FUZZSCALE:-1}))x" "$pkg" </dev/null
done <<'TARGETS'
FuzzAppendJSON ./router/internal/sio 20000
FuzzDecodeJSON ./router/internal/sio 20000
FuzzDecodeObjectEvent ./router/internal/sio 20000
FuzzCutFrame ./router/internal/sio 20000
FuzzDecodeBroadcast ./router/internal/redisbus 20000
FuzzParse ./rules 2000
TARGETS

echo "== benchmarks, one iteration each (smoke: they must still run)"
go test -run '^$' -bench . -benchtime 1x -count=1 -timeout 10m ./... >/dev/null

echo "== all tests passed"
