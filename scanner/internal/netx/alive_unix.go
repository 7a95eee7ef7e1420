//go:build unix

package netx

import (
	"errors"
	"net"
	"syscall"
)

// Alive reports whether a pooled connection is still open: a non-blocking
// peek that finds EOF (clamd closed an idle session) or stray bytes means
// it is not usable.
func Alive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var b [1]byte
	cerr := raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		_ = n
		ok = errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
		return true
	})
	return cerr == nil && ok
}
