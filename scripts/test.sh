#!/usr/bin/env bash
# The test command: formatting, go vet, staticcheck, every test with the
# race detector in shuffled order, then a short run of every fuzz target.
#   FUZZTIME=30s   how long each fuzz target runs (0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"
FUZZTIME=${FUZZTIME:-30s}

bash scripts/deps.sh

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
staticcheck ./...

echo "== go test -race -shuffle=on"
go test -race -shuffle=on -count=1 -timeout 20m ./...

if [ "$FUZZTIME" != "0" ]; then
  echo "== fuzz ($FUZZTIME each, two at a time)"
  # Every FuzzXxx function, as "package-dir target" lines. Two fuzzers run
  # side by side with one worker each: the same CPU as one after the other
  # with two workers, in half the wall time.
  logs=$(mktemp -d)
  grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
    for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
      echo "$(dirname "$file") $target"
    done
  done > "$logs/targets"
  fuzz_one() {
    local dir=$1 target=$2 log="$logs/$(echo "$1-$2" | tr '/.' '__').log"
    if go test "$dir" -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -parallel 1 >"$log" 2>&1; then
      echo "ok   $dir $target: $(grep -o 'execs: [0-9]*' "$log" | tail -1)"
    else
      echo "FAIL $dir $target"; cat "$log"; return 1
    fi
  }
  export -f fuzz_one; export logs FUZZTIME
  xargs -P 2 -L 1 bash -c 'fuzz_one "$@"' _ < "$logs/targets"
  rm -rf "$logs"
fi
echo "== all checks passed"
