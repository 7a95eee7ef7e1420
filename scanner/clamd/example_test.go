package clamd_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/portcullis-mail/portcullis/scanner/clamd"
)

// tinyClamd answers every zINSTREAM as clamd would for EICAR.
func tinyClamd() net.Listener {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			br.ReadString(0) // zINSTREAM
			for {
				var n [4]byte
				io.ReadFull(br, n[:])
				size := int(n[0])<<24 | int(n[1])<<16 | int(n[2])<<8 | int(n[3])
				if size == 0 {
					break
				}
				io.CopyN(io.Discard, br, int64(size))
			}
			io.WriteString(c, "stream: Eicar-Test-Signature FOUND\x00")
			c.Close()
		}
	}()
	return ln
}

func Example() {
	ln := tinyClamd()
	defer ln.Close()
	// Addr is "host:port" or "unix:/run/clamav/clamd.ctl".
	c, err := clamd.New(clamd.Config{Addr: ln.Addr().String(), MaxIdle: -1})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	res, err := c.Scan(context.Background(), strings.NewReader("X5O!..."))
	fmt.Println(res.Signatures, err)
	// Output: [Eicar-Test-Signature] <nil>
}

// The limits that bound what clamd scans whole, from its clamd.conf.
func ExampleReadLimits() {
	dir, _ := os.MkdirTemp("", "clamd-example-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "clamd.conf")
	os.WriteFile(path, []byte("StreamMaxLength 25M\nMaxFileSize 10M\n# MaxScanSize left at its default\n"), 0o644)
	lim, err := clamd.ReadLimits(path)
	fmt.Println(lim.StreamMaxLength, lim.MaxFileSize, lim.MaxScanSize, lim.Max(), err)
	// Output: 26214400 10485760 419430400 10485760 <nil>
}
