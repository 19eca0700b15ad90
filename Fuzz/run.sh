#!/usr/bin/env bash
# Builds the libFuzzer binary (ASan + libFuzzer, the sans-IO cores only) and runs each target for SECONDS seconds,
# starting from the committed seeds in Fuzz/corpus/<target>. New inputs go to .build/fuzz/<target>; a crash
# leaves its input in .build/fuzz/crash-* and fails the run (turn it into a unit test).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-10}
OUT=.build/fuzz
mkdir -p "$OUT"
sources=$(find Sources/UVChat/Protocol Sources/UVChat/Chat Sources/UVChat/Calls Sources/UVChat/Crypto Sources/UVChat/Identity Sources/UVChat/Moderation Sources/UVChat/Static Sources/UVChat/Media Sources/UVChat/Cluster -name '*.swift' | sort)
bin=$OUT/uvchat-fuzz
if [ ! -x "$bin" ] || [ -n "$(find $sources Fuzz/FuzzTargets.swift -newer "$bin" 2>/dev/null | head -1)" ]; then
  echo "building $bin"
  swiftc -swift-version 6 -O -sanitize=fuzzer,address -parse-as-library -module-name UVChatFuzz \
    $sources Fuzz/FuzzTargets.swift -o "$bin" 2> >(grep -v 'Cannot export local symbol' >&2)
fi
failed=0
for target in http websocket command path matchmaker image jwt cluster; do
  mkdir -p "$OUT/$target" "Fuzz/corpus/$target"
  if SWIFT_BACKTRACE=enable=no UVCHAT_FUZZ_TARGET=$target "$bin" -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=5 \
      -artifact_prefix="$OUT/crash-$target-" -print_final_stats=0 \
      "$OUT/$target" "Fuzz/corpus/$target" > "$OUT/$target.log" 2>&1; then
    echo "fuzz $target: $(grep -Eo 'Done [0-9]+ runs' "$OUT/$target.log" | tail -1) in ${SECONDS_PER_TARGET}s, no crash"
  else
    echo "fuzz $target: FAILED (see $OUT/$target.log)"
    tail -30 "$OUT/$target.log"
    failed=1
  fi
done
exit $failed
