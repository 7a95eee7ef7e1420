package dfa

import (
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// BenchmarkRun: the DFA's speed per byte once its states are built, on a
// 2 KB paragraph of prose (rules' BenchmarkDFA compares it with Go's
// regexp on the default pipeline's costliest regexes).
func BenchmarkRun(b *testing.B) {
	_, body, _ := strings.Cut(string(benchcorpus.Text(2<<10)), "\r\n\r\n")
	para := strings.ReplaceAll(body, "\r\n", " ")
	for _, tc := range []struct{ name, pattern string }{
		{"longwords", `\b(?:[a-z]{5,}[\s\.]+){10}`},
		{"obfuscated", `(?i)\b_{0,3}z[_\W]?a[_\W]?n[_\W]?a[_\W]?f[_\W]?l[_\W]?e[_\W]?x_{0,3}\b`},
		{"cyrillic", `[A-Za-z][\x{0430}\x{0435}\x{043E}\x{0440}\x{0441}\x{0445}\x{0443}]+[A-Za-z]`},
		{"prefix", `Dear (?:friend|sir)`},
	} {
		d := New(regexp.MustCompile(tc.pattern))
		d.MatchString(para)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(para)))
			defer threadCPU(b)()
			for b.Loop() {
				d.MatchString(para)
			}
		})
		b.Run(tc.name+"/latin1", func(b *testing.B) {
			b.SetBytes(int64(len(para)))
			defer threadCPU(b)()
			for b.Loop() {
				d.MatchLatin1(para)
			}
		})
	}
}

// threadCPU reports the CPU time of the benchmark's thread per op, which
// a machine shared with other work disturbs less than the wall time.
func threadCPU(b *testing.B) func() {
	runtime.LockOSThread()
	var r0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_THREAD, &r0)
	return func() {
		var r1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_THREAD, &r1)
		runtime.UnlockOSThread()
		ns := r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano()
		b.ReportMetric(float64(ns)/float64(b.N), "cpu-ns/op")
	}
}
