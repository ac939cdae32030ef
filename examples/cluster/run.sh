#!/usr/bin/env bash
# Runs the cluster example on this machine: a Redis, two rtcio-router nodes
# sharing it, and HAProxy in front of them with sticky sessions
# (haproxy.cfg), all plain processes on 127.0.0.1. Ctrl-C stops them all.
#
#   examples/cluster/run.sh [RULES.yaml]   # default: examples/recovery/rtcio.yaml
#
# The default rules are the built-in ones with connection state recovery on
# (server.recovery: 2m): in a cluster, a client whose node stops gets its
# session back on the other node, and a call survives a node's restart.
# `kill -USR1` on this script (it prints the command) makes it do a rolling
# restart as the README's "Deploying without dropping calls" describes:
# node1 gets SIGTERM, is started again, and once /health answers 200 and
# HAProxy has it UP, node2 the same; a call in the demo page stays up.
#
# LB_PORT picks the port clients connect to (default 8080, or a free one if
# 8080 is taken); every other port is picked free. LOG_LEVEL=debug makes the
# nodes log each socket that connects to them ("socket connected"). Needs go, redis-server
# and haproxy (Debian: apt-get install redis-server haproxy); the demo page
# also needs `npm ci --prefix demo` once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
rules=$(realpath "${1:-$root/examples/recovery/rtcio.yaml}")

need() { command -v "$1" >/dev/null 2>&1 || { echo "run.sh: $1 is required ($2)" >&2; exit 1; }; }
need go "https://go.dev/dl"
need redis-server "apt-get install redis-server"
need haproxy "apt-get install haproxy"

# listening PORT: whether something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a port nothing listens on and that this script has not handed
# out yet (another program may still take it first: then a start fails).
taken=" "
free_port() {
	local port
	while :; do
		port=$((20000 + RANDOM % 40000))
		if [[ $taken != *" $port "* ]] && ! listening "$port"; then
			taken+="$port "
			echo "$port"
			return
		fi
	done
}

# http_ok PORT PATH: whether GET PATH on 127.0.0.1:PORT answers 200.
# shellcheck disable=SC2317 # run through wait_until
http_ok() {
	local status
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
	IFS= read -r -t 2 status <&3 || status=""
	exec 3<&-
	[[ $status == "HTTP/1."?" 200"* ]]
}

# redis_ok PORT: whether Redis on 127.0.0.1:PORT answers PING.
# shellcheck disable=SC2317 # run through wait_until
redis_ok() {
	local reply
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'PING\r\n' >&3
	IFS= read -r -t 2 reply <&3 || reply=""
	exec 3<&-
	[[ $reply == "+PONG"* ]]
}

# wait_until WHAT COMMAND...: retry COMMAND for up to 10 s.
wait_until() {
	local what=$1 i
	shift
	for ((i = 0; i < 100; i++)); do
		if "$@" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "run.sh: $what did not come up" >&2
	exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rtcio-cluster.XXXXXX")
pids=()      # redis-server, HAProxy
node_pids=() # the nodes, by number - 1
# shellcheck disable=SC2317 # run by the trap
cleanup() {
	trap - EXIT INT TERM
	local all=("${pids[@]}" "${node_pids[@]}")
	if ((${#all[@]})); then
		echo "stopping" >&2
		kill -TERM "${all[@]}" 2>/dev/null || true
		wait "${all[@]}" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building rtcio-router" >&2
(cd "$root" && go build -o "$tmp/rtcio-router" ./cmd/rtcio-router)
bin=$tmp/rtcio-router

redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
	--dir "$tmp" --logfile "$tmp/redis.log" --daemonize no &
pids+=($!)
wait_until "redis-server on port $redis_port (log: $tmp/redis.log)" redis_ok "$redis_port"
redis_url="redis://127.0.0.1:$redis_port/0"

# The nodes serve the demo page (--demo) from the repository's demo/
# node_modules; their logs go to this terminal, each line prefixed.
node_ports=("$(free_port)" "$(free_port)")
# start_node I: node I (1 or 2) on its port.
start_node() {
	local i=$1
	RTCIO_DEMO_DIR="$root/demo" "$bin" -c "$rules" --addr "127.0.0.1:${node_ports[i - 1]}" --redis "$redis_url" \
		--demo --log-level "${LOG_LEVEL:-info}" --log-format text > >(trap "" INT; exec sed -u "s/^/[node$i] /") 2>&1 &
	node_pids[i - 1]=$!
}
for i in 1 2; do
	start_node "$i"
done
for port in "${node_ports[@]}"; do
	wait_until "the node on port $port" http_ok "$port" /health
done

lb_port=${LB_PORT:-8080}
if [[ -z ${LB_PORT:-} ]] && listening "$lb_port"; then
	lb_port=$(free_port)
fi
stats_port=$(free_port)
RTCIO_LB_ADDR="127.0.0.1:$lb_port" RTCIO_STATS_ADDR="127.0.0.1:$stats_port" \
	RTCIO_NODE1_ADDR="127.0.0.1:${node_ports[0]}" RTCIO_NODE2_ADDR="127.0.0.1:${node_ports[1]}" \
	haproxy -db -f "$here/haproxy.cfg" > >(trap "" INT; exec sed -u "s/^/[haproxy] /") 2>&1 &
pids+=($!)
wait_until "HAProxy on port $lb_port" http_ok "$lb_port" /health

cat <<EOF

rtcio-router cluster: 2 nodes sharing Redis $redis_url, behind HAProxy.

  socket.io URL   http://localhost:$lb_port
  demo page       http://localhost:$lb_port/demo/
                  then open the room link in a second tab with 127.0.0.1 in
                  place of localhost: another cookie jar, so the tab can land
                  on the other node (a private window works too)
  HAProxy stats   http://127.0.0.1:$stats_port/   (which node has how many sessions)
  the nodes       http://127.0.0.1:${node_ports[0]}/health   http://127.0.0.1:${node_ports[1]}/health

  rolling restart kill -USR1 $$

Ctrl-C stops everything.
EOF

# lb_up NODE: whether HAProxy's stats show server NODE of rtcio_nodes UP.
# shellcheck disable=SC2317 # run through wait_until
lb_up() {
	local line up=1
	exec 3<>"/dev/tcp/127.0.0.1/$stats_port" || return 1
	printf 'GET /;csv HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
	while IFS= read -r -t 2 line <&3; do
		if [[ $line == "rtcio_nodes,$1,"* && $line == *",UP,"* ]]; then up=0; fi
	done
	exec 3<&-
	return "$up"
}

# rolling_restart: each node in turn gets SIGTERM (it drains: /health 503,
# its clients reconnect to the other node and recover their sessions
# there), is started again, and must answer /health and be UP in HAProxy
# before the next one goes.
rolling_restart() {
	local i
	for i in 1 2; do
		echo "run.sh: rolling restart: node$i gets SIGTERM" >&2
		kill -TERM "${node_pids[i - 1]}"
		wait "${node_pids[i - 1]}" 2>/dev/null || true
		start_node "$i"
		wait_until "node$i on port ${node_ports[i - 1]}" http_ok "${node_ports[i - 1]}" /health
		wait_until "HAProxy to have node$i UP" lb_up "node$i"
		echo "run.sh: rolling restart: node$i is back and UP in HAProxy" >&2
	done
}

# Run until Ctrl-C, or until one of the processes exits; SIGUSR1 (which
# interrupts the wait) asks for a rolling restart.
roll=0
trap 'roll=1' USR1
while :; do
	wait -n "${pids[@]}" "${node_pids[@]}" || true
	if ((roll)); then
		roll=0
		rolling_restart
		continue
	fi
	break
done
echo "run.sh: a process exited; stopping the others" >&2
exit 1
