package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/router"
)

// recStore keeps the bodies it is given.
type recStore struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (s *recStore) Enqueue(_ context.Context, _ filter.Envelope, body io.Reader) (queue.ID, error) {
	b, err := io.ReadAll(body)
	s.mu.Lock()
	s.bodies = append(s.bodies, b)
	s.mu.Unlock()
	return "q", err
}

func (s *recStore) Hold(context.Context, *filter.Message, filter.Verdict) (quarantine.ID, error) {
	return "h", nil
}

func (s *recStore) take() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bodies
	s.bodies = nil
	return b
}

// readerCount counts portcullis_smtpd_data_total by reader.
type readerCount struct {
	mu sync.Mutex
	n  map[string]int
}

func (m *readerCount) Add(name string, _ float64, labels ...string) {
	if name != "portcullis_smtpd_data_total" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[string]int{}
	}
	m.n[labels[1]]++
}
func (m *readerCount) Set(string, float64, ...string)     {}
func (m *readerCount) Observe(string, float64, ...string) {}

func (m *readerCount) take() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.n
	m.n = nil
	return n
}

// dataServer is a backend behind NewServer and LimitListener on
// loopback, with small limits so that tests exceed them; bulk false
// takes the server away from the backend, so DATA goes through go-smtp's
// reader only: the reference the bulk reader must match.
type dataServer struct {
	addr    string
	store   *recStore
	readers *readerCount
}

const (
	testMaxBytes = 8 << 10
	testMaxLine  = 200
)

func startDataServer(tb testing.TB, bulk bool) *dataServer {
	tb.Helper()
	d := &dataServer{store: &recStore{}, readers: &readerCount{}}
	r, err := router.New(router.Config{Queue: d.store, Quarantine: d.store})
	if err != nil {
		tb.Fatal(err)
	}
	be, err := NewBackend(Config{Pipeline: filter.NewPipeline(filter.Options{}), Router: r, Metrics: d.readers})
	if err != nil {
		tb.Fatal(err)
	}
	srv := NewServer(be, ServerConfig{MaxMessageBytes: testMaxBytes, ReadTimeout: 10 * time.Second})
	srv.MaxLineLength = testMaxLine
	if !bulk {
		be.srv.Store(nil)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(LimitListener(ln, ListenerLimits{}))
	tb.Cleanup(func() { srv.Close() })
	d.addr = ln.Addr().String()
	return d
}

// converse sends the envelope and DATA, waits for the 354, then writes
// stream and QUIT (after two end-of-data lines, which end DATA from any
// state), and returns every reply line after the 354 until the server
// closes the connection. With early, it writes everything at once
// without waiting for the 354.
func converse(tb testing.TB, addr string, stream []byte, early bool) []string {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	head := "EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
	tail := append(append(bytes.Clone(stream), "\r\n.\r\n\r\n.\r\n"...), "QUIT\r\n"...)
	if early {
		if _, err := c.Write(append([]byte(head), tail...)); err != nil {
			tb.Fatal(err)
		}
	} else if _, err := c.Write([]byte(head)); err != nil {
		tb.Fatal(err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			tb.Fatalf("before 354: %v", err)
		}
		if strings.HasPrefix(line, "354") {
			break
		}
	}
	if !early {
		if _, err := c.Write(tail); err != nil {
			tb.Fatal(err)
		}
	}
	var out []string
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			out = append(out, line)
		}
		if err != nil {
			return out
		}
	}
}

// queuedAs hides the transaction IDs in replies.
var queuedAs = regexp.MustCompile(`[0-9a-v]{20}`)

func transcript(lines []string) string {
	return queuedAs.ReplaceAllString(strings.Join(lines, ""), "ID")
}

// compareData sends stream to both servers and fails unless the replies
// and the stored messages are the same, or differ only as
// readAheadRefusal explains.
func compareData(t *testing.T, bulk, ref *dataServer, stream []byte) {
	t.Helper()
	got := transcript(converse(t, bulk.addr, stream, false))
	want := transcript(converse(t, ref.addr, stream, false))
	gb, wb := bulk.store.take(), ref.store.take()
	if got != want && readAheadRefusal(t, ref, stream, got, want, gb, wb) {
		return
	}
	if got != want {
		t.Errorf("stream %q:\nbulk replies %q\ngo-smtp replies %q", trim(stream), got, want)
	}
	if fmt.Sprintf("%q", gb) != fmt.Sprintf("%q", wb) {
		t.Errorf("stream %q:\nbulk stored %q\ngo-smtp stored %q", trim(stream), gb, wb)
	}
}

// readAheadRefusal reports whether the two servers differ in the one way
// that is intended. go-smtp counts line length over what its buffer has
// read from the connection, so a line over the limit that the client
// pipelined after the end of data refuses the message before it (554
// 5.6.0). The bulk reader takes the message, which ended within the
// limits, and leaves the long line to the command reader: RFC 5321 ends
// the message at its "." line, and a valid message is not lost to a bad
// command after it. The message part, sent alone, must be what go-smtp
// takes and what the bulk reader stored, and the replies after the
// first must be the same.
func readAheadRefusal(t *testing.T, ref *dataServer, stream []byte, got, want string, gb, wb [][]byte) bool {
	t.Helper()
	end := 0
	if !bytes.HasPrefix(stream, []byte(".\r\n")) {
		i := bytes.Index(stream, []byte("\r\n.\r\n"))
		if i < 0 {
			return false
		}
		end = i + 2
	}
	end += 3
	// converse ends the stream with a line end.
	if !hasLongLine(append(bytes.Clone(stream[end:]), "\r\n"...)) || len(wb) != 0 || len(gb) != 1 {
		return false
	}
	gotFirst, gotRest, _ := strings.Cut(got, "\n")
	wantFirst, wantRest, _ := strings.Cut(want, "\n")
	if !strings.HasPrefix(gotFirst, "250 ") || !strings.HasPrefix(wantFirst, "554 5.6.0 ") || gotRest != wantRest {
		return false
	}
	alone := transcript(converse(t, ref.addr, stream[:end], false))
	stored := ref.store.take()
	return strings.HasPrefix(alone, gotFirst+"\n") && len(stored) == 1 && bytes.Equal(stored[0], gb[0])
}

// hasLongLine reports whether b holds a line longer than testMaxLine.
func hasLongLine(b []byte) bool {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return len(b) > testMaxLine
		}
		if i+1 > testMaxLine {
			return true
		}
		b = b[i+1:]
	}
	return false
}

func trim(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}

// dataSeeds are streams at the edges of the DATA syntax and limits.
func dataSeeds() [][]byte {
	long := strings.Repeat("x", testMaxLine)
	return [][]byte{
		[]byte("Subject: plain\r\n\r\nhello\r\n"),
		[]byte("Subject: dots\r\n\r\n..leading dot\r\n.\r\n"),
		[]byte("Subject: dots\r\n\r\n.a\r\n..\r\n...\r\n.\rx\r\n"),
		[]byte("bare\rcr\r\r\nand\nbare lf\n.\nnot the end\r\n"),
		[]byte("\r\n.\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<y@example.net>\r\nDATA\r\n"),
		[]byte(""),
		[]byte("."),
		[]byte(".\r"),
		[]byte("x\r"),
		[]byte(long[:testMaxLine-3] + "\r\n" + long[:testMaxLine-2] + "\r\n"),
		[]byte(long + "\r\n"),
		[]byte("hello\r\n.\r\nMAIL F" + long + "\r\n"),
		[]byte("a\n" + long + "\n"),
		[]byte(strings.Repeat("line of the message body\r\n", testMaxBytes/26+1)),
		[]byte(strings.Repeat("y", testMaxBytes-5) + "\r\n"),
		[]byte(strings.Repeat(strings.Repeat("z", 120)+"\r\n", testMaxBytes/122-1)),
	}
}

// The bulk reader returns what go-smtp's returns, byte for byte, with the
// same replies to the message and to the commands after it: dots,
// bare CR and LF, the size and line limits, the end of data followed by
// more commands.
func TestBulkDataMatchesGoSMTP(t *testing.T) {
	bulk, ref := startDataServer(t, true), startDataServer(t, false)
	seeds := dataSeeds()
	for _, s := range seeds {
		compareData(t, bulk, ref, s)
	}
	// One seed pipelines a second DATA with its message: go-smtp's.
	if n := bulk.readers.take(); n["bulk"] != len(seeds) || n["go-smtp"] != 1 {
		t.Errorf("bulk server's readers: %v, want bulk %d times, go-smtp once", n, len(seeds))
	}
	if n := ref.readers.take(); n["bulk"] != 0 {
		t.Errorf("reference server's readers: %v, want go-smtp only", n)
	}
}

// A client that sends the message with DATA, before the 354, gets it
// read by go-smtp's reader, whole.
func TestBulkDataEarlyTalker(t *testing.T) {
	bulk := startDataServer(t, true)
	msg := []byte("Subject: early\r\n\r\n..dot\r\nbody")
	got := transcript(converse(t, bulk.addr, msg, true))
	if !strings.HasPrefix(got, "250 ") {
		t.Fatalf("replies %q", got)
	}
	b := bulk.store.take()
	if len(b) != 1 || string(b[0]) != "Subject: early\r\n\r\n.dot\r\nbody\r\n" {
		t.Errorf("stored %q", b)
	}
	if n := bulk.readers.take(); n["go-smtp"] != 1 || n["bulk"] != 0 {
		t.Errorf("readers %v, want go-smtp once", n)
	}
}

// A message that ends within the limits is taken even when the line the
// client pipelines after it is too long: the long line is the command
// reader's to refuse, and go-smtp, which refuses the message for it, is
// the one the comparison excuses (readAheadRefusal).
func TestBulkDataLongLineAfterEnd(t *testing.T) {
	bulk, ref := startDataServer(t, true), startDataServer(t, false)
	long := strings.Repeat("x", testMaxLine)
	for _, msg := range []string{"\r\n", "hello\r\n", strings.Repeat("line of text\r\n", 400)} {
		stream := []byte(msg + ".\r\nMAIL FROM:<" + long + ">\r\n")
		got := transcript(converse(t, bulk.addr, stream, false))
		if want := "250 2.0.0 OK: queued as q\r\n500 5.4.0 Too long line, closing connection\r\n"; got != want {
			t.Errorf("message of %d bytes: replies %q, want %q", len(msg), got, want)
		}
		if b := bulk.store.take(); len(b) != 1 || string(b[0]) != msg {
			t.Errorf("message of %d bytes: stored %q", len(msg), b)
		}
		compareData(t, bulk, ref, stream)
	}
}

// A session sends message after message, each after the 354, the next
// MAIL in the same write as the end of the previous DATA.
func TestBulkDataSession(t *testing.T) {
	bulk := startDataServer(t, true)
	c, err := net.Dial("tcp", bulk.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	expect := func(code string) {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, code) {
				t.Fatalf("got %q (%v), want %s", line, err, code)
			}
			if line[3] == ' ' {
				return
			}
		}
	}
	expect("220")
	fmt.Fprint(c, "EHLO client.test\r\n")
	expect("250")
	fmt.Fprint(c, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
	expect("250")
	expect("250")
	expect("354")
	const n = 5
	for i := range n {
		fmt.Fprintf(c, "Subject: %d\r\n\r\n.line %d\r\n.\r\n", i, i)
		expect("250")
		if i < n-1 {
			fmt.Fprint(c, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
			expect("250")
			expect("250")
			expect("354")
		}
	}
	fmt.Fprint(c, "QUIT\r\n")
	expect("221")
	b := bulk.store.take()
	if len(b) != n {
		t.Fatalf("stored %d messages, want %d", len(b), n)
	}
	for i, m := range b {
		if want := fmt.Sprintf("Subject: %d\r\n\r\nline %d\r\n", i, i); string(m) != want {
			t.Errorf("message %d: %q, want %q", i, m, want)
		}
	}
	if got := bulk.readers.take(); got["bulk"] != n {
		t.Errorf("readers %v, want bulk %d times", got, n)
	}
}

// A client that closes the connection in the middle of DATA leaves
// nothing stored, on both readers.
func TestBulkDataClientGone(t *testing.T) {
	for _, bulk := range []bool{true, false} {
		s := startDataServer(t, bulk)
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		fmt.Fprint(c, "EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, "354") {
				break
			}
		}
		fmt.Fprint(c, "Subject: cut\r\n\r\nhalf a mess")
		c.(*net.TCPConn).CloseWrite()
		if rest, _ := io.ReadAll(br); len(rest) != 0 && strings.HasPrefix(string(rest), "250") {
			t.Errorf("bulk %v: a cut message got %q", bulk, rest)
		}
		c.Close()
		if b := s.store.take(); len(b) != 0 {
			t.Errorf("bulk %v: stored %q", bulk, b)
		}
	}
}

// FuzzBulkData: for any stream, the bulk reader and go-smtp's give the
// same replies and store the same bytes.
func FuzzBulkData(f *testing.F) {
	for _, s := range dataSeeds() {
		f.Add(s)
	}
	var once sync.Once
	var bulk, ref *dataServer
	f.Fuzz(func(t *testing.T, stream []byte) {
		if len(stream) > 2*testMaxBytes {
			return
		}
		once.Do(func() {
			// The servers outlive the first input's t: they are closed when
			// the process ends.
			bulk, ref = startDataServer(noCleanup{t}, true), startDataServer(noCleanup{t}, false)
		})
		compareData(t, bulk, ref, stream)
	})
}

// noCleanup is a testing.TB whose Cleanup does nothing.
type noCleanup struct{ testing.TB }

func (noCleanup) Cleanup(func()) {}

// BenchmarkUnstuff is the bulk reader's per-byte cost on the 3 MB text
// tier, in the connection's 64 KiB pieces.
func BenchmarkUnstuff(b *testing.B) {
	raw := benchcorpus.Text(3 << 20)
	dst := make([]byte, readBufSize)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		d := &dotReader{line: 1, maxLine: 2000}
		for in := raw; len(in) > 0; {
			used, _, err := d.unstuff(dst, in[:min(len(in), readBufSize)])
			if err != nil {
				b.Fatal(err)
			}
			in = in[used:]
		}
	}
}
