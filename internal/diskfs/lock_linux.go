package diskfs

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Lock takes an exclusive lock on dir/lock so that two processes never
// write one store; what names the store in errors ("queue: spool"). The
// kernel drops the lock when the process dies. The returned function
// releases it.
func Lock(dir, what string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s lock: %w", what, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s %s is in use by another process: %w", what, dir, err)
	}
	return func() { f.Close() }, nil
}
