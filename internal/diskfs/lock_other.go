//go:build !linux

package diskfs

// Lock does not lock outside Linux: run one process per store there.
func Lock(string, string) (func(), error) { return func() {}, nil }
