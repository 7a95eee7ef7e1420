package smtpd

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
)

// countingListener counts the reads of the connections it accepts.
type countingListener struct {
	net.Listener
	reads atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, reads: &l.reads}, nil
}

type countingConn struct {
	net.Conn
	reads *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// TestLimitedConnBufferedRead: the listener's connections read the socket
// in large pieces and hand back every byte in order through small reads,
// then the socket's EOF; between bursts they hold no buffer.
func TestLimitedConnBufferedRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	l := LimitListener(cl, ListenerLimits{})
	defer l.Close()
	want := make([]byte, 300<<10)
	for i := range want {
		want[i] = byte(i*7 + i>>10)
	}
	sent := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			sent <- err
			return
		}
		for off := 0; off < len(want); off += 10000 {
			if _, err := c.Write(want[off:min(off+10000, len(want))]); err != nil {
				sent <- err
				return
			}
		}
		sent <- c.Close()
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lc := c.(*limitedConn)
	var got []byte
	p := make([]byte, 4096)
	for {
		n, err := lc.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 64<<10 && lc.buf != nil && lc.r == lc.w {
			t.Fatal("a drained buffer is held")
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d, equal %v", len(got), len(want), bytes.Equal(got[:min(len(got), len(want))], want[:min(len(got), len(want))]))
	}
	if lc.buf != nil {
		t.Error("a buffer is held after EOF")
	}
	if n := cl.reads.Load(); n >= int64(len(want)/len(p)) {
		t.Errorf("%d socket reads for %d bytes read 4 KiB at a time: not buffered", n, len(want))
	}
	if n, err := lc.Read(p); n != 0 || err == nil {
		t.Errorf("read after EOF: %d, %v", n, err)
	}
}
