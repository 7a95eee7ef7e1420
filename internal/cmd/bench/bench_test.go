package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"os"
	"testing"

	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// fakeClamd answers PING and INSTREAM (in or out of a session) like
// clamd, reading every chunk.
func fakeClamd(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadByte(); err != nil {
						return
					}
					cmd, err := r.ReadBytes(0)
					if err != nil {
						return
					}
					switch string(cmd) {
					case "PING\x00":
						c.Write([]byte("PONG\x00"))
					case "INSTREAM\x00":
						for {
							var h [4]byte
							if _, err := io.ReadFull(r, h[:]); err != nil {
								return
							}
							n := binary.BigEndian.Uint32(h[:])
							if n == 0 {
								break
							}
							io.CopyN(io.Discard, r, int64(n))
						}
						c.Write([]byte("stream: OK\x00"))
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRelayCountsInstreamPayload(t *testing.T) {
	addr := fakeClamd(t)
	if err := waitClamd(addr, 0); err != nil {
		t.Fatal(err)
	}
	r, err := newRelay(addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, chunks := range [][]int{{1000, 24}, {7}} {
		c.Write([]byte("zINSTREAM\x00"))
		for _, n := range chunks {
			var h [4]byte
			binary.BigEndian.PutUint32(h[:], uint32(n))
			c.Write(h[:])
			c.Write(make([]byte, n))
		}
		c.Write([]byte{0, 0, 0, 0})
		reply := make([]byte, len("stream: OK\x00"))
		if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "stream: OK\x00" {
			t.Fatalf("reply %q, %v", reply, err)
		}
	}
	c.Write([]byte("zPING\x00"))
	pong := make([]byte, 5)
	if _, err := io.ReadFull(c, pong); err != nil || string(pong) != "PONG\x00" {
		t.Fatalf("PING through the relay: %q, %v", pong, err)
	}
	c.Close()
	r.Close()
	if p, n := r.payload.Load(), r.scans.Load(); p != 1031 || n != 2 {
		t.Errorf("counted %d bytes in %d scans, want 1031 in 2", p, n)
	}
}

func TestCPUOfThisProcess(t *testing.T) {
	c0 := procCPU("self", false)
	x := 0
	for i := range 50_000_000 {
		x ^= i * i
	}
	if x == 1 {
		t.Log(x)
	}
	if c := treeCPU(os.Getpid()); c < c0 || c <= 0 {
		t.Errorf("treeCPU %v after procCPU %v", c, c0)
	}
	if procCPU("0", false) != 0 {
		t.Error("CPU of a missing process")
	}
}

func TestLeafBytesExpandsTheZip(t *testing.T) {
	raw := benchcorpus.Zip(160 << 10)
	n := leafBytes(raw)
	// The zip's members are mostly text that deflates about 3:1; the
	// leaves and the rest must be well over the message and under 4×.
	if n < len(raw)*5/4 || n > 4*len(raw) {
		t.Errorf("leafBytes %d for a %d-byte message with a zip", n, len(raw))
	}
	if txt := benchcorpus.Text(2 << 10); leafBytes(txt) != len(txt) {
		t.Errorf("leafBytes %d for a %d-byte text message", leafBytes(txt), len(txt))
	}
}
