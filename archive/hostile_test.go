package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"

	"github.com/portcullis-mail/portcullis/filter"
)

const maxHeap = 64 << 20

// deflated returns the raw deflate stream of n zero bytes and its CRC.
func deflatedZeros(t testing.TB, n int64) ([]byte, uint32) {
	t.Helper()
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestSpeed) // 1000:1 on zeros, 20 times faster than best
	zero := make([]byte, 1<<20)
	crc := crc32.NewIEEE()
	for left := n; left > 0; {
		k := min(left, int64(len(zero)))
		fw.Write(zero[:k])
		crc.Write(zero[:k])
		left -= k
	}
	fw.Close()
	return b.Bytes(), crc.Sum32()
}

// nestedBomb is 42.zip in miniature: level 1 holds `fan` files of
// leafSize zeros, each further level `fan` copies of the one below.
func nestedBomb(t testing.TB, levels, fan int, leafSize int64) []byte {
	t.Helper()
	raw, crc := deflatedZeros(t, leafSize)
	var cur []byte
	for lvl := 1; lvl <= levels; lvl++ {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for i := range fan {
			name := string(rune('a'+i)) + ".zip"
			var w io.Writer
			var err error
			if lvl == 1 {
				name = string(rune('a'+i)) + ".txt"
				w, err = zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: crc,
					CompressedSize64: uint64(len(raw)), UncompressedSize64: uint64(leafSize)})
				if err == nil {
					_, err = w.Write(raw)
				}
			} else {
				w, err = zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
				if err == nil {
					_, err = w.Write(cur)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		zw.Close()
		cur = b.Bytes()
	}
	return cur
}

func TestNestedBomb(t *testing.T) {
	bomb := nestedBomb(t, 5, 4, 16<<20) // 4^4 × 4 × 16 MiB = 16 GiB unpacked
	raw := message(att{name: "42.zip", data: bomb})
	t.Run("default policy: nested", func(t *testing.T) {
		h := watchHeap()
		in := New(Config{})
		res, err := in.Check(context.Background(), newMsg(raw))
		h.done(t, maxHeap)
		if err != nil {
			t.Fatal(err)
		}
		if res.Action != filter.Reject || len(res.Symbols) == 0 || res.Symbols[0].Name != "ARCHIVE_NESTED" {
			t.Fatalf("got %+v", res)
		}
		if res.Symbols[0].Detail != "42.zip/a.zip (zip)" {
			t.Fatalf("detail %q", res.Symbols[0].Detail)
		}
	})
	t.Run("nesting allowed: bomb", func(t *testing.T) {
		h := watchHeap()
		start := time.Now()
		_, fs := inspect(t, Config{AllowNested: true}, att{name: "42.zip", data: bomb})
		h.done(t, maxHeap)
		requireFinding(t, fs, KindBomb, "ratio > 250")
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("took %v: not stopped early", d)
		}
	})
	t.Run("leaves: limit error", func(t *testing.T) {
		h := watchHeap()
		in := New(Config{})
		n := 0
		err := in.Leaves(context.Background(), newMsg(raw), func(l Leaf, r io.Reader) error {
			n++
			_, err := io.Copy(io.Discard, r)
			return err
		})
		h.done(t, maxHeap)
		var le *LimitError
		if !errors.As(err, &le) || !errors.Is(err, ErrLimit) {
			t.Fatalf("Leaves = %v, want a *LimitError", err)
		}
		if le.Limit != "ratio" {
			t.Fatalf("limit %q", le.Limit)
		}
	})
}

// The non-recursive zip bomb: entries whose data overlap, here both the
// "quoted" shape (b's local header inside a's data) and the shared one
// (c pointing at a's local header).
func TestOverlapBomb(t *testing.T) {
	kernel, crc := deflatedZeros(t, 64<<20)
	inner := rawZip(0, rawEntry{name: "b.txt", method: 8, data: kernel, size: 64 << 20, crc: crc, offset: -1})
	innerLocal := inner[:30+len("b.txt")+len(kernel)]
	// a's stored data is b's local header and data.
	a := rawEntry{name: "a.txt", data: innerLocal, offset: -1}
	z := rawZip(0, a,
		rawEntry{name: "b.txt", method: 8, data: nil, size: 64 << 20, crc: crc, offset: 30 + len("a.txt")},
		rawEntry{name: "c.txt", method: 0, data: nil, offset: 0})
	// Patch b's and c's compressed sizes in the central directory.
	z = patchCentralSizes(t, z, map[string]uint32{"b.txt": uint32(len(kernel)), "c.txt": uint32(len(innerLocal))})
	h := watchHeap()
	res, fs := inspect(t, Config{}, att{name: "overlap.zip", data: z})
	h.done(t, maxHeap)
	requireFinding(t, fs, KindZipOverlap, "overlap.zip (a.txt/b.txt)")
	if res.Action != filter.Reject {
		t.Fatalf("action %v", res.Action)
	}
	if hasFinding(fs, KindBomb, "") {
		t.Fatalf("entries were unpacked: %v", fs)
	}
}

// patchCentralSizes sets the compressed size of named central entries.
func patchCentralSizes(t testing.TB, z []byte, sizes map[string]uint32) []byte {
	t.Helper()
	z = append([]byte(nil), z...)
	for name, size := range sizes {
		i := bytes.LastIndex(z, append([]byte("PK\x01\x02"), []byte{}...))
		for i >= 0 {
			n := int(z[i+28]) | int(z[i+29])<<8
			if string(z[i+46:i+46+n]) == name {
				z[i+20], z[i+21], z[i+22], z[i+23] = byte(size), byte(size>>8), byte(size>>16), byte(size>>24)
				break
			}
			i = bytes.LastIndex(z[:i], []byte("PK\x01\x02"))
		}
		if i < 0 {
			t.Fatalf("no central entry %s", name)
		}
	}
	return z
}

// 2 GiB of zeros, gzip'd as 32 members of 64 MiB: stopped by the ratio
// after a few MiB.
func TestGzipBomb(t *testing.T) {
	var member bytes.Buffer
	gw, _ := gzip.NewWriterLevel(&member, gzip.BestSpeed)
	zero := make([]byte, 1<<20)
	for range 64 {
		gw.Write(zero)
	}
	gw.Close()
	bomb := bytes.Repeat(member.Bytes(), 32)
	for _, cfg := range []Config{{}, {Limits: Limits{MaxRatio: -1}}} {
		h := watchHeap()
		start := time.Now()
		res, fs := inspect(t, cfg, att{name: "zeros.gz", data: bomb})
		h.done(t, maxHeap)
		if res.Action != filter.Reject || !hasFinding(fs, KindBomb, "zeros.gz/zeros") {
			t.Fatalf("got %v", fs)
		}
		t.Logf("%v in %v", fs, time.Since(start))
	}
}

func TestManyEntries(t *testing.T) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for i := range 100000 {
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: strings.Repeat("x", i%7) + string(rune('a'+i%26)), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	zw.Close()
	raw := message(att{name: "many.zip", data: b.Bytes()})
	h := watchHeap()
	in := New(Config{})
	fs, err := in.Inspect(context.Background(), newMsg(raw))
	h.done(t, maxHeap)
	if err != nil {
		t.Fatal(err)
	}
	requireFinding(t, fs, KindBomb, "many.zip (entries > 10000)")
}

// Twenty levels of gzip: each a container, stopped at MaxDepth.
func TestDepth20(t *testing.T) {
	data := []byte("hello")
	for range 20 {
		var b bytes.Buffer
		gw := gzip.NewWriter(&b)
		gw.Write(data)
		gw.Close()
		data = b.Bytes()
	}
	h := watchHeap()
	res, fs := inspect(t, Config{}, att{name: "deep.gz", data: data})
	h.done(t, maxHeap)
	requireFinding(t, fs, KindBomb, "depth > 8")
	if res.Action != filter.Reject {
		t.Fatalf("action %v", res.Action)
	}
	// Zips in zips, nesting allowed: the same limit.
	z := makeZip(t, zfile{name: "x.txt", data: []byte("x")})
	for range 20 {
		z = makeZip(t, zfile{name: "in.zip", data: z})
	}
	_, fs = inspect(t, Config{AllowNested: true}, att{name: "deep.zip", data: z})
	requireFinding(t, fs, KindBomb, "depth > 8")
}

func TestTraversalAndLinks(t *testing.T) {
	z := rawZip(0, entry("../../etc/cron.d/x", []byte("* * * * * root sh")), entry("/etc/passwd", []byte("x")),
		entry("C:\\Windows\\x.txt", []byte("x")),
		rawEntry{name: "link", data: []byte("/etc/shadow"), creator: 3, external: 0o120777 << 16, offset: -1})
	_, fs := inspect(t, Config{}, att{name: "t.zip", data: z})
	requireFinding(t, fs, KindTraversal, "t.zip/../../etc/cron.d/x")
	requireFinding(t, fs, KindTraversal, "/etc/passwd")
	requireFinding(t, fs, KindTraversal, "C:\\Windows")
	requireFinding(t, fs, KindLink, "t.zip/link (symlink)")
}

func TestEncrypted(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"zipcrypto.zip", rawZip(0, rawEntry{name: "setup.exe", flags: 1, data: []byte("0123456789abcdef0123"), offset: -1}), "zipcrypto.zip/setup.exe (zip crypto)"},
		{"aes.zip", rawZip(0, rawEntry{name: "doc.txt", flags: 1, method: 99, data: []byte("0123456789abcdef0123"), offset: -1}), "aes.zip/doc.txt (winzip aes)"},
		{"encrypted-headers.7z", readFixture(t, "encrypted-headers.7z"), "encrypted-headers.7z"},
		{"encrypted-content.7z", readFixture(t, "encrypted-content.7z"), "encrypted-content.7z/setup.exe"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Banned names quarantine here, so the walk goes on to the encryption.
			cfg := Config{Actions: map[Kind]filter.Action{KindBannedType: filter.Quarantine}}
			res, fs := inspect(t, cfg, att{name: c.name, data: c.data})
			requireFinding(t, fs, KindEncrypted, c.want)
			if strings.Contains(c.want, "setup.exe") {
				requireFinding(t, fs, KindBannedType, "setup.exe (.exe)")
			}
			if res.Action != filter.Quarantine {
				t.Fatalf("action %v, findings %v", res.Action, fs)
			}
		})
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Two zips back to back: most readers see only the last; the first holds
// the payload.
func TestConcatenatedZips(t *testing.T) {
	hidden := makeZip(t, zfile{name: "evil.exe", data: tinyPE()})
	shown := makeZip(t, zfile{name: "readme.txt", data: []byte("nothing to see")})
	z := append(append([]byte(nil), hidden...), shown...)
	res, fs := inspect(t, Config{Actions: map[Kind]filter.Action{KindBannedType: filter.Quarantine}}, att{name: "cat.zip", data: z})
	requireFinding(t, fs, KindZipConcatenated, "cat.zip")
	requireFinding(t, fs, KindBannedType, "cat.zip#hidden/evil.exe (pe)")
	if res.Action != filter.Quarantine {
		t.Fatalf("action %v", res.Action)
	}
	// The same with offsets written as if the second zip started at 0 of
	// the whole file: the end-record scan still finds the first.
	z2 := append(append([]byte(nil), hidden...), rawZip(len(hidden), entry("readme.txt", []byte("hi")))...)
	_, fs = inspect(t, Config{}, att{name: "cat2.zip", data: z2})
	requireFinding(t, fs, KindBannedType, "evil.exe (pe)")
}

func TestNameMismatch(t *testing.T) {
	z := rawZip(0, rawEntry{name: "invoice.txt", localName: "invoice.exe", data: []byte("hello"), offset: -1})
	_, fs := inspect(t, Config{}, att{name: "m.zip", data: z})
	requireFinding(t, fs, KindZipNameMismatch, "m.zip/invoice.txt")
	// The local name counts as a candidate name: .exe is banned.
	requireFinding(t, fs, KindBannedType, "m.zip/invoice.txt (.exe)")
}

// A zip behind an MZ stub that is not a PE (and one behind a real PE
// header, which is banned as such).
func TestZipBehindMZ(t *testing.T) {
	stub := append([]byte("MZ"), bytes.Repeat([]byte{0x90}, 1000)...)
	z := append(append([]byte(nil), stub...), rawZip(len(stub), entry("setup.exe", tinyPE()))...)
	_, fs := inspect(t, Config{}, att{name: "photo.jpg", data: z})
	requireFinding(t, fs, KindBannedType, "photo.jpg (mz)") // MZ alone is banned now
	_, fs = inspect(t, Config{AllowedTypes: []string{TypeMZ}}, att{name: "photo.jpg", data: z})
	requireFinding(t, fs, KindHiddenArchive, "zip at offset 1002 of a mz")
	requireFinding(t, fs, KindBannedType, "photo.jpg#zip@1002/setup.exe (pe)")

	sfx := append(tinyPE(), rawZip(512, entry("a.txt", []byte("x")))...)
	_, fs = inspect(t, Config{}, att{name: "sfx.exe", data: sfx})
	requireFinding(t, fs, KindBannedType, "sfx.exe (pe)")
}

func TestDisguisedNames(t *testing.T) {
	pe := tinyPE()
	t.Run("exe renamed pdf", func(t *testing.T) {
		res, fs := inspect(t, Config{}, att{name: "invoice.pdf", ctype: "application/pdf", data: pe})
		requireFinding(t, fs, KindBannedType, "invoice.pdf (pe)")
		requireFinding(t, fs, KindTypeMismatch, "invoice.pdf (.pdf is pe)")
		requireFinding(t, fs, KindTypeMismatch, "application/pdf is pe")
		if res.Action != filter.Reject {
			t.Fatal(res.Action)
		}
	})
	t.Run("RTLO", func(t *testing.T) {
		// Shows as "invoice_exe.pdf", is "invoice_\u202efdp.exe".
		_, fs := inspect(t, Config{}, att{header: "Content-Disposition: attachment; filename*=UTF-8''invoice_%E2%80%AEfdp.exe\r\n", data: []byte("plain text")})
		requireFinding(t, fs, KindNameBidi, `invoice_\u202efdp.exe`)
		requireFinding(t, fs, KindBannedType, "(.exe)")
		z := makeZip(t, zfile{name: "photo_\u202egpj.scr", data: []byte("text")})
		_, fs = inspect(t, Config{}, att{name: "a.zip", data: z})
		requireFinding(t, fs, KindNameBidi, "a.zip/photo_?gpj.scr")
		requireFinding(t, fs, KindBannedType, "(.scr)")
	})
	t.Run("RFC 2231 continuation hides .exe", func(t *testing.T) {
		_, fs := inspect(t, Config{}, att{ctype: "application/pdf; name=\"report.pdf\"",
			header: "Content-Disposition: attachment; filename*0=\"report.pdf\"; filename*1=\"  .exe\"\r\n", data: []byte("%PDF-1.4 hello")})
		requireFinding(t, fs, KindBannedType, "(.exe)")
		requireFinding(t, fs, KindDoubleExt, "report.pdf  .exe")
	})
	t.Run("trailing dots and case", func(t *testing.T) {
		_, fs := inspect(t, Config{}, att{name: "SETUP.EXE. . ", data: []byte("text")})
		requireFinding(t, fs, KindBannedType, "(.exe)")
	})
	t.Run("double extension", func(t *testing.T) {
		res, fs := inspect(t, Config{}, att{name: "report.pdf.exe", data: pe})
		requireFinding(t, fs, KindDoubleExt, "report.pdf.exe")
		if res.Action != filter.Reject {
			t.Fatal(res.Action)
		}
	})
}

// An executable inside a forwarded message is found, with the forwarded
// message's name in its path.
func TestExeInAttachedMessage(t *testing.T) {
	inner := message(att{name: "setup.exe", data: tinyPE()})
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\nSubject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"OUTER\"\r\n\r\n")
	b.WriteString("--OUTER\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n")
	b.WriteString("--OUTER\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"fwd.eml\"\r\n\r\n")
	b.Write(inner)
	b.WriteString("\r\n--OUTER--\r\n")
	in := New(Config{})
	res, err := in.Check(context.Background(), newMsg(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != filter.Reject || len(res.Symbols) == 0 || res.Symbols[0].Detail != "fwd.eml/setup.exe (pe)" {
		t.Fatalf("got %+v", res)
	}
}

// A uuencoded block in a text body is a file like an attachment.
func TestUuencodedInText(t *testing.T) {
	var body strings.Builder
	body.WriteString("Hello,\r\nplease run the attached.\r\n\r\nbegin 644 setup.exe\r\n")
	pe := tinyPE()
	for i := 0; i < len(pe); i += 45 {
		chunk := pe[i:min(i+45, len(pe))]
		body.WriteByte(byte(' ' + len(chunk)))
		for j := 0; j < len(chunk); j += 3 {
			var b [3]byte
			copy(b[:], chunk[j:])
			for _, c := range []byte{b[0] >> 2, (b[0]<<4 | b[1]>>4) & 63, (b[1]<<2 | b[2]>>6) & 63, b[2] & 63} {
				if c == 0 {
					c = 64
				}
				body.WriteByte(' ' + c)
			}
		}
		body.WriteString("\r\n")
	}
	body.WriteString("`\r\nend\r\n\r\nregards\r\n")
	raw := "From: a@example.org\r\nSubject: x\r\nContent-Type: text/plain\r\n\r\n" + body.String()
	fs, err := New(Config{}).Inspect(context.Background(), newMsg([]byte(raw)))
	if err != nil {
		t.Fatal(err)
	}
	requireFinding(t, fs, KindBannedType, "message/setup.exe (pe)")
}

// rardecode panics on a first volume without its second; that is an
// uninspectable file, not a crash.
func TestDecoderPanic(t *testing.T) {
	in := New(Config{})
	fs, err := in.Inspect(context.Background(), newMsg(message(att{name: "part1.rar", data: readFixture(t, "first-volume.rar")})))
	if err != nil {
		t.Fatal(err)
	}
	requireFinding(t, fs, KindUninspectable, "part1.rar")
	if n, stack := in.Panics(); n > 0 && ownPanic(stack) {
		t.Fatalf("panic in the inspector itself:\n%s", stack)
	}
}

// ownPanic reports whether a recovered panic started in this module rather
// than in a third-party decoder.
func ownPanic(stack []byte) bool {
	lines := strings.Split(string(stack), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "panic(") {
			continue
		}
		for _, f := range lines[i+1:] {
			if f == "" || strings.HasPrefix(f, "\t") || strings.HasPrefix(f, "runtime.") {
				continue
			}
			return strings.HasPrefix(f, "github.com/portcullis-mail/portcullis/")
		}
	}
	return false
}
