#!/usr/bin/env bash
# Runs every fuzz target (FuzzXxx) for FUZZTIME each, two at a time.
#   FUZZTIME=5s      how long each target runs (scripts/test.sh uses 5s;
#                    before a release run FUZZTIME=5m bash scripts/fuzz.sh)
#   FUZZ_SINCE=REV   only the targets of packages changed since REV
#   FUZZMINIMIZE=50x how hard the fuzzer shrinks each new input (Go's
#                    default, 60s, spends a short run shrinking its first
#                    finds: 12 executions in 8 s for FuzzCFB, 36,926 with 50x)
# The seed corpora (f.Add and testdata/fuzz) already run as ordinary tests
# in every `go test`; this adds new inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-5s}
FUZZMINIMIZE=${FUZZMINIMIZE:-50x}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
files=$(grep -rl --include='*_test.go' '^func Fuzz' . | sort)
if [ -n "${FUZZ_SINCE:-}" ]; then
  changed=$(git diff --name-only "$FUZZ_SINCE" -- '*.go' | xargs -r -n1 dirname | sort -u)
  files=$(for f in $files; do d=$(dirname "$f"); d=${d#./}; echo "$changed" | grep -qx "$d" && echo "$f"; done || true)
fi
for file in $files; do
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "$(dirname "$file") $target"
  done
done > "$logs/targets"
echo "fuzz: $(wc -l < "$logs/targets") targets, $FUZZTIME each, two at a time"
fuzz_one() {
  local dir=$1 target=$2 log="$logs/$(echo "$1-$2" | tr '/.' '__').log"
  local run=(go test "$dir" -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZE" -parallel 1)
  if "${run[@]}" >"$log" 2>&1; then
    echo "ok   $dir $target: $(grep -o 'execs: [0-9]*' "$log" | tail -1)"
    return 0
  fi
  # Go's fuzzer can end a short run with a bare "context deadline exceeded"
  # when the time runs out while it handles a new input: no failing input
  # is written, nothing was found. Such a run is repeated once; a real
  # finding ("Failing input written to ...") never is.
  if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
    if "${run[@]}" >"$log" 2>&1; then
      echo "ok   $dir $target: $(grep -o 'execs: [0-9]*' "$log" | tail -1) (second run: the first ended at its deadline)"
      return 0
    fi
  fi
  echo "FAIL $dir $target"; cat "$log"; return 1
}
export -f fuzz_one; export logs FUZZTIME FUZZMINIMIZE
xargs -P 2 -L 1 bash -c 'fuzz_one "$@"' _ < "$logs/targets"
