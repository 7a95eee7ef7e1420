package filter

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-message/textproto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var ours = []Header{{HeaderSpamStatus, "No, score=0.00 required=5.00 reject=15.00 tests="}, {HeaderVerdict, "accept; score=0.00"}}

func apply(t testing.TB, raw string, add []Header, remove []string) string {
	t.Helper()
	b, err := io.ReadAll(WithHeaders(strings.NewReader(raw), add, remove))
	require.NoError(t, err)
	// Streaming one byte at a time gives the same bytes.
	b1, err := io.ReadAll(iotest.OneByteReader(WithHeaders(iotest.OneByteReader(strings.NewReader(raw)), add, remove)))
	require.NoError(t, err)
	require.Equal(t, string(b), string(b1), "one byte at a time")
	return string(b)
}

func TestWithHeadersRemovesForgeries(t *testing.T) {
	prefix := "X-Spam-Status: No, score=0.00 required=5.00 reject=15.00 tests=\r\nX-Portcullis-Verdict: accept; score=0.00\r\n"
	tests := []struct{ name, in, want string }{
		{"plain", "X-Spam-Status: No\r\nSubject: hi\r\n\r\nbody\r\n", "Subject: hi\r\n\r\nbody\r\n"},
		{"lower case", "x-spam-status: No\r\nSubject: hi\r\n\r\nbody\r\n", "Subject: hi\r\n\r\nbody\r\n"},
		{"mixed case, our verdict", "Subject: hi\r\nx-PORTCULLIS-verdict: accept\r\n\r\nbody\r\n", "Subject: hi\r\n\r\nbody\r\n"},
		{"space before colon", "X-Spam-Status : No\r\nX-Spam-Status\t: No\r\nSubject: hi\r\n\r\nb\r\n", "Subject: hi\r\n\r\nb\r\n"},
		{"a colon past a kilobyte of space", "X-Spam-Status" + strings.Repeat(" ", 2000) + ": No\r\nSubject: hi\r\n\r\nb", "Subject: hi\r\n\r\nb"},
		{"no space after colon", "X-Spam-Status:No\r\nSubject: hi\r\n\r\nb\r\n", "Subject: hi\r\n\r\nb\r\n"},
		{"folded over lines", "From: a\r\nX-Spam-Status: No,\r\n score=-100\r\n\ttests=ALL_TRUSTED\r\nSubject: hi\r\n\r\nb\r\n", "From: a\r\nSubject: hi\r\n\r\nb\r\n"},
		{"several, order of the rest kept", "A: 1\r\nX-Spam-Status: No\r\nB: 2\r\nX-Spam-Status: No\r\n again\r\nC: 3\r\n folded\r\n\r\nb\r\n", "A: 1\r\nB: 2\r\nC: 3\r\n folded\r\n\r\nb\r\n"},
		{"last field, no body", "Subject: hi\r\nX-Spam-Status: No\r\n", "Subject: hi\r\n"},
		{"similar names stay", "X-Spam-Status-Old: x\r\nX-Spam: y\r\nX-Spam-Statu: z\r\n\r\nb", "X-Spam-Status-Old: x\r\nX-Spam: y\r\nX-Spam-Statu: z\r\n\r\nb"},
		{"in the body it stays", "Subject: hi\r\n\r\nX-Spam-Status: No\r\n", "Subject: hi\r\n\r\nX-Spam-Status: No\r\n"},
		{"after a line without colon", "Subject: hi\r\nbogus\r\nX-Spam-Status: No\r\n\r\nb", "Subject: hi\r\nbogus\r\n\r\nb"},
		{"empty header", "\r\nX-Spam-Status: No\r\n", "\r\nX-Spam-Status: No\r\n"},
		{"empty message", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, prefix+tt.want, apply(t, tt.in, ours, OwnHeaders()))
		})
	}
}

func TestWithHeadersLineEndings(t *testing.T) {
	got := apply(t, "X-Spam-Status: No\nSubject: hi\n\nbody\n", []Header{{"X-A", "1"}}, OwnHeaders())
	assert.Equal(t, "X-A: 1\nSubject: hi\n\nbody\n", got, "a bare-LF message gets bare-LF fields")
	got = apply(t, "Subject: hi\r\n\r\nbody\r\n", []Header{{"X-A", "a\r\nInjected: yes"}}, nil)
	assert.Equal(t, "X-A: a  Injected: yes\r\nSubject: hi\r\n\r\nbody\r\n", got, "a value cannot add a field")
}

func TestWithHeadersFolds(t *testing.T) {
	tests := strings.Repeat("SOME_LONG_RULE_NAME,", 20) + "LAST"
	v := Header{HeaderSpamStatus, "Yes, score=20.00 required=5.00 reject=15.00 tests=" + tests}
	got := apply(t, "Subject: x\r\n\r\nb", []Header{v}, nil)
	lines := strings.Split(strings.TrimSuffix(got, "\r\n\r\nb"), "\r\n")
	require.Greater(t, len(lines), 3)
	for _, l := range lines {
		assert.LessOrEqual(t, len(l), maxFieldLine, "%q", l)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(got)))
	require.NoError(t, err)
	// Folding after a comma adds a tab, as SpamAssassin's does; nothing else
	// changes.
	noSpace := strings.NewReplacer(", ", ",", ",\t", ",")
	assert.Equal(t, noSpace.Replace(v.Value), noSpace.Replace(h.Get(HeaderSpamStatus)), "unfolding gives the value back")
}

func TestWithHeadersBodyIdentical(t *testing.T) {
	body := make([]byte, 300<<10)
	for i := range body {
		body[i] = byte(i*31 + i>>8) // every byte value, CR and LF in odd places
	}
	long := "X-Long: " + strings.Repeat("y", 20<<10) + "\r\n" // a line past the reader's buffer
	in := "Received: from a\r\n\tby b\r\n" + long + "X-Spam-Status: " + strings.Repeat("n", 9000) + "\r\n\r\n" + string(body)
	got := apply(t, in, ours, OwnHeaders())
	i := strings.Index(got, "\r\n\r\n")
	require.Positive(t, i)
	assert.True(t, bytes.Equal(body, []byte(got[i+4:])), "the body is byte-identical")
	assert.Contains(t, got, "Received: from a\r\n\tby b\r\n"+long)
	assert.NotContains(t, got, "nnnn")
}

func TestWithHeadersBadName(t *testing.T) {
	_, err := io.ReadAll(WithHeaders(strings.NewReader("S: x\r\n\r\n"), []Header{{"Bad Name", "x"}}, nil))
	assert.ErrorIs(t, err, ErrHeaderName)
	_, err = io.ReadAll(WithHeaders(strings.NewReader("S: x\r\n\r\n"), []Header{{"Bad:Name", "x"}}, nil))
	assert.ErrorIs(t, err, ErrHeaderName)
}

func TestOwnHeadersFresh(t *testing.T) {
	a := OwnHeaders()
	a[0] = "Subject"
	assert.Equal(t, HeaderSpamStatus, OwnHeaders()[0], "no mutable package slice")
	// Every header a verdict writes is one of ours.
	v := Policy{}.Decide(Data, nil, Accept)
	for _, h := range v.Headers {
		assert.Contains(t, OwnHeaders(), h.Name)
	}
}

// refWithHeaders is the non-streaming reference: split the header into
// fields by lines, drop those named in remove, keep the rest.
func refWithHeaders(raw []byte, remove map[string]bool) []byte {
	var out []byte
	drop := false
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		line := raw
		if i >= 0 {
			line = raw[:i+1]
		}
		if bytes.Equal(line, []byte("\n")) || bytes.Equal(line, []byte("\r\n")) {
			return append(out, raw...)
		}
		if line[0] != ' ' && line[0] != '\t' {
			w := line[:min(len(line), peekField)]
			c := bytes.IndexByte(w, ':')
			switch {
			case c >= 0:
				drop = remove[strings.ToLower(string(bytes.TrimRight(w[:c], " \t")))]
			case len(w) == peekField && bytes.IndexByte(w, '\n') < 0:
				drop = remove[strings.ToLower(string(bytes.TrimRight(w, " \t")))]
			default:
				drop = false
			}
		}
		if !drop {
			out = append(out, line...)
		}
		raw = raw[len(line):]
	}
	return out
}

func FuzzWithHeaders(f *testing.F) {
	f.Add([]byte("X-Spam-Status: No\r\n folded\r\nSubject: hi\r\n\r\nbody\r\n"), uint8(3))
	f.Add([]byte("x-spam-status : No\nA: b\n\nX-Spam-Status: body\n"), uint8(1))
	f.Add([]byte("A: 1\r\n\tX-Spam-Status: cont\r\nX-Portcullis-Verdict:accept\r\n"), uint8(7))
	f.Add([]byte("\r\n\r\n"), uint8(0))
	f.Add([]byte(""), uint8(2))
	f.Fuzz(func(t *testing.T, raw []byte, chunk uint8) {
		remove := map[string]bool{"x-spam-status": true, "x-portcullis-verdict": true}
		var src io.Reader = bytes.NewReader(raw)
		if chunk%4 == 1 {
			src = iotest.OneByteReader(src)
		} else if chunk%4 == 2 {
			src = iotest.HalfReader(src)
		}
		got, err := io.ReadAll(WithHeaders(src, ours, OwnHeaders()))
		if err != nil {
			t.Fatal(err)
		}
		prefix := "X-Spam-Status: No, score=0.00 required=5.00 reject=15.00 tests=\r\nX-Portcullis-Verdict: accept; score=0.00\r\n"
		// WithHeaders looks for the first line's end in the first 4 KiB.
		if i := bytes.IndexByte(raw[:min(len(raw), 4096)], '\n'); i == 0 || (i > 0 && raw[i-1] != '\r') {
			prefix = strings.ReplaceAll(prefix, "\r\n", "\n")
		}
		if !bytes.HasPrefix(got, []byte(prefix)) {
			t.Fatalf("prefix missing: %q", got)
		}
		want := refWithHeaders(raw, remove)
		if !bytes.Equal(got[len(prefix):], want) {
			t.Fatalf("got %q\nwant %q", got[len(prefix):], want)
		}
		// What a MIME parser reads as the header has only our copies.
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(got)))
		if err == nil {
			for _, n := range OwnHeaders() {
				if c := len(h.Values(n)); c != 1 {
					t.Fatalf("%d %s fields in %q", c, n, got)
				}
			}
		}
	})
}
