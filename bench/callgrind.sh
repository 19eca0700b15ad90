#!/usr/bin/env bash
# A repeatable measure for a noisy machine: uvchatd's instructions per relayed message and per session
# under `valgrind --tool=callgrind`, for a fixed workload driven by uvchat-bench. Each figure is the
# difference between a run with the workload and a baseline run without it, divided by the workload size,
# so start-up, shutdown and (for relay) connecting and pairing cancel out.
#
#   CALLGRIND_PAIRS=2 CALLGRIND_MESSAGES=20000 CALLGRIND_SESSIONS=2000 BENCH_SKIP_BUILD=1
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"

PAIRS=${CALLGRIND_PAIRS:-2}
MESSAGES=${CALLGRIND_MESSAGES:-20000}
SESSIONS=${CALLGRIND_SESSIONS:-2000}
OUT=.build/bench/callgrind
BIN=.build/release
mkdir -p "$OUT"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
command -v valgrind >/dev/null || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends valgrind; }

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    swift build -c release -j "${JOBS:-2}" --product uvchatd
    swift build -c release -j "${JOBS:-2}" --product uvchat-bench
fi

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    [ -n "$SERVER_PID" ] && { wait "$SERVER_PID" 2>/dev/null || true; }
    SERVER_PID=
}
trap stop_server EXIT

# run NAME [uvchat-bench args...]: one server under callgrind, one workload (none when no args); prints Ir.
run() {
    local name=$1 log="$OUT/$1.log" profile="$OUT/$1.out" port=
    shift
    rm -f "$profile"
    valgrind --tool=callgrind --callgrind-out-file="$profile" \
        "$BIN/uvchatd" --host 127.0.0.1 --port 0 --www www --no-rate-limits 2> "$log" &
    SERVER_PID=$!
    for _ in $(seq 600); do
        port=$(sed -n 's/.*msg=listening.* port=\([0-9]*\).*/\1/p' "$log" | head -1)
        [ -n "$port" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "uvchatd did not start under valgrind:" >&2; cat "$log" >&2; exit 1; }
    if [ $# -gt 0 ]; then
        "$BIN/uvchat-bench" "$@" --host 127.0.0.1 --port "$port" --pid "$SERVER_PID" > "$OUT/$name.json"
        # Let the server see every client's close before it is asked to stop.
        sleep 1
    fi
    stop_server
    # "summary:" (or "totals:") holds the event counts of the whole run; Ir comes first.
    local ir
    ir=$(sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$profile" | head -1)
    [ -n "$ir" ] || { echo "no totals in $profile" >&2; exit 1; }
    echo "$ir"
}

echo "callgrind: $PAIRS pairs x $MESSAGES relayed messages in all, $SESSIONS churn sessions (profiles in $OUT)"
base=$(run baseline)
relay0=$(run relay0 relay --pairs "$PAIRS" --messages 0)
relay=$(run relay relay --pairs "$PAIRS" --messages "$MESSAGES")
churn=$(run churn churn --sessions "$SESSIONS")

per_message=$(( (relay - relay0) / MESSAGES ))
per_session=$(( (churn - base) / SESSIONS ))
printf '%-44s %14s\n' "run" "instructions"
printf '%-44s %14d\n' "start + stop, no clients" "$base" \
    "$((2 * PAIRS)) clients paired, 0 messages" "$relay0" \
    "$((2 * PAIRS)) clients paired, $MESSAGES messages" "$relay" \
    "$SESSIONS churn sessions" "$churn"
echo
echo "instructions per relayed message: $per_message"
echo "instructions per churn session:   $per_session"
printf '{"scenario":"callgrind","pairs":%d,"messages":%d,"sessions":%d,"ir_baseline":%d,"ir_relay0":%d,"ir_relay":%d,"ir_churn":%d,"ir_per_message":%d,"ir_per_session":%d}\n' \
    "$PAIRS" "$MESSAGES" "$SESSIONS" "$base" "$relay0" "$relay" "$churn" "$per_message" "$per_session" | tee "$OUT/result.json"
