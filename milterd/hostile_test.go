package milterd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/emersion/go-milter"

	"github.com/portcullis-mail/portcullis/filter"
)

// packet encodes one milter packet.
func packet(code byte, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	b = append(b, code)
	return append(b, data...)
}

func optneg(actions milter.OptAction) []byte {
	d := binary.BigEndian.AppendUint32(nil, 6)
	d = binary.BigEndian.AppendUint32(d, uint32(actions))
	d = binary.BigEndian.AppendUint32(d, 0x1fffff)
	return packet('O', d)
}

var allActions = milter.OptAddHeader | milter.OptChangeHeader | milter.OptQuarantine | milter.OptChangeBody

func connectPacket() []byte {
	d := append([]byte("client.example\x00"), '4', 0x10, 0x92)
	return packet('C', append(d, "192.0.2.7\x00"...))
}

// conversation is a whole valid MTA side of one message.
func conversation() []byte {
	var b []byte
	b = append(b, optneg(allActions)...)
	b = append(b, packet('D', []byte("Cj\x00mta.example\x00"))...)
	b = append(b, connectPacket()...)
	b = append(b, packet('H', []byte("client.example\x00"))...)
	b = append(b, packet('M', []byte("<a@example.org>\x00SIZE=10\x00"))...)
	b = append(b, packet('R', []byte("<b@example.net>\x00"))...)
	b = append(b, packet('L', []byte("Subject\x00hi\x00"))...)
	b = append(b, packet('L', []byte("X-Spam-Status\x00No\x00"))...)
	b = append(b, packet('N', nil)...)
	b = append(b, packet('B', []byte("body\r\n"))...)
	b = append(b, packet('E', nil)...)
	b = append(b, packet('Q', nil)...)
	return b
}

type rawPeer struct {
	t    *testing.T
	conn net.Conn
}

func (h *harness) dial() *rawPeer {
	h.t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return &rawPeer{t: h.t, conn: c}
}

func (p *rawPeer) send(b []byte) {
	p.t.Helper()
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("write: %v", err)
	}
}

// read reads one response packet.
func (p *rawPeer) read() (byte, []byte, error) {
	p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(p.conn, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > 1<<20 {
		p.t.Fatalf("server sent length %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(p.conn, b); err != nil {
		return 0, nil, err
	}
	return b[0], b[1:], nil
}

func (p *rawPeer) expect(code byte) []byte {
	p.t.Helper()
	c, d, err := p.read()
	if err != nil {
		p.t.Fatalf("want %q, got %v", code, err)
	}
	if c != code {
		p.t.Fatalf("want %q, got %q %q", code, c, d)
	}
	return d
}

// closed waits until the server closes the connection (EOF or reset)
// without answering anything else.
func (p *rawPeer) closed() {
	p.t.Helper()
	c, d, err := p.read()
	if err == nil {
		p.t.Fatalf("server answered %q %q, want the connection closed", c, d)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		p.t.Fatalf("server kept the connection open: %v", err)
	}
}

func (p *rawPeer) negotiate() {
	p.t.Helper()
	p.send(optneg(allActions))
	d := p.expect('O')
	if len(d) < 12 {
		p.t.Fatalf("optneg reply %x", d)
	}
	if v := binary.BigEndian.Uint32(d); v != 6 {
		p.t.Fatalf("version %d", v)
	}
	// Header edits always, quarantine in PostfixHold mode, nothing else.
	need, may := milter.OptAddHeader|milter.OptChangeHeader, milter.OptAddHeader|milter.OptChangeHeader|milter.OptQuarantine
	if a := milter.OptAction(binary.BigEndian.Uint32(d[4:])); a&need != need || a&^may != 0 {
		p.t.Fatalf("actions %#x, want %#x and at most %#x", a, need, may)
	}
	if pr := milter.OptProtocol(binary.BigEndian.Uint32(d[8:])); pr != 0 {
		p.t.Fatalf("protocol %#x, want every event (a skipped one stalls on its macros)", pr)
	}
}

func TestHostileHugeLengthIsRefusedBeforeAllocation(t *testing.T) {
	h := startFake(t, &fakeBegin{}, nil)
	for _, n := range []uint32{DefaultMaxPacket + 1, 1 << 31, 0xffffffff} {
		p := h.dial()
		p.negotiate()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		p.send(binary.BigEndian.AppendUint32(nil, n))
		p.closed()
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 4<<20 {
			t.Errorf("length %d: %d bytes allocated", n, d)
		}
	}
	if got := h.metrics.Get("portcullis_milter_protocol_errors_total{reason,packet_too_long}"); got != 3 {
		t.Fatalf("packet_too_long counted %v times, want 3", got)
	}
	stillServes(t, h)
}

// stillServes runs one good conversation after hostile ones.
func stillServes(t *testing.T, h *harness) {
	t.Helper()
	s := h.session()
	envelope(t, s, "b@example.net")
	_, act := message(t, s, "x\r\n", "Subject", "x")
	wantCode(t, "eom after hostile peers", act, milter.ActAccept)
}

func TestHostilePacketAtTheLimit(t *testing.T) {
	const max = 70000
	h := startFake(t, &fakeBegin{}, func(c *Config) { c.MaxPacket = max })
	for _, size := range []int{max, max + 1} {
		p := h.dial()
		p.negotiate()
		p.send(connectPacket())
		p.expect('c')
		p.send(packet('M', []byte("<a@example.org>\x00")))
		p.expect('c')
		// A header packet of exactly size bytes (command byte included).
		name := "X-Long\x00"
		value := bytes.Repeat([]byte("v"), size-1-len(name)-1)
		p.send(packet('L', append(append([]byte(name), value...), 0)))
		if size <= max {
			p.expect('c')
		} else {
			p.closed()
		}
	}
}

func TestHostileTruncatedPackets(t *testing.T) {
	for name, tail := range map[string][]byte{
		"length":             {0, 0},
		"payload":            append(binary.BigEndian.AppendUint32(nil, 100), bytes.Repeat([]byte{'B'}, 10)...),
		"mid body":           append(packet('B', []byte("part of a body\r\n")), packet('B', []byte("xy"))[:6]...),
		"after end of hdrs":  packet('B', []byte("x"))[:3],
		"connect only":       nil,
		"zero length":        {0, 0, 0, 0},
		"truncated optneg 2": packet('O', []byte{0, 0, 0, 6})[:6],
	} {
		t.Run(name, func(t *testing.T) {
			b := &fakeBegin{}
			h := startFake(t, b, nil)
			p := h.dial()
			p.negotiate()
			p.send(connectPacket())
			p.expect('c')
			p.send(packet('M', []byte("<a@example.org>\x00")))
			p.expect('c')
			p.send(packet('R', []byte("<b@example.net>\x00")))
			p.expect('c')
			p.send(packet('L', []byte("Subject\x00x\x00")))
			p.expect('c')
			p.send(packet('N', nil))
			p.expect('c')
			p.send(tail)
			for range bytes.Count(tail, []byte("part of a body")) {
				p.expect('c')
			}
			p.conn.(*net.TCPConn).CloseWrite()
			p.closed()
			// the cleanup checks that the transaction was closed
		})
	}
}

func TestHostileCommands(t *testing.T) {
	for name, tc := range map[string]struct {
		negotiate bool
		send      []byte
	}{
		"unknown command":        {true, packet('Z', []byte("whatever"))},
		"command before optneg":  {false, connectPacket()},
		"second optneg":          {true, optneg(allActions)},
		"header before mail":     {true, append(connectPacket(), packet('L', []byte("Subject\x00x\x00"))...)},
		"rcpt before mail":       {true, append(connectPacket(), packet('R', []byte("<b@example.net>\x00"))...)},
		"mail before connect":    {true, packet('M', []byte("<a@example.org>\x00"))},
		"malformed connect":      {true, packet('C', []byte("host-without-nul"))},
		"connect without port":   {true, packet('C', []byte("h\x004"))},
		"short optneg":           {false, packet('O', []byte{0, 0, 0, 6})},
		"version 1":              {false, packet('O', append(binary.BigEndian.AppendUint32(nil, 1), make([]byte, 8)...))},
		"quarantine not allowed": {false, optneg(milter.OptAddHeader | milter.OptChangeHeader)},
		"empty mail":             {true, append(connectPacket(), packet('M', nil)...)},
	} {
		t.Run(name, func(t *testing.T) {
			h := startFake(t, &fakeBegin{}, nil)
			p := h.dial()
			if tc.negotiate {
				p.negotiate()
			}
			p.send(tc.send)
			// A connect packet in front is answered first.
			if tc.negotiate && bytes.HasPrefix(tc.send, connectPacket()) {
				p.expect('c')
			}
			p.closed()
			if h.metrics.Get("portcullis_milter_protocol_errors_total") == 0 {
				t.Fatal("protocol error not counted")
			}
			stillServes(t, h)
		})
	}
}

func TestHostileSilentPeerTimesOut(t *testing.T) {
	h := startFake(t, &fakeBegin{}, func(c *Config) { c.ReadTimeout = 100 * time.Millisecond })
	p := h.dial()
	p.negotiate()
	p.send(connectPacket())
	p.expect('c')
	start := time.Now()
	p.closed() // nothing more sent: the server gives up after ReadTimeout
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

func TestHostileDisconnectDuringVerdict(t *testing.T) {
	release := make(chan struct{})
	b := &fakeBegin{data: func([]byte) filter.Verdict { <-release; return accept }}
	h := startFake(t, b, nil)
	p := h.dial()
	p.send(bytes.TrimSuffix(conversation(), packet('Q', nil)))
	p.expect('O')
	for range 7 { // connect helo mail rcpt header header eoh
		p.expect('c')
	}
	p.expect('c')  // body
	p.conn.Close() // the MTA goes away while the filters run
	close(release)
	stillServes(t, h)
}

func TestShutdownWaitsForSessions(t *testing.T) {
	b := &fakeBegin{}
	h := startFake(t, b, nil)
	s := h.session()
	envelope(t, s, "b@example.net")
	done := make(chan error, 1)
	go func() { done <- h.srv.Shutdown(t.Context()) }()
	_, act := message(t, s, "x\r\n", "Subject", "x")
	wantCode(t, "eom during shutdown", act, milter.ActAccept)
	s.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// FuzzSession feeds arbitrary MTA bytes to a session: it must never
// panic, hang past its read timeout, or leave a transaction open.
func FuzzSession(f *testing.F) {
	conv := conversation()
	f.Add(conv)
	f.Add(conv[:len(conv)/2])
	f.Add(append(optneg(allActions), packet('Z', nil)...))
	f.Add(append(optneg(allActions), 0xff, 0xff, 0xff, 0xff))
	f.Add(bytes.ReplaceAll(conv, []byte("Subject"), []byte("X-Spam-Status")))
	f.Fuzz(func(t *testing.T, in []byte) {
		b := &fakeBegin{data: func([]byte) filter.Verdict { return withHeaders(accept, "X-Spam-Status", "No") }}
		metrics := &countMetrics{}
		srv, err := New(Config{begin: b.begin, Metrics: metrics, ReadTimeout: time.Second, MaxPacket: 70000})
		if err != nil {
			t.Fatal(err)
		}
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() { srv.ServeConn(server); close(done) }()
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		client.Write(in)
		client.Close()
		<-done
		if n := metrics.Get("portcullis_milter_panics_total"); n != 0 {
			t.Fatalf("%v panics", n)
		}
		if n := b.open(); n != 0 {
			t.Fatalf("%d transactions left open", n)
		}
	})
}

// FuzzPacketReader checks that no input makes the reader return more
// than the limit or fail to stop.
func FuzzPacketReader(f *testing.F) {
	f.Add(conversation())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		go func() { client.Write(in); client.Close() }()
		r := newPacketReader(server, time.Second, 1024)
		for range len(in) + 1 {
			_, data, err := r.read()
			if err != nil {
				return
			}
			if len(data) >= 1024 {
				t.Fatalf("payload %d bytes over a 1024-byte limit", len(data))
			}
		}
		t.Fatal("more packets than input bytes")
	})
}

func TestHostileConnectionsOverTheLimitAreClosed(t *testing.T) {
	h := startFake(t, &fakeBegin{}, func(c *Config) { c.MaxConnections = 2 })
	a, b := h.dial(), h.dial()
	a.negotiate()
	b.negotiate() // both are tracked once they answered
	c := h.dial()
	c.closed()
	if got := h.metrics.Get("portcullis_milter_refused_total{stage,accept,reason,max_connections}"); got != 1 {
		t.Fatalf("refusals counted %v, want 1", got)
	}
	a.conn.Close()
	b.conn.Close()
}

func TestHostilePeerThatDoesNotReadTimesOut(t *testing.T) {
	b := &fakeBegin{}
	srv, err := New(Config{begin: b.begin, WriteTimeout: 100 * time.Millisecond, ReadTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	client, server := net.Pipe() // synchronous: the reply blocks until read
	defer client.Close()
	done := make(chan struct{})
	go func() { srv.ServeConn(server); close(done) }()
	client.Write(optneg(allActions)) // and never read the answer
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the session still waits on a peer that does not read")
	}
}
