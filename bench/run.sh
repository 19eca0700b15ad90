#!/usr/bin/env bash
# make bench: a fresh release uvchatd per scenario, pinned to core 0 with --no-rate-limits, and the load generator
# (uvchat-bench; wrk for static files) pinned to core 1. One JSON line per scenario on stdout, then the markdown
# table. Every scenario runs twice: on uvchatd and on the floor (bench/floor/floor.c, a minimal C server on epoll,
# scenario names floor-*), and the table states each row as a ratio to the floor. Churn closes server-first (RFC
# 6455 7.1.1, as outside benchmarks do); churn-client-close is the other order. Results: .build/bench/results.jsonl
# and .build/bench/table.md.
# Sizes: IDLE_CONNECTIONS (10000, capped by the descriptor limit), CONNECT_CONNECTIONS (10000), RELAY_PAIRS (50),
# RELAY_WINDOW (16), BENCH_SECONDS (8), LATENCY_RATE (20000), CHURN_CONCURRENCY (100). BENCH_ONLY=cluster runs only
# the cluster scenarios, BENCH_ONLY=single only the others, BENCH_ONLY=floor only the floor's. BENCH_UVCHATD: another
# uvchatd binary to measure (an earlier build, for before-and-after figures).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
OUT=.build/bench
BIN=.build/release
mkdir -p "$OUT"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
command -v wrk >/dev/null || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk; }
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  swift build -c release -j "${JOBS:-2}" --product uvchatd
  swift build -c release -j "${JOBS:-2}" --product uvchat-bench
fi
# The floor links libcrypto by its soname (SHA-1 and base64 of the handshake), so it needs no development headers.
cc -O2 -o "$OUT/floor" bench/floor/floor.c -l:libcrypto.so.3
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)
IDLE=${IDLE_CONNECTIONS:-10000}
if [ "$IDLE" -gt $((limit - 256)) ]; then
  echo "note: descriptor limit $limit; idle run shrunk to $((limit - 256)) connections" >&2
  IDLE=$((limit - 256))
fi
SECS=${BENCH_SECONDS:-8}

SERVER_PID=
stop_server() {
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  SERVER_PID=
}
trap stop_server EXIT
SERVER=uvchatd
start_server() {
  if [ "$SERVER" = floor ]; then
    taskset -c 0 "$OUT/floor" 0 www 2> "$OUT/server.log" &
  else
    taskset -c 0 "${BENCH_UVCHATD:-$BIN/uvchatd}" --host 127.0.0.1 --port 0 --www www --no-rate-limits 2> "$OUT/server.log" &
  fi
  SERVER_PID=$!
  PORT=
  for _ in $(seq 100); do
    PORT=$(sed -n 's/.*msg=listening.* port=\([0-9]*\).*/\1/p' "$OUT/server.log" | head -1)
    [ -n "$PORT" ] && break
    sleep 0.05
  done
  [ -n "$PORT" ] || { cat "$OUT/server.log"; exit 1; }
}
: > "$OUT/results.jsonl"
# scenario NAME [options]: one run on $SERVER; its line is renamed floor-NAME on the floor, or to $AS if set.
scenario() {
  start_server
  local as=${AS:-$1}
  [ "$SERVER" = floor ] && as="floor-$1"
  taskset -c 1 "$BIN/uvchat-bench" "$1" --port "$PORT" --pid "$SERVER_PID" "${@:2}" \
    | sed "s/\"scenario\":\"$1\"/\"scenario\":\"$as\"/" | tee -a "$OUT/results.jsonl"
  stop_server
}
single_scenarios() {
  scenario idle --connections "$IDLE"
  scenario connect --connections "${CONNECT_CONNECTIONS:-10000}"
  scenario relay --pairs "${RELAY_PAIRS:-50}" --window "${RELAY_WINDOW:-16}" --seconds "$SECS"
  [ "$SERVER" = floor ] || scenario latency --pairs "${RELAY_PAIRS:-50}" --rate "${LATENCY_RATE:-20000}" --seconds "$SECS"
  scenario churn --concurrency "${CHURN_CONCURRENCY:-100}" --seconds "$SECS"
  [ "$SERVER" = floor ] || AS=churn-client-close scenario churn --close client --concurrency "${CHURN_CONCURRENCY:-100}" --seconds "$SECS"
  scenario static --seconds "$SECS"
}
case "${BENCH_ONLY:-}" in
  cluster) ;;
  floor) SERVER=floor single_scenarios ;;
  single) single_scenarios ;;
  *) single_scenarios; SERVER=floor single_scenarios ;;
esac
# The cluster (issue 18): a redis-server on a unix socket and two nodes, all on core 0, the generator on core 1.
# relay-cluster-cross: every pair split across the nodes (clients connect one at a time, alternating nodes, so the
# FIFO pairs each with the next); relay-cluster-local: the same cluster, every client on node 0 (no Redis hop).
# CPU per message is both nodes' together, and redis-server's apart; the pairing latency is the newcomer's.
cluster_scenario() {
  local name=$1 ports_of=$2
  local dir; dir=$(mktemp -d)
  taskset -c 0 redis-server --port 0 --unixsocket "$dir/redis.sock" --save "" --appendonly no --dir "$dir" >/dev/null &
  local rpid=$!
  for _ in $(seq 100); do [ -S "$dir/redis.sock" ] && break; sleep 0.05; done
  local pids=() ports=()
  for i in 0 1; do
    taskset -c 0 "$BIN/uvchatd" --host 127.0.0.1 --port 0 --www www --no-rate-limits --redis "unix:$dir/redis.sock" \
      --node-id "bench$i" 2> "$OUT/node$i.log" &
    pids+=($!)
  done
  for i in 0 1; do
    for _ in $(seq 200); do grep -q 'cluster: joined' "$OUT/node$i.log" && break; sleep 0.05; done
    ports+=("$(sed -n 's/.*msg=listening.* port=\([0-9]*\).*/\1/p' "$OUT/node$i.log" | head -1)")
  done
  local use="${ports[0]},${ports[1]}"
  [ "$ports_of" = local ] && use="${ports[0]}"
  taskset -c 1 "$BIN/uvchat-bench" relay --port "${ports[0]}" --ports "$use" --pid "${pids[0]}" --pids "${pids[1]}" \
    --redis-pid "$rpid" --pairs "${RELAY_PAIRS:-50}" --window "${RELAY_WINDOW:-16}" --seconds "$SECS" --ramp-concurrency 1 \
    | sed "s/\"scenario\":\"relay\"/\"scenario\":\"$name\"/" | tee -a "$OUT/results.jsonl"
  # Churn over the cluster (connect, pair through the shared queue, a message each way, close): the queue's cost
  # in Redis per session, whose inverse is its ceiling in pairings per second on one Redis core.
  [ "$ports_of" = cross ] && taskset -c 1 "$BIN/uvchat-bench" churn --port "${ports[0]}" --ports "$use" --pid "${pids[0]}" \
    --pids "${pids[1]}" --redis-pid "$rpid" --concurrency "${CHURN_CONCURRENCY:-100}" --seconds "$SECS" \
    | sed "s/\"scenario\":\"churn\"/\"scenario\":\"churn-cluster\"/" | tee -a "$OUT/results.jsonl"
  kill -TERM "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true
  kill -TERM "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true
  rm -rf "$dir"
}
if [ "${BENCH_ONLY:-}" = single ] || [ "${BENCH_ONLY:-}" = floor ]; then
  :
elif command -v redis-server >/dev/null; then
  cluster_scenario relay-cluster-cross cross
  cluster_scenario relay-cluster-local local
else
  echo "note: redis-server not installed (make test-deps installs it); the cluster scenarios are skipped" >&2
fi
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
{ echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(uname -m), ${CPU:-unknown CPU}, Linux $(uname -r | cut -d- -f1)); uvchatd on core 0, generator on core 1."; echo
  "$BIN/uvchat-bench" table "$OUT/results.jsonl"; } | tee "$OUT/table.md"
