#!/bin/bash
# icount.sh: instructions executed inside one function per benchmark
# iteration, counted by callgrind. Instructions do not change with the
# load of a shared machine the way times do: use them to compare two
# builds when the timings swing.
#
#   scripts/icount.sh BINARY BENCH [N] [FUNC]
#
# BINARY is a test binary (go test -c), BENCH its -test.bench pattern (one
# benchmark), N the iterations (default 100), FUNC the function whose
# instructions count (default the rule engine's Evaluate). The count
# covers N+1 iterations (the benchmark's first run) and includes the
# lazy work of the first ones (DFA states): compare the same N only.
# Run it from the binary's package directory (cd rules): benchmarks read
# their testdata by relative path, and the real-mail tier fails elsewhere.
# Needs valgrind (apt-get install valgrind). Go's asynchronous preemption
# signals stop callgrind, so it is turned off.
set -euo pipefail
bin=${1:?test binary}
bench=${2:?benchmark}
n=${3:-100}
fn=${4:-'github.com/portcullis-mail/portcullis/rules.(*Set).Evaluate'}
out=$(mktemp /tmp/icount.XXXXXX)
trap 'rm -f "$out" "$out.log"' EXIT
GODEBUG=asyncpreemptoff=1 GOMAXPROCS=1 valgrind --tool=callgrind --callgrind-out-file="$out" \
	--toggle-collect="$fn" "$bin" -test.run '^$' -test.bench "$bench" -test.benchtime "${n}x" >"$out.log" 2>&1
c=$(awk '/Collected/ {print $4}' "$out.log")
if [ -z "$c" ]; then
	cat "$out.log" >&2
	exit 1
fi
echo "$bench: $c instructions in $fn, $((c / (n + 1))) per iteration"
