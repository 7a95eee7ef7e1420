package archive

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/h2non/filetype"
	"github.com/h2non/filetype/matchers"
)

// filetypeHeads is the heads of the test files, filetype's own magic
// numbers (every matcher's type, from the test files it takes) and random
// bytes.
func filetypeHeads(t testing.TB) [][]byte {
	var heads [][]byte
	_ = filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil {
			heads = append(heads, b[:min(len(b), HeadSize)])
		}
		return nil
	})
	magics := []string{"\x89PNG\r\n\x1a\n", "\xff\xd8\xff\xe0", "GIF89a", "%PDF-1.4", "\x1f\x8b\x08", "BZh91AY", "7z\xbc\xaf\x27\x1c",
		"Rar!\x1a\x07\x00", "PK\x03\x04", "\x7fELF\x02\x01", "ID3\x03", "RIFF\x00\x00\x00\x00WAVEfmt ", "\x00\x00\x00\x18ftypisom",
		"RIFF\x00\x00\x00\x00WEBPVP8", "fLaC", "OggS", "\xfd7zXZ\x00", "\x28\xb5\x2f\xfd", "SQLite format 3\x00", "wOFF",
		"\x00\x01\x00\x00\x00", "MSCF\x00\x00\x00\x00", "{\\rtf1", "%!PS", "II*\x00", "BM", "\x00\x00\x01\x00", "FWS",
		"!<arch>\ndebian", "\xed\xab\xee\xdb", "Cr24", "LZIP", "\x1f\x9d", "MZ\x90\x00", "dex\n035\x00", "RIFF\x00\x00\x00\x00AVI LIST",
		"\x00asm", "\x1aE\xdf\xa3", "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "\x04\x22\x4d\x18", "8BPS", "\x00\x00\x00\x0cjP  "}
	for _, m := range magics {
		b := make([]byte, 300)
		copy(b, m)
		heads = append(heads, b, []byte(m))
	}
	tar := make([]byte, 512)
	copy(tar[257:], "ustar\x0000")
	heads = append(heads, tar)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 4, 8, 16, 262, 8192} {
		for range 50 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			heads = append(heads, b)
		}
	}
	// Magic numbers: each test head with its first bytes moved onto
	// random ones, so that prefixes of real types appear in odd places.
	for i := range 200 {
		h := heads[i%len(heads)]
		b := make([]byte, 64)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		copy(b, h[:min(len(h), rng.IntN(12))])
		heads = append(heads, b)
	}
	return heads
}

func filetypeMatch(head []byte) string {
	t, err := filetype.Match(head)
	if err != nil || t.Extension == "unknown" {
		return ""
	}
	return t.Extension
}

// TestMatchFiletype: the matchers taken once answer as filetype.Match
// does, and a matcher added to filetype later is not missed.
func TestMatchFiletype(t *testing.T) {
	typed := 0
	for i, h := range filetypeHeads(t) {
		want := filetypeMatch(h)
		if got := matchFiletype(h); got != want {
			t.Fatalf("head %d (%d bytes, %.16q): %q, filetype says %q", i, len(h), h, got, want)
		}
		if want != "" {
			typed++
		}
	}
	if typed < 30 {
		t.Fatalf("only %d heads had a filetype type: the comparison proves little", typed)
	}

	saved, keys := filetype.Matchers, *filetype.MatcherKeys
	t.Cleanup(func() {
		*filetype.MatcherKeys = keys
		for k := range filetype.Matchers {
			if _, ok := saved[k]; !ok {
				delete(filetype.Matchers, k)
			}
		}
	})
	kind := filetype.NewType("pcxtest", "application/x-portcullis-test")
	filetype.AddMatcher(kind, matchers.Matcher(func(b []byte) bool { return len(b) > 3 && string(b[:4]) == "PCX!" }))
	if got := matchFiletype([]byte("PCX!rest")); got != "pcxtest" {
		t.Fatalf("a matcher added later: %q", got)
	}
}

func FuzzMatchFiletype(f *testing.F) {
	for i, h := range filetypeHeads(f) {
		if i%4 == 0 {
			f.Add(h)
		}
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		if got, want := matchFiletype(head), filetypeMatch(head); got != want {
			t.Fatalf("%q, filetype says %q", got, want)
		}
	})
}
