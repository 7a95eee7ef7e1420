package clamd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/scanner"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testsvc.StopShared()
	os.Exit(code)
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRealClamd(t *testing.T) {
	d := testsvc.SharedClamd(t)
	clean := make([]byte, 10<<10)
	rand.Read(clean)
	cases := []struct {
		name string
		data []byte
		sig  string // "" = clean
	}{
		{"eicar", testsvc.Eicar(), testsvc.EicarSignature},
		{"clam.exe", testsvc.ClamavFile(t, "clam.exe"), testsvc.ClamExeSignature},
		{"clam.zip", testsvc.ClamavFile(t, "clam.zip"), testsvc.ClamExeSignature},
		{"clam.tar.gz", testsvc.ClamavFile(t, "clam.tar.gz"), testsvc.ClamExeSignature},
		{"clam.7z", testsvc.ClamavFile(t, "clam.7z"), testsvc.ClamExeSignature},
		{"clam.mail", testsvc.ClamavFile(t, "clam.mail"), testsvc.ClamExeSignature},
		{"random", clean, ""},
		{"text", []byte("Subject: hello\r\n\r\nnothing to see\r\n"), ""},
		{"empty", nil, ""},
		{"multi-chunk", bytes.Repeat([]byte("abcdefgh"), 50<<10), ""},
	}
	for _, addr := range []string{d.Addr, "unix:" + d.Socket} {
		for _, maxIdle := range []int{4, -1} {
			c := newClient(t, Config{Addr: addr, MaxIdle: maxIdle, ChunkSize: 8 << 10})
			for _, tc := range cases {
				res, err := c.Scan(t.Context(), bytes.NewReader(tc.data))
				if err != nil {
					t.Fatalf("%s via %s (idle %d): %v", tc.name, addr, maxIdle, err)
				}
				if tc.sig == "" {
					if res.Infected() {
						t.Errorf("%s: clean file reported %v", tc.name, res.Signatures)
					}
					continue
				}
				if len(res.Signatures) != 1 || !strings.HasPrefix(res.Signatures[0], tc.sig) {
					t.Errorf("%s via %s: got %v, want %s", tc.name, addr, res.Signatures, tc.sig)
				}
			}
		}
	}
}

func TestRealPingVersion(t *testing.T) {
	d := testsvc.SharedClamd(t)
	c := newClient(t, Config{Addr: d.Addr})
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Only unofficial signatures: no database version in the line.
	if v, err := c.Version(t.Context()); !errors.Is(err, ErrNoSignatureVersion) || !strings.Contains(err.Error(), "ClamAV ") {
		t.Fatalf("version %q, %v, want ErrNoSignatureVersion", v, err)
	}
}

func TestFakeVersion(t *testing.T) {
	for reply, ok := range map[string]bool{
		"ClamAV 1.4.6/27463/Mon Nov 23 09:00:00 2026": true,
		"ClamAV 1.4.6": false,
		"PONG":         false,
	} {
		f := startFake(t, func(c net.Conn, br *bufio.Reader) {
			if cmd, err := readCommand(br); err == nil && cmd == "zVERSION" {
				io.WriteString(c, reply+"\x00")
			}
		})
		c := newClient(t, Config{Addr: f.ln.Addr().String()})
		v, err := c.Version(t.Context())
		if ok != (err == nil) || ok && v != reply {
			t.Errorf("%q: %q %v", reply, v, err)
		}
	}
}

func TestRealConcurrentReuse(t *testing.T) {
	d := testsvc.SharedClamd(t)
	c := newClient(t, Config{Addr: d.Addr, MaxIdle: 2})
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 4 {
		wg.Go(func() {
			for i := range 20 {
				data := []byte("clean " + strings.Repeat("x", i))
				if i%3 == 0 {
					data = testsvc.Eicar()
				}
				res, err := c.Scan(t.Context(), bytes.NewReader(data))
				if err != nil || res.Infected() != (i%3 == 0) {
					t.Errorf("scan %d: %v %v", i, res, err)
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := c.pool.Len(); n == 0 || n > 2 {
		t.Errorf("pool holds %d connections, want 1..2", n)
	}
}

func TestRealStreamMaxLength(t *testing.T) {
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{StreamMaxLength: 4096})
	c := newClient(t, Config{Addr: d.Addr, ChunkSize: 1024})
	// Under the limit: judged.
	if res, err := c.Scan(t.Context(), bytes.NewReader(testsvc.Eicar())); err != nil || !res.Infected() {
		t.Fatalf("small eicar: %v %v", res, err)
	}
	big := bytes.Repeat([]byte("A"), 64<<10)
	res, err := c.Scan(t.Context(), bytes.NewReader(big))
	if !errors.Is(err, scanner.ErrSizeLimit) || !errors.Is(err, scanner.ErrContent) {
		t.Fatalf("over the limit: %v %v, want ErrSizeLimit", res, err)
	}
	// The client still works afterwards.
	if res, err := c.Scan(t.Context(), bytes.NewReader([]byte("hello"))); err != nil || res.Infected() {
		t.Fatalf("after limit: %v %v", res, err)
	}
}

func TestRealMaxFileSize(t *testing.T) {
	// With AlertExceedsMax, a stream over MaxFileSize is reported, not
	// passed as OK; it is a partial scan, not a virus.
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{MaxFileSize: 8192})
	c := newClient(t, Config{Addr: d.Addr})
	res, err := c.Scan(t.Context(), bytes.NewReader(bytes.Repeat([]byte("A"), 64<<10)))
	if !errors.Is(err, scanner.ErrSizeLimit) || res.Infected() {
		t.Fatalf("over MaxFileSize: %v %v, want ErrSizeLimit", res, err)
	}
	if res, err := c.Scan(t.Context(), bytes.NewReader(testsvc.Eicar())); err != nil || !res.Infected() {
		t.Fatalf("small eicar: %v %v", res, err)
	}
}

// blockingReader hands out one chunk, then waits for release.
type blockingReader struct {
	first   bool
	started chan struct{}
	release chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if !b.first {
		b.first = true
		close(b.started)
		return copy(p, bytes.Repeat([]byte("x"), len(p))), nil
	}
	<-b.release
	return copy(p, bytes.Repeat([]byte("y"), len(p))), nil
}

func TestRealKilledMidStream(t *testing.T) {
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{})
	c := newClient(t, Config{Addr: d.Addr, ChunkSize: 1024, Timeout: 20 * time.Second})
	br := &blockingReader{started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		res, err := c.Scan(t.Context(), io.LimitReader(br, 1<<20))
		if err == nil {
			err = errors.New("no error: " + strings.Join(res.Signatures, ","))
		}
		done <- err
	}()
	<-br.started
	d.Kill()
	close(br.release)
	err := <-done
	if !strings.Contains(err.Error(), "clamd") || errors.Is(err, scanner.ErrContent) {
		t.Fatalf("killed clamd: %v, want an unavailability error", err)
	}
}

func TestParseReply(t *testing.T) {
	cases := []struct {
		line    string
		sig     string
		wantErr error
	}{
		{"stream: OK", "", nil},
		{"stream: Eicar-Test-Signature FOUND", "Eicar-Test-Signature", nil},
		{"stream: Win.Test.EICAR_HDB-1 FOUND", "Win.Test.EICAR_HDB-1", nil},
		{"(null) FOUND", "(unnamed)", nil},
		{"stream: (null) FOUND", "(unnamed)", nil},
		{"stream:  FOUND", "(unnamed)", nil},
		{"FOUND", "(unnamed)", nil},
		{"INSTREAM size limit exceeded. ERROR", "", scanner.ErrSizeLimit},
		{"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND", "", scanner.ErrSizeLimit},
		{"stream: Can't allocate memory ERROR", "", scanner.ErrContent},
		{"UNKNOWN COMMAND", "", scanner.ErrProtocol},
		{"COMMAND READ TIMED OUT ERROR", "", scanner.ErrProtocol},
		{"stream: OK OK", "", scanner.ErrProtocol},
		{"", "", scanner.ErrProtocol},
		{"OK", "", scanner.ErrProtocol},
		{"garbage FOUND", "", scanner.ErrProtocol},
		{"stream: OKAY", "", scanner.ErrProtocol},
	}
	for _, tc := range cases {
		res, err := parseReply(tc.line)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%q: %v %v, want %v", tc.line, res, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		got := strings.Join(res.Signatures, ",")
		if got != tc.sig {
			t.Errorf("%q: signatures %q, want %q", tc.line, got, tc.sig)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"stream: OK", "stream: X FOUND", "(null) FOUND", "INSTREAM size limit exceeded. ERROR", "a: b: c FOUND", " OK", "x ERROR"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		res, err := parseReply(line)
		if err == nil && !res.Infected() && !strings.HasSuffix(line, ": OK") {
			t.Fatalf("%q parsed clean", line)
		}
		if err != nil && res.Infected() {
			t.Fatalf("%q: infected and an error", line)
		}
		if err == nil && res.Infected() && res.Signatures[0] == "" {
			t.Fatalf("%q: empty signature", line)
		}
	})
}

// fake is an in-process clamd that answers as its handler says.
type fake struct {
	ln      net.Listener
	accepts atomic.Int32
}

func startFake(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) *fake {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepts.Add(1)
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				handle(c, bufio.NewReader(c))
			})
		}
	})
	return f
}

// readCommand reads one NUL-terminated command.
func readCommand(br *bufio.Reader) (string, error) {
	s, err := br.ReadString(0)
	return strings.TrimSuffix(s, "\x00"), err
}

// readStream reads INSTREAM chunks up to the zero chunk.
func readStream(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		var n uint32
		if err := binary.Read(br, binary.BigEndian, &n); err != nil {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			return out, err
		}
		out = append(out, b...)
	}
}

// oneShot answers a single INSTREAM (session or not) with reply.
func oneShot(reply string) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		id := ""
		cmd, err := readCommand(br)
		if cmd == "zIDSESSION" {
			id = "1: "
			cmd, err = readCommand(br)
		}
		if err != nil || cmd != "zINSTREAM" {
			return
		}
		if _, err := readStream(br); err != nil {
			return
		}
		io.WriteString(c, id+reply+"\x00")
	}
}

func TestFakeReplies(t *testing.T) {
	cases := []struct {
		reply string
		check func(scanner.Result, error) bool
	}{
		{"INSTREAM size limit exceeded. ERROR", func(_ scanner.Result, err error) bool { return errors.Is(err, scanner.ErrSizeLimit) }},
		{"(null) FOUND", func(r scanner.Result, err error) bool { return err == nil && r.Infected() }},
		{"stream: Something ERROR", func(_ scanner.Result, err error) bool { return errors.Is(err, scanner.ErrContent) }},
		{"stream: OK", func(r scanner.Result, err error) bool { return err == nil && !r.Infected() }},
		{"PONG", func(_ scanner.Result, err error) bool { return errors.Is(err, scanner.ErrProtocol) }},
	}
	for _, tc := range cases {
		f := startFake(t, oneShot(tc.reply))
		for _, idle := range []int{-1, 1} {
			c := newClient(t, Config{Addr: f.ln.Addr().String(), MaxIdle: idle})
			res, err := c.Scan(t.Context(), strings.NewReader("data"))
			if !tc.check(res, err) {
				t.Errorf("reply %q (idle %d): %v %v", tc.reply, idle, res, err)
			}
		}
	}
}

func TestFakeSizeLimitEarlyClose(t *testing.T) {
	// clamd answers as soon as the limit is crossed and closes, while the
	// client is still writing.
	f := startFake(t, func(c net.Conn, br *bufio.Reader) {
		readCommand(br)
		io.ReadFull(br, make([]byte, 1000))
		io.WriteString(c, "INSTREAM size limit exceeded. ERROR\x00")
		c.(*net.TCPConn).CloseWrite()
		time.Sleep(50 * time.Millisecond)
		c.(*net.TCPConn).SetLinger(0)
	})
	c := newClient(t, Config{Addr: f.ln.Addr().String(), MaxIdle: -1, ChunkSize: 512})
	_, err := c.Scan(t.Context(), bytes.NewReader(make([]byte, 8<<20)))
	if err == nil || errors.Is(err, scanner.ErrProtocol) && !strings.Contains(err.Error(), "write") {
		t.Fatalf("early close: %v", err)
	}
	if err != nil && !errors.Is(err, scanner.ErrSizeLimit) && !strings.Contains(err.Error(), "reset") && !strings.Contains(err.Error(), "broken pipe") {
		t.Fatalf("early close: %v, want size limit or a write error", err)
	}
}

func TestFakeResetMidStream(t *testing.T) {
	f := startFake(t, func(c net.Conn, br *bufio.Reader) {
		readCommand(br)
		io.ReadFull(br, make([]byte, 100))
		c.(*net.TCPConn).SetLinger(0) // RST on close
	})
	c := newClient(t, Config{Addr: f.ln.Addr().String(), MaxIdle: -1, ChunkSize: 64})
	res, err := c.Scan(t.Context(), bytes.NewReader(make([]byte, 4<<20)))
	if err == nil || errors.Is(err, scanner.ErrContent) {
		t.Fatalf("reset: %v %v, want an unavailability error", res, err)
	}
}

func TestFakeSilence(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	f := startFake(t, func(c net.Conn, br *bufio.Reader) {
		readCommand(br)
		readStream(br)
		<-release
	})
	c := newClient(t, Config{Addr: f.ln.Addr().String(), MaxIdle: -1, Timeout: 300 * time.Millisecond})
	start := time.Now()
	_, err := c.Scan(t.Context(), strings.NewReader("data"))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("silence: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	// The context ends earlier than the I/O deadline.
	c = newClient(t, Config{Addr: f.ln.Addr().String(), MaxIdle: -1, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = c.Scan(ctx, strings.NewReader("data"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx deadline: %v", err)
	}
}

func TestFakeStaleSessionRetried(t *testing.T) {
	// Each connection answers one scan in its session, then closes, as
	// clamd does when its IdleTimeout passes.
	f := startFake(t, func(c net.Conn, br *bufio.Reader) {
		oneShot("stream: OK")(c, br)
	})
	c := newClient(t, Config{Addr: f.ln.Addr().String(), MaxIdle: 2})
	for i := range 3 {
		if _, err := c.Scan(t.Context(), strings.NewReader("data")); err != nil {
			t.Fatalf("scan %d: %v", i, err)
		}
	}
	if n := f.accepts.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (one per scan)", n)
	}
}

func TestFakeSessionReuse(t *testing.T) {
	f := startFake(t, func(c net.Conn, br *bufio.Reader) {
		if cmd, _ := readCommand(br); cmd != "zIDSESSION" {
			return
		}
		for id := 1; ; id++ {
			cmd, err := readCommand(br)
			if err != nil || cmd != "zINSTREAM" {
				return
			}
			data, err := readStream(br)
			if err != nil {
				return
			}
			reply := "stream: OK"
			if bytes.Contains(data, []byte("bad")) {
				reply = "stream: Bad FOUND"
			}
			io.WriteString(c, strconv.Itoa(id)+": "+reply+"\x00")
		}
	})
	c := newClient(t, Config{Addr: f.ln.Addr().String(), MaxIdle: 1})
	for i := range 10 {
		data := "good"
		if i%2 == 1 {
			data = "bad"
		}
		res, err := c.Scan(t.Context(), strings.NewReader(data))
		if err != nil || res.Infected() != (i%2 == 1) {
			t.Fatalf("scan %d: %v %v", i, res, err)
		}
	}
	if n := f.accepts.Load(); n != 1 {
		t.Fatalf("%d connections, want 1 reused session", n)
	}
}

func TestNewAddr(t *testing.T) {
	for _, a := range []string{"unix:/run/clamd.ctl", "/run/clamd.ctl", "127.0.0.1:3310", "tcp:[::1]:3310"} {
		if _, err := New(Config{Addr: a}); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []string{"", "unix:", "localhost"} {
		if _, err := New(Config{Addr: a}); err == nil {
			t.Errorf("%q accepted", a)
		}
	}
}
