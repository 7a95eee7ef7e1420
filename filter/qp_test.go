package filter

import (
	"bytes"
	"errors"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
	"testing/iotest"
)

// The reference decoder: mime/quotedprintable after eolReader, which is
// what Part.Open used before qp.go.
func stdQP(raw []byte) ([]byte, error) {
	return io.ReadAll(quotedprintable.NewReader(&eolReader{r: bytes.NewReader(raw)}))
}

// checkQP: where the reference decodes raw without error, qp.go gives
// the same bytes; where it fails, what it gave before failing is where
// qp.go starts. The reader, fed a byte at a time, agrees with appendQP.
func checkQP(t *testing.T, raw []byte) {
	t.Helper()
	got := appendQP(nil, raw)
	want, err := stdQP(raw)
	if err == nil && !bytes.Equal(got, want) {
		t.Fatalf("%q: decoded %q, mime/quotedprintable %q", raw, got, want)
	}
	if err != nil && !bytes.HasPrefix(got, want) {
		t.Fatalf("%q: decoded %q, which does not start with mime/quotedprintable's %q (before %v)", raw, got, want, err)
	}
	viaReader, rerr := io.ReadAll(newQPReader(iotest.OneByteReader(bytes.NewReader(raw))))
	if rerr != nil || !bytes.Equal(viaReader, got) {
		t.Fatalf("%q: the reader gave %q (%v), appendQP %q", raw, viaReader, rerr, got)
	}
}

func TestQP(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"caf=C3=A9 ok\r\n", "café ok\r\n"},
		{"soft=\r\nbreak =ZZ bad =3D ok\r\n", "softbreak =ZZ bad = ok\r\n"},
		{"trailing   \t\r\nspaces\n", "trailing\r\nspaces\n"},
		{"lower =c3=a9\n", "lower é\n"},
		{"bare\rcr\r\r\nruns\r", "bare\r\ncr\r\nruns\r\n"},
		{"end=", "end"},
		{"cut =4", "cut =4"},
		{"a=\r\n=\r\nb", "ab"},
		// Where mime/quotedprintable stops, the rest is still decoded.
		{"ctrl \x01 byte\r\nhidden\r\n", "ctrl \x01 byte\r\nhidden\r\n"},
		{"a==\r\nhidden\r\n", "a=hidden\r\n"},
		{"=", ""},
	} {
		if got := string(appendQP(nil, []byte(tc.raw))); got != tc.want {
			t.Errorf("%q: decoded %q, want %q", tc.raw, got, tc.want)
		}
		checkQP(t, []byte(tc.raw))
	}
}

// TestQPLongLine: a line over mime/quotedprintable's buffer and over
// qpMaxLine is decoded whole, escapes across the reader's pieces too.
func TestQPLongLine(t *testing.T) {
	var b strings.Builder
	for b.Len() < 3*qpMaxLine {
		b.WriteString("abc=3D")
	}
	b.WriteString("\r\nhidden after the long line\r\n")
	raw := []byte(b.String())
	want := strings.ReplaceAll(b.String(), "=3D", "=")
	if got := string(appendQP(nil, raw)); got != want {
		t.Fatalf("appendQP lost bytes: %d of %d", len(got), len(want))
	}
	for _, r := range []io.Reader{bytes.NewReader(raw), iotest.OneByteReader(bytes.NewReader(raw)), iotest.HalfReader(bytes.NewReader(raw))} {
		got, err := io.ReadAll(newQPReader(r))
		if err != nil || string(got) != want {
			t.Fatalf("the reader gave %d bytes (%v), want %d", len(got), err, len(want))
		}
	}
	if std, err := stdQP(raw); err == nil || bytes.Contains(std, []byte("hidden")) {
		t.Fatalf("mime/quotedprintable read the long line (%v): the test no longer shows what qp.go is for", err)
	}
}

// TestQPPart: a quoted-printable part decodes the same in memory and
// from a reader, through the limit.
func TestQPPart(t *testing.T) {
	raw := "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nhello =\r\nw=C3=B6rld \x01 after\r\n"
	for _, m := range []*Message{
		NewMessageBytes(Envelope{}, []byte(raw), Limits{}),
		NewMessage(Envelope{}, strings.NewReader(raw), int64(len(raw)), Limits{}),
	} {
		parts, err := m.Parts()
		if err != nil {
			t.Fatal(err)
		}
		txt, err := parts[0].Text()
		if err != nil || txt != "hello wörld \x01 after\r\n" {
			t.Errorf("Text %q, %v", txt, err)
		}
	}
	for _, m := range []*Message{
		NewMessageBytes(Envelope{}, []byte(raw), Limits{MaxDecodedBytes: 8}),
		NewMessage(Envelope{}, strings.NewReader(raw), int64(len(raw)), Limits{MaxDecodedBytes: 8}),
	} {
		parts, _ := m.Parts()
		txt, err := parts[0].Text()
		var le *LimitError
		// Eight bytes cut the ö in two: its first byte reads as U+FFFD.
		if !errors.As(err, &le) || le.Limit != LimitDecodedBytes || txt != "hello w\uFFFD" {
			t.Errorf("over MaxDecodedBytes: %q, %v", txt, err)
		}
	}
}

func FuzzQP(f *testing.F) {
	for _, s := range []string{"caf=C3=A9\r\n", "soft=\r\nbreak", "a \t=\r\n\rb\r\r", "=4", "x=\n=0a=0D\n", "\x01=zz\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) >= 4096 {
			return // eolReader's 4096-byte reads and the reference's buffer make longer inputs another case (TestQPLongLine)
		}
		checkQP(t, raw)
	})
}

// eolReader turns runs of CRs before a LF, and bare CRs, into CRLF, which
// is all the quoted-printable decoder understands: "=\r\r\n" is still a
// soft line break. LF and CRLF pass as they are.
type eolReader struct {
	r    io.Reader
	in   [4096]byte
	obuf [8192 + 2]byte
	out  []byte
	cr   int // CRs at the end of the last read, not yet written
	err  error
}

func (e *eolReader) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		if e.err != nil {
			if e.cr > 0 {
				e.cr = 0
				e.out = append(e.obuf[:0], '\r', '\n')
				break
			}
			return 0, e.err
		}
		n, err := e.r.Read(e.in[:])
		e.err = err
		e.out = e.convert(e.in[:n])
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

func (e *eolReader) convert(data []byte) []byte {
	out := e.obuf[:0]
	for len(data) > 0 {
		if e.cr > 0 {
			// CRs pending: one line break, whatever follows.
			out = append(out, '\r', '\n')
			e.cr = 0
			if data[0] == '\n' {
				data = data[1:]
			}
			continue
		}
		i := bytes.IndexByte(data, '\r')
		if i < 0 {
			return append(out, data...)
		}
		out = append(out, data[:i]...)
		j := i
		for j < len(data) && data[j] == '\r' {
			j++
		}
		e.cr = j - i
		data = data[j:]
	}
	return out
}

// BenchmarkQP: 30 KB of quoted-printable HTML, qp.go against the
// reference it replaced.
func BenchmarkQP(b *testing.B) {
	var enc bytes.Buffer
	w := quotedprintable.NewWriter(&enc)
	for enc.Len() < 30<<10 {
		io.WriteString(w, `<p style="font-family: Arial">Dear customer, your account = “secure” <a href="https://example.com/x?a=1&b=2">here</a></p>`+"\r\n")
	}
	w.Close()
	raw := enc.Bytes()
	b.SetBytes(int64(len(raw)))
	b.Run("appendQP", func(b *testing.B) {
		var dst []byte
		for b.Loop() {
			dst = appendQP(dst[:0], raw)
		}
	})
	b.Run("reader", func(b *testing.B) {
		for b.Loop() {
			io.Copy(io.Discard, newQPReader(bytes.NewReader(raw)))
		}
	})
	b.Run("mime-quotedprintable", func(b *testing.B) {
		for b.Loop() {
			io.Copy(io.Discard, quotedprintable.NewReader(&eolReader{r: bytes.NewReader(raw)}))
		}
	})
}
