#!/usr/bin/env bash
# The test command: installs what is missing (scripts/deps.sh), then
# formatting, go vet, staticcheck, every test with the race detector in
# shuffled order, and a short run of every fuzz target.
#   FUZZTIME=5s   how long each fuzz target runs (0 skips fuzzing)
#   QUICK=1       unit tests only (go test -short, no race detector)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"
FUZZTIME=${FUZZTIME:-5s}
start=$(date +%s)

bash scripts/deps.sh

# Tests that found a component missing write a line here (go test hides
# skip messages of passing packages); it is printed at the end.
export PORTCULLIS_MISSING_REPORT=$(mktemp)
report_missing() {
  if [ -s "$PORTCULLIS_MISSING_REPORT" ]; then
    echo "== missing components (those tests skipped; under CI=true they fail)"
    sort -u "$PORTCULLIS_MISSING_REPORT"
  fi
  rm -f "$PORTCULLIS_MISSING_REPORT"
}
trap report_missing EXIT

if [ -n "${QUICK:-}" ]; then
  echo "== go test -short (unit tests only)"
  go test -short -shuffle=on -count=1 ./...
  echo "== quick checks passed in $(( $(date +%s) - start )) s"
  exit 0
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
staticcheck ./...

echo "== go test -race -shuffle=on"
go test -race -shuffle=on -count=1 -timeout 20m ./...

echo "== allocation bounds (without the race detector, which changes allocation)"
go test -count=1 -run '^TestDefaultPipelineAllocation$' ./config

if [ "$FUZZTIME" != "0" ]; then
  echo "== fuzz"
  FUZZTIME=$FUZZTIME bash scripts/fuzz.sh
fi
echo "== all checks passed in $(( $(date +%s) - start )) s"
