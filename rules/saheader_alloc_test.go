package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

// appendLF makes CRLF LF and ends the value with "\n", whatever dst
// already holds: the fields of a header share one buffer.
func TestAppendLF(t *testing.T) {
	for _, prefix := range []string{"", "x\n", "y"} {
		for _, v := range []string{"", " a", " a\r\n", " a\r\n\tb\r\n", " a\n", " a\r", " a\r\r\n", "\r\n\r\n", " a\r\n b"} {
			want := strings.ReplaceAll(v, "\r\n", "\n")
			if !strings.HasSuffix(want, "\n") {
				want += "\n"
			}
			if got := string(appendLF([]byte(prefix), []byte(v))); got != prefix+want {
				t.Errorf("appendLF(%q, %q) = %q, want %q", prefix, v, got, prefix+want)
			}
		}
	}
}

// appendLower is strings.ToLower, and leaves what it appended before
// alone.
func TestAppendLower(t *testing.T) {
	var dst []byte
	var got, want []string
	for _, s := range []string{"", "subject", "Subject", "X-MAILER", "x-Y", "Ünïcode", "X\xff", "a1-B2", "DKIM-Signature"} {
		var out string
		dst, out = appendLower(dst, s)
		got, want = append(got, out), append(want, strings.ToLower(s))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("%d: %q, want %q", i, got[i], want[i])
		}
	}
}

// The fields of a header, their raw values in one shared buffer, are
// each what SpamAssassin keeps: the name as written, the value after the
// colon with LF line ends and a final "\n".
func TestAppendSARawField(t *testing.T) {
	raw := "Subject: one\r\nX-Folded :  a\r\n\tb\r\nFrom:<x@example.org>\r\nX-Empty:\r\nX-LF: bare\n\r\n"
	m := filter.NewMessageBytes(filter.Envelope{}, []byte(raw+"body\r\n"), filter.Limits{})
	want := [][2]string{{"Subject", " one\n"}, {"X-Folded", "  a\n\tb\n"}, {"From", "<x@example.org>\n"}, {"X-Empty", "\n"}, {"X-LF", " bare\n"}}
	var arena []byte
	var got [][2]string
	for f := m.Header().Fields(); f.Next(); {
		var name, v string
		arena, name, v = appendSARawField(arena, f)
		got = append(got, [2]string{name, v})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fields %q\nwant %q", got, want)
	}
}
