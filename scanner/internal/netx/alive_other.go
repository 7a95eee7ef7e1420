//go:build !unix

package netx

import "net"

// Alive cannot peek here; a dead pooled connection is caught by the retry
// in Scan.
func Alive(net.Conn) bool { return true }
