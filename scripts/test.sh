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
  echo "== fuzz ($FUZZTIME each)"
  # Every FuzzXxx function, by package directory.
  grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
    dir=$(dirname "$file")
    for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
      echo "-- $dir $target"
      go test "$dir" -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" >/tmp/portcullis-fuzz.log 2>&1 || {
        cat /tmp/portcullis-fuzz.log; echo "fuzz target $target in $dir failed"; exit 1; }
      tail -1 /tmp/portcullis-fuzz.log
    done
  done
fi
echo "== all checks passed"
