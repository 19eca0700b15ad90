#!/usr/bin/env bash
# Builds and runs the uvchat microbenchmarks (see Benchmarks/README.md). Non-interactive: stdin is not read.
#
#   Benchmarks/run.sh                 build, run every benchmark (results table), then the allocation check
#   Benchmarks/run.sh --build-only    only compile the benchmark executables (release), as `make test` does
#   Benchmarks/run.sh --check         only the allocation check
#   Benchmarks/run.sh [--check] -- OPTIONS...
#                                     pass OPTIONS to `swift package benchmark`, e.g.
#                                     -- --target Relay --filter 'relay message.*'   (filters match whole names)
#
# The allocation check fails (exit 1) when a benchmark with a Thresholds/<Target>.<name>.p90.json file allocates:
# its p90 mallocs per measured iteration (1000 messages) must be 0. It measures mallocCountTotal alone, because with
# cpuTotal or instructions enabled the benchmark package counts 16 mallocs of its own per measured iteration.
#
# Environment: JOBS (default 2), SCRATCH (default <repo>/.build-micro).
set -euo pipefail
exec </dev/null

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
export PATH="$PATH:/opt/swift/usr/bin"
export CI=true
JOBS=${JOBS:-2}
SCRATCH=${SCRATCH:-$root/.build-micro}
swiftpm=(--package-path "$here" --scratch-path "$SCRATCH" -j "$JOBS")

mode=all
case "${1:-}" in
  --build-only) mode=build; shift ;;
  --check) mode=check; shift ;;
esac
[ "${1:-}" = "--" ] && shift
[ "$mode" = build ] && [ $# -gt 0 ] && { echo "run.sh: --build-only takes no options" >&2; exit 2; }

if [ "$mode" = build ]; then
  # Product by product: a plain `swift build` would also build the root package's executables.
  for dir in "$here"/Benchmarks/*/; do
    swift build "${swiftpm[@]}" -c release --product "$(basename "$dir")"
  done
  exit 0
fi

# Every Thresholds file must name an existing benchmark, or a rename would silently drop it from the check; and
# every benchmark must have one unless it is listed here as allowed to allocate (a pairing by interest allocates
# the `common` tags array).
ALLOCATING='^Matchmaking\.pair by interest'
check_threshold_files() {
  local listed missing=0 f
  listed=$(swift package "${swiftpm[@]}" benchmark list 2>/dev/null |
    awk '/^Target .* available benchmarks:$/ { t = $2; gsub("\047", "", t); next } NF && t != "" { print t "." $0 }') ||
    { echo "run.sh: 'swift package benchmark list' failed" >&2; return 1; }
  [ -n "$listed" ] || { echo "run.sh: 'benchmark list' listed nothing" >&2; return 1; }
  for f in "$here"/Thresholds/*.p90.json; do
    f=$(basename "$f" .p90.json)
    grep -qxF -- "$f" <<<"$listed" || { echo "run.sh: Thresholds/$f.p90.json names no benchmark" >&2; missing=1; }
  done
  while IFS= read -r name; do
    [ -f "$here/Thresholds/$name.p90.json" ] || grep -qE -- "$ALLOCATING" <<<"$name" ||
      { echo "run.sh: no Thresholds/$name.p90.json (add one, or list it in ALLOCATING in run.sh)" >&2; missing=1; }
  done <<<"$listed"
  return $missing
}

if [ "$mode" = all ]; then
  swift package "${swiftpm[@]}" benchmark run --no-progress "$@"
fi

check_threshold_files
echo "Allocation check (mallocCountTotal only, thresholds in Benchmarks/Thresholds):"
swift package "${swiftpm[@]}" benchmark thresholds check --metric mallocCountTotal \
  --path "$here/Thresholds" --no-progress "$@"
