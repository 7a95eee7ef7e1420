//go:build !unix

package clamd

import "net"

// alive cannot peek here; a dead pooled connection is caught by the retry
// in Scan.
func alive(net.Conn) bool { return true }
