package filter

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// parseShape is everything a parse decided about a message: its parts,
// their offsets and fields, its defects and its error.
func parseShape(raw []byte, lim Limits, skip bool) string {
	noBodySkip = !skip
	defer func() { noBodySkip = false }()
	m := NewMessageBytes(Envelope{}, raw, lim)
	parts, err := m.Parts()
	var b strings.Builder
	fmt.Fprintf(&b, "err %v\n", err)
	for _, p := range parts {
		var h bytes.Buffer
		f := p.Header.Fields()
		for f.Next() {
			r, _ := f.Raw()
			h.Write(r)
		}
		fmt.Fprintf(&b, "%q d%d %s %v %q %s %q %d %d %d %d %q\n", p.Path, p.Depth, p.ContentType, p.Params, p.Disposition,
			p.Encoding, p.Names, p.headerStart, p.bodyOff, p.bodyEnd, len(p.Children), h.String())
	}
	for _, d := range m.Defects() {
		fmt.Fprintf(&b, "defect %v\n", d)
	}
	return b.String()
}

// bodySkipCorpus is the test mail and messages built to put delimiters,
// dashes and bare CRs where the skip has to stop.
func bodySkipCorpus(t testing.TB) [][]byte {
	files, _ := filepath.Glob("testdata/mail/*/*")
	var out [][]byte
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			out = append(out, b)
		}
	}
	if len(out) < 20 {
		t.Fatalf("%d test messages", len(out))
	}
	rng := rand.New(rand.NewPCG(7, 9))
	pieces := []string{"--b\r\n", "--b--\r\n", "-x\r\n", "--c\r\n", "text line\r\n", "a\rb\r\n", "\r\r\n", "x\n", "\r",
		"Content-Type: multipart/mixed; boundary=c\r\n\r\n", "Content-Type: text/plain\r\n\r\n", "\r\n", "--b \r\n", "QUJD\r\n"}
	for range 3000 {
		var b bytes.Buffer
		b.WriteString("Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
		for range rng.IntN(40) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		if rng.IntN(3) == 0 {
			b.WriteString(strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n", rng.IntN(4000)))
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		out = append(out, b.Bytes())
	}
	return out
}

// TestBodySkipSameParse: skipping body lines changes nothing a parse
// decides, on the test mail and on messages built to stop the skip.
func TestBodySkipSameParse(t *testing.T) {
	lims := []Limits{{}, {MaxHeaderBytes: 4096, MaxDepth: 8, MaxParts: 50, MaxDecodedBytes: 1 << 20}}
	for i, raw := range bodySkipCorpus(t) {
		for _, lim := range lims {
			want, got := parseShape(raw, lim, false), parseShape(raw, lim, true)
			if want != got {
				t.Fatalf("message %d (%d bytes): with the skip\n%s\nwithout\n%s", i, len(raw), got, want)
			}
		}
	}
}

func FuzzBodySkip(f *testing.F) {
	for i, raw := range bodySkipCorpus(f) {
		if i%50 == 0 && len(raw) < 64<<10 {
			f.Add(raw)
		}
	}
	lim := Limits{MaxHeaderBytes: 4096, MaxDepth: 8, MaxParts: 50, MaxDecodedBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if want, got := parseShape(raw, lim, false), parseShape(raw, lim, true); want != got {
			t.Fatalf("with the skip\n%s\nwithout\n%s", got, want)
		}
	})
}
