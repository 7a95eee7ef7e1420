//go:build unix

package benchcorpus

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time (user and system) the process has used: on
// a machine shared with other work it measures a benchmark better than
// the wall clock does.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
