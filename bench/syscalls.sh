#!/usr/bin/env bash
# The kernel side of a session: system calls per churn session (connect, upgrade, pair, one message each way,
# close server-first), counted by `strace -c -f` on uvchatd and on the floor
# (bench/floor/floor.c) for the same fixed workload, net of a run without clients. Counts, not times: strace slows
# every call, so its times say nothing; the counts are exact and the same from run to run.
#
#   SYSCALL_SESSIONS=2000 BENCH_SKIP_BUILD=1 bash bench/syscalls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/opt/swift/usr/bin"
SESSIONS=${SYSCALL_SESSIONS:-2000}
OUT=.build/bench/syscalls
BIN=.build/release
mkdir -p "$OUT"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
command -v strace >/dev/null || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends strace; }
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  swift build -c release -j "${JOBS:-2}" --product uvchatd
  swift build -c release -j "${JOBS:-2}" --product uvchat-bench
fi
cc -O2 -o "$OUT/floor" bench/floor/floor.c -l:libcrypto.so.3

PID=
# Stops the traced server (not strace, which would detach and leave it running); strace then writes its table.
stop() {
  if [ -n "$PID" ]; then
    pkill -TERM -P "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  PID=
}
trap stop EXIT

# count SERVER NAME WORKLOAD...: the server under strace -c, one workload (none: the baseline); the counts land in
# $OUT/SERVER-NAME.txt.
count() {
  local server=$1 name=$2 log="$OUT/$1-$2.log" port=
  shift 2
  if [ "$server" = floor ]; then
    strace -f -c -o "$OUT/$server-$name.txt" "$OUT/floor" 0 www 2> "$log" &
  else
    strace -f -c -o "$OUT/$server-$name.txt" "$BIN/uvchatd" --host 127.0.0.1 --port 0 --www www --no-rate-limits 2> "$log" &
  fi
  PID=$!
  for _ in $(seq 200); do
    port=$(sed -n 's/.*msg=listening.* port=\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { cat "$log" >&2; exit 1; }
  case "${1:-}" in
    churn) "$BIN/uvchat-bench" churn --sessions "$SESSIONS" --port "$port" --pid "$PID" > "$OUT/$server-$name.json" ;;
    "") sleep 0.5 ;;
  esac
  sleep 0.5
  stop
}

for server in uvchatd floor; do
  count "$server" baseline
  count "$server" churn churn
done
python3 - "$OUT" "$SESSIONS" <<'EOF'
import re, sys
out, sessions = sys.argv[1], int(sys.argv[2])
def calls(path):
    found = {}
    for line in open(path):
        parts = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(parts) >= 5 and re.match(r"^[0-9.]+$", parts[0]) and parts[-1] != "total":
            found[parts[-1]] = int(parts[3])
    return found
rows = {}
for server in ("uvchatd", "floor"):
    base, run = calls(f"{out}/{server}-baseline.txt"), calls(f"{out}/{server}-churn.txt")
    rows[server] = {k: (run.get(k, 0) - base.get(k, 0)) / sessions for k in set(run) | set(base)}
names = sorted({k for r in rows.values() for k, v in r.items() if abs(v) >= 0.005},
               key=lambda k: -rows["uvchatd"].get(k, 0))
print(f"system calls per churn session ({sessions} sessions, strace -c -f, net of a run without clients)")
print("| system call | uvchatd | floor |")
print("|---|---:|---:|")
for k in names:
    print(f"| {k} | {rows['uvchatd'].get(k, 0):.2f} | {rows['floor'].get(k, 0):.2f} |")
print(f"| **all** | **{sum(rows['uvchatd'].values()):.2f}** | **{sum(rows['floor'].values()):.2f}** |")
EOF
