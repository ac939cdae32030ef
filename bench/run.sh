#!/usr/bin/env bash
# The side-by-side benchmark: rtcio-router against the Node reference server
# (bench/node, socket.io 4), with the echo server as the generator's ceiling.
# Builds everything, then runs bench/loadgen, which starts each server in turn
# on the same core for several rounds and prints Markdown tables of medians and
# router/Node ratios. See bench/README.md.
#
#   bench/run.sh                 full run: 3 rounds, 1k/5k/19k sockets (~15 min)
#   bench/run.sh --quick         smoke run (~2 min)
#   ROUNDS=5 bench/run.sh        more rounds (or pass --rounds 5)
#   bench/run.sh -h              every loadgen flag
#   bench/run.sh --cluster       the cluster suite instead: one node against two
#                                nodes on one Redis, Node's join storm beside
#                                (~10 min; needs redis-server)
#   bench/run.sh --scale 50000   the scale suite instead: 50k idle sockets from
#                                127.0.0.2 and up, 100 relay pairs among them
#                                (capped by the open-file limit)
#
# Environment: ROUNDS, SERVER_CPU (cpu list for the servers, default 1),
# GEN_CPU (for the generator, default 0), NODE (node executable),
# REDIS_SERVER (redis-server executable, for --cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench/run.sh: $1 is required ($2)" >&2; exit 1; }; }
need go "https://go.dev/dl"
need "${NODE:-node}" "Node.js 20: apt-get install nodejs npm"
need npm "apt-get install npm"
cluster=false
for a in "$@"; do
	case "$a" in --cluster | -cluster | --cluster=true | -cluster=true) cluster=true ;; esac
done
if $cluster; then
	need "${REDIS_SERVER:-redis-server}" "Redis 7: apt-get install redis-server"
fi

# Every socket is a file descriptor in both processes: take the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fds=$(ulimit -n)

args=()
if $cluster; then
	# Its join storm and memory sizes are its own flags (-cluster-sizes,
	# -mem-sockets, 10k sockets by default).
	args+=(--redis-server "${REDIS_SERVER:-redis-server}")
	if [ "$fds" != unlimited ] && [ "$fds" -lt 11000 ]; then
		mem=$(( (fds - 1000) / 4 * 4 ))
		echo "bench/run.sh: open-file limit $fds; Redis memory measured with $mem sockets" >&2
		args+=(--mem-sockets "$mem")
	fi
elif [ "$fds" != unlimited ] && [ "$fds" -lt 21000 ]; then
	# The largest size must leave room for the server's own descriptors.
	big=$(( (fds - 1000) / 4 * 4 ))
	if [ "$big" -lt 19000 ]; then
		echo "bench/run.sh: open-file limit $fds; largest scaling size $big sockets" >&2
		args+=(--sizes "1000,5000,$big")
	fi
else
	args+=(--sizes "1000,5000,20000")
fi
[ -n "${ROUNDS:-}" ] && args+=(--rounds "$ROUNDS")

mkdir -p bin
echo "== build rtcio-router and the load generator" >&2
go build -o bin/rtcio-router ./cmd/rtcio-router
go build -o bin/loadgen ./bench/loadgen
echo "== npm ci --prefix bench/node (socket.io 4 and uWebSockets.js from the lockfile)" >&2
npm ci --prefix bench/node --no-audit --no-fund --loglevel=error >&2
# uWebSockets.js is a prebuilt native module for some platforms and Node
# versions only: without it the "Node + uWS" column is skipped, and said why.
if ! why=$(cd bench/node && "${NODE:-node}" -e 'require("@trufflesuite/uws-js-unofficial")' 2>&1); then
	echo "bench/run.sh: uWebSockets.js does not load on $(${NODE:-node} --version) $(uname -m), the Node + uWS column is skipped:" >&2
	echo "$why" | grep -m3 -i 'error' >&2 || true
	$cluster || args+=(--servers echo,router,node)
fi

pin=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	pin=(taskset -c "${GEN_CPU:-0}")
	args+=(--server-cpu "${SERVER_CPU:-1}")
else
	echo "bench/run.sh: no taskset or a single core: not pinning" >&2
	args+=(--server-cpu "")
fi
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3), node $(${NODE:-node} --version)" >&2
exec "${pin[@]}" bin/loadgen --router bin/rtcio-router --rules rtcio.yaml --node bench/node/server.js \
	--node-bin "${NODE:-node}" "${args[@]}" "$@"
