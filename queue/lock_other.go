//go:build !linux

package queue

// lockDir does not lock outside Linux: run one process per spool there.
func lockDir(string) (func(), error) { return func() {}, nil }
