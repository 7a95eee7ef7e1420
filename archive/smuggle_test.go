package archive

import (
	"bytes"
	"context"
	"encoding/base64"
	"image"
	ipng "image/png"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// htmlBody is a message whose only part is the HTML page given.
func htmlBody(page string) []byte {
	return []byte("From: a@example.org\r\nTo: b@example.org\r\nSubject: your document\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n\r\n" + page + "\r\n")
}

func findings(t *testing.T, raw []byte) []Finding {
	t.Helper()
	fs, err := New(Config{}).Inspect(context.Background(), newMsg(raw))
	require.NoError(t, err)
	return fs
}

func dataURI(ctype string, b []byte) string {
	return "data:" + ctype + ";base64," + base64.StdEncoding.EncodeToString(b)
}

func pngBytes(t *testing.T, w, h int) []byte {
	var b bytes.Buffer
	require.NoError(t, ipng.Encode(&b, image.NewGray(image.Rect(0, 0, w, h))))
	return b.Bytes()
}

func TestSmuggled(t *testing.T) {
	exeZip := makeZip(t, zfile{name: "invoice.exe", data: tinyPE()})
	img := pngBytes(t, 400, 300)
	// decoy is an inline image longer than the line buffer (64 KB).
	decoy := bytes.Repeat(img, 1)
	for len(decoy) < 100<<10 {
		decoy = append(decoy, img...)
	}
	cases := []struct {
		name string
		raw  []byte
		kind Kind // a finding of this kind must be there
	}{
		{"data URI in an HTML body", htmlBody(`<a href="` + dataURI("application/zip", exeZip) + `" download="invoice.zip">Open</a>`), KindBannedType},
		{"string for atob", htmlBody(`<script>var f = atob("` + base64.StdEncoding.EncodeToString(exeZip) + `"); save(f);</script>`), KindBannedType},
		{"HTML attachment", message(att{name: "document.html", ctype: "text/html",
			data: []byte(`<html><body><a href="` + dataURI("application/octet-stream", tinyPE()) + `">x</a></body></html>`)}), KindBannedType},
		{"after a decoy longer than the line buffer, same line", htmlBody(`<img src="` + dataURI("image/png", decoy) + `"><a href="` +
			dataURI("application/zip", exeZip) + `">x</a>`), KindBannedType},
		{"on a line that starts with b (no begin line)", htmlBody("<p>x</p>\nblob = atob(\"" + base64.StdEncoding.EncodeToString(exeZip) + "\");"), KindBannedType},
		{"a page in a page", htmlBody(`<iframe src="` + dataURI("text/html", []byte(`<html><body><a href="`+dataURI("application/zip", exeZip)+`">x</a></body></html>`)) + `"></iframe>`), KindBannedType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := findings(t, c.raw)
			requireFinding(t, fs, c.kind, "")
			if !strings.Contains(c.name, "page in a page") {
				requireFinding(t, fs, KindSmuggled, "")
			}
		})
	}
}

// TestSmuggledAcrossPieces puts a smuggled file at every offset around
// the line buffer's edge: a run split between two pieces of a long line is
// still decoded from its start.
func TestSmuggledAcrossPieces(t *testing.T) {
	exeZip := makeZip(t, zfile{name: "invoice.exe", data: tinyPE()})
	uri := dataURI("application/zip", exeZip)
	prefix := len("<p>")
	for _, at := range []int{64<<10 - 200, 64<<10 - 40, 64<<10 - 3, 64<<10 - 1, 64 << 10, 64<<10 + 1, 128<<10 - 17} {
		// Filler of short words puts the data: URI's payload at offset at.
		fill := strings.Repeat("word ", (at-prefix-len(`<a href="data:application/zip;base64,`))/5)
		fill += strings.Repeat(".", at-prefix-len(`<a href="data:application/zip;base64,`)-len(fill))
		page := "<p>" + fill + `<a href="` + uri + `">x</a></p>`
		require.Equal(t, at, strings.Index(page, ";base64,")+len(";base64,"))
		fs := findings(t, htmlBody(page))
		requireFinding(t, fs, KindBannedType, "")
		requireFinding(t, fs, KindSmuggled, "")
	}
}

func TestSmuggledNotOrdinary(t *testing.T) {
	img := pngBytes(t, 40, 30)
	text := bytes.Repeat([]byte("an ordinary paragraph of text in a page. "), 40)
	hexHash := strings.Repeat("0123456789abcdef", 16) // a long hex token: base64 characters, no file
	cases := map[string][]byte{
		"inline image":    htmlBody(`<img src="` + dataURI("image/png", img) + `">`),
		"encoded text":    htmlBody(`<a href="` + dataURI("text/plain", text) + `">x</a>`),
		"hex token":       htmlBody("<p>checksum " + hexHash + "</p>"),
		"long prose line": htmlBody("<p>" + strings.Repeat("prose without a break ", 5000) + "</p>"),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Empty(t, findings(t, raw))
		})
	}
}

// TestSmuggledDepth nests pages in pages deeper than Limits.MaxDepth: the
// walk stops at the limit with a finding.
func TestSmuggledDepth(t *testing.T) {
	page := `<html><body>x</body></html>`
	for range DefaultMaxDepth + 2 {
		page = `<html><body><iframe src="` + dataURI("text/html", []byte(page)) + `"></iframe></body></html>`
	}
	fs := findings(t, htmlBody(page))
	requireFinding(t, fs, KindBomb, "depth")
}

// FuzzBase64Runs holds base64Runs to the runs a byte-by-byte scan finds.
func FuzzBase64Runs(f *testing.F) {
	f.Add([]byte("short words only"))
	f.Add([]byte("x " + strings.Repeat("QUJD", 40) + " y " + strings.Repeat("a", 127) + "-" + strings.Repeat("b", 300)))
	f.Fuzz(func(t *testing.T, line []byte) {
		var want [][2]int
		for i := 0; i < len(line); {
			if !b64Alphabet[line[i]] {
				i++
				continue
			}
			j := i
			for j < len(line) && b64Alphabet[line[j]] {
				j++
			}
			if j-i >= minEmbedded {
				want = append(want, [2]int{i, j})
			}
			i = j
		}
		var got [][2]int
		base64Runs(line, func(s, e int) bool { got = append(got, [2]int{s, e}); return true })
		if len(want) != len(got) {
			t.Fatalf("runs %v, want %v", got, want)
		}
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("runs %v, want %v", got, want)
			}
		}
	})
}
