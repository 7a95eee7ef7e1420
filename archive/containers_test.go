package archive

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/portcullis-mail/portcullis/filter"
)

// innerMail is a message with one attachment, for forwarding.
func innerMail(name string, data []byte) []byte {
	return lines("From: x@example.org\nTo: y@example.org\nSubject: fwd\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/mixed; boundary=in\n\n--in\nContent-Type: text/plain\n\nsee\n--in\n" +
		"Content-Type: application/octet-stream; name=" + name + "\nContent-Transfer-Encoding: base64\n\n" +
		base64.StdEncoding.EncodeToString(data) + "\n--in--\n")
}

func wrap(ctype, cte, body string) []byte {
	return lines("From: a@example.org\nTo: b@example.org\nSubject: t\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/mixed; boundary=out\n\n--out\nContent-Type: text/plain\n\nhi\n--out\n" +
		"Content-Type: " + ctype + "\nContent-Transfer-Encoding: " + cte + "\n\n" + body + "\n--out--\n")
}

func checkRaw(t *testing.T, raw []byte) (filter.Result, []Finding) {
	t.Helper()
	h := watchHeap()
	defer h.done(t, maxHeap)
	in := New(Config{})
	m := newMsg(raw)
	fs, err := in.Inspect(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	res, err := in.Check(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	return res, fs
}

func TestForwardedMail(t *testing.T) {
	inner := innerMail("setup.exe", tinyPE())
	var qp bytes.Buffer
	qw := quotedprintable.NewWriter(&qp)
	qw.Write(inner)
	qw.Close()
	for name, raw := range map[string][]byte{
		"message/rfc822 in base64":           wrap("message/rfc822", "base64", base64.StdEncoding.EncodeToString(inner)),
		"message/rfc822 in quoted-printable": wrap("message/rfc822", "quoted-printable", qp.String()),
		"message/rfc822 as 7bit":             wrap("message/rfc822", "7bit", string(inner)),
		".eml as octet-stream":               wrap("application/octet-stream; name=fwd.eml", "base64", base64.StdEncoding.EncodeToString(inner)),
		".eml without a name":                wrap("application/octet-stream", "base64", base64.StdEncoding.EncodeToString(inner)),
		"a forward in a zip":                 wrap("application/zip; name=a.zip", "base64", base64.StdEncoding.EncodeToString(makeZip(t, zfile{name: "fwd.eml", data: inner}))),
	} {
		t.Run(name, func(t *testing.T) {
			res, fs := checkRaw(t, raw)
			requireFinding(t, fs, KindBannedType, "setup.exe (pe)")
			assert.Equal(t, filter.Reject, res.Action)
		})
	}
	t.Run("a clean forward is accepted", func(t *testing.T) {
		res, _ := checkRaw(t, wrap("application/octet-stream; name=fwd.eml", "base64", base64.StdEncoding.EncodeToString(innerMail("a.pdf", []byte("%PDF-1.4\n")))))
		assert.Equal(t, filter.Accept, res.Action, "%v", res.Symbols)
	})
}

func TestMessagePartial(t *testing.T) {
	res, fs := checkRaw(t, wrap("message/partial; id=\"x@y\"; number=1; total=2", "7bit", "Content-Type: application/octet-stream\n\nTVqQ"))
	requireFinding(t, fs, KindPartial, "x@y")
	assert.Equal(t, filter.Quarantine, res.Action)
}

func TestTextEncodings(t *testing.T) {
	pe := tinyPE()
	uu := func(begin string) string {
		var b strings.Builder
		b.WriteString(begin + "\n")
		for i := 0; i < len(pe); i += 45 {
			chunk := pe[i:min(i+45, len(pe))]
			b.WriteByte(byte(32 + len(chunk)))
			for j := 0; j < len(chunk); j += 3 {
				var c [3]byte
				copy(c[:], chunk[j:])
				for _, v := range []byte{c[0] >> 2, (c[0]<<4 | c[1]>>4) & 63, (c[1]<<2 | c[2]>>6) & 63, c[2] & 63} {
					if v == 0 {
						b.WriteByte('`')
					} else {
						b.WriteByte(32 + v)
					}
				}
			}
			b.WriteByte('\n')
		}
		b.WriteString("`\nend\n")
		return b.String()
	}
	yenc := func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "=ybegin line=128 size=%d name=run me.exe\n", len(pe))
		col := 0
		for _, c := range pe {
			e := c + 42
			if e == 0 || e == '\n' || e == '\r' || e == '=' {
				b.WriteByte('=')
				e += 64
			}
			b.WriteByte(e)
			if col++; col == 128 {
				b.WriteByte('\n')
				col = 0
			}
		}
		fmt.Fprintf(&b, "\n=yend size=%d\n", len(pe))
		return b.String()
	}
	b64 := "begin-base64 644 x.exe\n" + base64.StdEncoding.EncodeToString(pe) + "\n====\n"
	tests := map[string]string{
		"uuencode 644":                 uu("begin 644 a.exe"),
		"uuencode 0644":                uu("begin 0644 a.exe"),
		"uuencode upper case":          uu("BEGIN  644   a.exe"),
		"uuencode without a name":      uu("begin 644"),
		"uuencode base64":              b64,
		"yenc":                         yenc(),
		"binhex":                       string(clamFile(t, "clam.exe.binhex")),
		"binhex after a word with b":   "by the way " + string(clamFile(t, "clam.exe.binhex")),
		"uuencode after a 100 KB line": strings.Repeat("x", 100<<10) + "\n" + uu("begin 644 a.exe"),
	}
	for name, block := range tests {
		t.Run(name+" in a text body", func(t *testing.T) {
			raw := lines("From: a@example.org\nSubject: t\nContent-Type: text/plain\n\nHello,\n\n" + block + "\nbye\n")
			res, fs := checkRaw(t, raw)
			requireFinding(t, fs, KindBannedType, "(pe)")
			assert.Equal(t, filter.Reject, res.Action)
		})
		t.Run(name+" as its own part", func(t *testing.T) {
			res, fs := checkRaw(t, wrap("application/octet-stream; name=data.txt", "7bit", block))
			requireFinding(t, fs, KindBannedType, "(pe)")
			assert.Equal(t, filter.Reject, res.Action)
		})
	}
	t.Run("text mentioning begin is text", func(t *testing.T) {
		res, _ := checkRaw(t, lines("From: a@example.org\nSubject: t\nContent-Type: text/plain\n\nbegin the meeting at 10\n=ybegin is a word\n"))
		assert.Empty(t, res.Symbols)
	})
}

func TestTNEF(t *testing.T) {
	res, fs := inspect(t, Config{}, att{name: "winmail.dat", ctype: "application/ms-tnef", data: clamFile(t, "clam.tnef")})
	requireFinding(t, fs, KindBannedType, "(pe)")
	assert.Equal(t, filter.Reject, res.Action)

	res, fs = inspect(t, Config{}, att{name: "winmail.dat", data: makeTNEF("invoice.js", []byte("WScript.Echo(1)"))})
	requireFinding(t, fs, KindBannedType, "winmail.dat/invoice.js (.js)")
	assert.Equal(t, filter.Reject, res.Action)

	res, _ = inspect(t, Config{}, att{name: "winmail.dat", data: makeTNEF("notes.txt", []byte("hello"))})
	assert.Equal(t, filter.Accept, res.Action, "%v", res.Symbols)
}

// makeTNEF builds a TNEF stream with one attachment.
func makeTNEF(name string, data []byte) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	attr := func(level byte, id uint32, d []byte) {
		b.WriteByte(level)
		le(id)
		le(uint32(len(d)))
		b.Write(d)
		le(uint16(0))
	}
	le(uint32(tnefSignature))
	le(uint16(1))
	attr(1, 0x00089006, []byte("IPM.Microsoft Mail.Note\x00"))
	attr(2, attAttachRendData, make([]byte, 14))
	attr(2, attAttachTitle, []byte(name+"\x00"))
	attr(2, attAttachData, data)
	return b.Bytes()
}

// makeISO builds an ISO 9660 image with one file in its root.
func makeISO(name string, data []byte) []byte {
	img := make([]byte, 19*isoSector+((len(data)+isoSector-1)/isoSector)*isoSector)
	le, be := binary.LittleEndian, binary.BigEndian
	rec := func(b []byte, extent, size uint32, flags byte, id []byte) int {
		l := 33 + len(id)
		l += l & 1
		b[0] = byte(l)
		le.PutUint32(b[2:], extent)
		be.PutUint32(b[6:], extent)
		le.PutUint32(b[10:], size)
		be.PutUint32(b[14:], size)
		b[25] = flags
		b[32] = byte(len(id))
		copy(b[33:], id)
		return l
	}
	pvd := img[16*isoSector:]
	pvd[0] = 1
	copy(pvd[1:], "CD001")
	pvd[6] = 1
	rec(pvd[156:], 18, isoSector, 2, []byte{0})
	term := img[17*isoSector:]
	term[0] = 255
	copy(term[1:], "CD001")
	dir := img[18*isoSector:]
	o := rec(dir, 18, isoSector, 2, []byte{0})
	o += rec(dir[o:], 18, isoSector, 2, []byte{1})
	rec(dir[o:], 19, uint32(len(data)), 0, []byte(strings.ToUpper(name)+";1"))
	copy(img[19*isoSector:], data)
	return img
}

func TestISO(t *testing.T) {
	res, fs := inspect(t, Config{AllowedExtensions: []string{"iso"}}, att{name: "photos.iso", data: makeISO("setup.exe", tinyPE())})
	requireFinding(t, fs, KindDiskImage, "photos.iso (iso9660)")
	requireFinding(t, fs, KindBannedType, "photos.iso/SETUP.EXE (pe)")
	assert.Equal(t, filter.Reject, res.Action)
	// Named as something else, it is still a disk image.
	res, fs = inspect(t, Config{}, att{name: "scan.pdf", data: makeISO("readme.txt", []byte("hello"))})
	requireFinding(t, fs, KindDiskImage, "scan.pdf (iso9660)")
	assert.Equal(t, filter.Quarantine, res.Action)
}

func TestCHM(t *testing.T) {
	res, fs := inspect(t, Config{}, att{name: "help.dat", data: clamFile(t, "clam.chm")})
	requireFinding(t, fs, KindBannedType, "(chm)")
	assert.Equal(t, filter.Reject, res.Action)
}

func FuzzTNEF(f *testing.F) {
	f.Add(makeTNEF("a.exe", []byte("MZ")))
	if b, err := os.ReadFile(filepath.Join(clamDir, "clam.tnef")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		atts, _ := readTNEF(bytes.NewReader(data), int64(len(data)), 100)
		if len(atts) > 100 {
			t.Fatalf("%d attachments over the budget", len(atts))
		}
		for _, a := range atts {
			if a.len >= 0 && (a.off < 0 || a.off+a.len > int64(len(data))) {
				t.Fatalf("attachment [%d,+%d) outside %d bytes", a.off, a.len, len(data))
			}
		}
	})
}

func FuzzISO(f *testing.F) {
	f.Add(makeISO("a.exe", []byte("MZ")))
	f.Fuzz(func(t *testing.T, data []byte) {
		files, _ := readISO(bytes.NewReader(data), int64(len(data)), 100)
		if len(files) > 100 {
			t.Fatalf("%d files over the budget", len(files))
		}
		for _, fl := range files {
			if fl.off+fl.size > int64(len(data)) && fl.size > 0 {
				t.Fatalf("file [%d,+%d) outside %d bytes", fl.off, fl.size, len(data))
			}
		}
	})
}

// FuzzTextBlocks feeds uuencode, yEnc and BinHex decoders arbitrary text.
func FuzzTextBlocks(f *testing.F) {
	f.Add([]byte("begin 644 a.exe\n#35H`\n`\nend\n"))
	f.Add([]byte("=ybegin line=128 size=2 name=a.exe\nw\x84\n=yend size=2\n"))
	f.Add([]byte("(This file must be converted with BinHex 4.0)\n:#'0XB@dZCAKP!%9B43\"$E'&Y!!!!!!)J!!!!!EY969T3!!)!!!!%!!m!rrm!!,J:\n"))
	f.Add([]byte("begin-base64 644 x\nTVo=\n====\n"))
	in := New(Config{Limits: Limits{MaxTotalBytes: 1 << 20}})
	f.Fuzz(func(t *testing.T, data []byte) {
		w := in.newWalker(t.Context(), nil)
		if err := w.textBlocks(node{path: "t", size: -1}, bytes.NewReader(data)); err != nil && !errors.Is(err, errStop) && !errors.Is(err, ErrLimit) {
			t.Fatalf("textBlocks: %v", err)
		}
	})
}

func TestForwardsNestedDeep(t *testing.T) {
	inner := innerMail("a.txt", []byte("hello"))
	for range 14 { // base64 grows each layer by a third: 14 layers are 60 KB
		inner = wrap("message/rfc822", "base64", b64lines(inner))
	}
	start := time.Now()
	res, fs := checkRaw(t, inner)
	requireFinding(t, fs, KindBomb, "depth")
	assert.Equal(t, filter.Reject, res.Action)
	assert.Less(t, time.Since(start), time.Second)
}
