package filter

import (
	"strings"
	"testing"
)

// FuzzErrorReply checks that whatever reply an error claims, what reaches
// the peer is one well-formed SMTP reply line: a 2xx, 4xx or 5xx code, an
// enhanced code of the same class (or none), printable one-line text.
func FuzzErrorReply(f *testing.F) {
	f.Add(552, "5.3.4", "Message too big")
	f.Add(451, "5.7.1", "class mismatch")
	f.Add(550, "5.7.1", "evil\r\n250 OK")
	f.Add(0, "", "")
	f.Add(354, "", "start mail input")
	f.Add(250, "2.0.0", strings.Repeat("x", 1000))
	f.Add(421, "4.4.2.1", "\x00\xff")
	f.Fuzz(func(t *testing.T, code int, enhanced, text string) {
		r := ErrorReply(replyErr{Reply{Code: code, Enhanced: enhanced, Text: text}})
		class := r.Code / 100
		if class != 2 && class != 4 && class != 5 {
			t.Fatalf("code %d from %d", r.Code, code)
		}
		if r.Code != code && r != replyLocal {
			t.Fatalf("code %d changed to %d but not to the generic reply", code, r.Code)
		}
		if r.Enhanced != "" && !validEnhanced(r.Enhanced, class) {
			t.Fatalf("enhanced %q with code %d", r.Enhanced, r.Code)
		}
		if r.Text == "" || len(r.Text) > maxReplyText {
			t.Fatalf("text length %d", len(r.Text))
		}
		for i := 0; i < len(r.Text); i++ {
			if c := r.Text[i]; c < 0x20 || c > 0x7e {
				t.Fatalf("byte %#x in text %q", c, r.Text)
			}
		}
	})
}
