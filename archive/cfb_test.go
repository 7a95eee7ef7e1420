package archive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/portcullis-mail/portcullis/filter"
)

// makeCFB builds a version 3 compound file holding one stream in regular
// sectors (streams are padded past the 4 KiB mini stream cutoff).
func makeCFB(t testing.TB, name string, data []byte) []byte {
	t.Helper()
	if len(data) < 4096 {
		data = append(data, make([]byte, 4096-len(data))...)
	}
	le := binary.LittleEndian
	nData := (len(data) + 511) / 512
	hdr := make([]byte, 512)
	copy(hdr, oleHeader)
	le.PutUint16(hdr[0x18:], 0x3e)
	le.PutUint16(hdr[0x1a:], 3)
	le.PutUint16(hdr[0x1c:], 0xfffe)
	le.PutUint16(hdr[0x1e:], 9)
	le.PutUint16(hdr[0x20:], 6)
	le.PutUint32(hdr[0x2c:], 1)          // FAT sectors
	le.PutUint32(hdr[0x30:], 1)          // first directory sector
	le.PutUint32(hdr[0x38:], 4096)       // mini stream cutoff
	le.PutUint32(hdr[0x3c:], 0xfffffffe) // no mini FAT
	le.PutUint32(hdr[0x44:], 0xfffffffe) // no DIFAT chain
	for i := range 109 {
		le.PutUint32(hdr[76+4*i:], 0xffffffff)
	}
	le.PutUint32(hdr[76:], 0)
	fat := make([]byte, 512)
	for i := range 128 {
		le.PutUint32(fat[4*i:], 0xffffffff)
	}
	le.PutUint32(fat[0:], 0xfffffffd)
	le.PutUint32(fat[4:], 0xfffffffe)
	for i := range nData {
		next := uint32(2 + i + 1)
		if i == nData-1 {
			next = 0xfffffffe
		}
		le.PutUint32(fat[4*(2+i):], next)
	}
	dir := make([]byte, 512)
	entry := func(i int, name string, typ byte, child, start uint32, size uint64) {
		e := dir[128*i:]
		u := utf16.Encode([]rune(name))
		for j, v := range u {
			le.PutUint16(e[2*j:], v)
		}
		le.PutUint16(e[0x40:], uint16(2*len(u)+2))
		e[0x42], e[0x43] = typ, 1
		le.PutUint32(e[0x44:], 0xffffffff)
		le.PutUint32(e[0x48:], 0xffffffff)
		le.PutUint32(e[0x4c:], child)
		le.PutUint32(e[0x74:], start)
		le.PutUint64(e[0x78:], size)
	}
	entry(0, "Root Entry", 5, 1, 0xfffffffe, 0)
	entry(1, name, 2, 0xffffffff, 2, uint64(len(data)))
	out := append(append(append(hdr, fat...), dir...), data...)
	return append(out, make([]byte, nData*512-len(data))...)
}

// ole10 builds an OLE1 native data stream carrying a file.
func ole10(name string, data []byte) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	path := `C:\Users\x\AppData\Local\Temp\` + name + "\x00"
	le(uint32(0))
	le(uint16(2))
	b.WriteString(name + "\x00")
	b.WriteString(`C:\Users\x\Desktop\` + name + "\x00")
	le(uint32(0x00030000))
	le(uint32(len(path)))
	b.WriteString(path)
	le(uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

func TestOLEPackagerObject(t *testing.T) {
	doc := makeCFB(t, "\x01Ole10Native", ole10("run.bat", []byte("@echo off\r\nformat c:\r\n")))
	res, fs := inspect(t, Config{}, att{name: "report.doc", data: doc})
	requireFinding(t, fs, KindEmbeddedObject, "report.doc/run.bat")
	requireFinding(t, fs, KindBannedType, "report.doc/run.bat (.bat)")
	assert.Equal(t, filter.Reject, res.Action)

	doc = makeCFB(t, "\x01Ole10Native", ole10("notes.txt", tinyPE()))
	_, fs = inspect(t, Config{}, att{name: "report.doc", data: doc})
	requireFinding(t, fs, KindBannedType, "report.doc/notes.txt (pe)")

	doc = makeCFB(t, "Package", makeZip(t, zfile{name: "a.js", data: []byte("WScript.Echo(1)")}))
	_, fs = inspect(t, Config{}, att{name: "report.doc", data: doc})
	requireFinding(t, fs, KindBannedType, "a.js")

	// The scanner gets the document whole and the embedded file.
	in := New(Config{})
	var paths []string
	doc = makeCFB(t, "\x01Ole10Native", ole10("run.bat", []byte("@echo off\r\n")))
	require.NoError(t, in.Leaves(t.Context(), newMsg(message(att{name: "r.doc", data: doc})), func(l Leaf, r io.Reader) error {
		paths = append(paths, l.Path)
		return nil
	}))
	assert.Equal(t, []string{"r.doc/run.bat", "r.doc"}, paths)
}

func TestCFBReadsRealFiles(t *testing.T) {
	for _, name := range []string{"clam.ole.doc", "clam.ppt"} {
		data := clamFile(t, name)
		c, err := openCFB(bytes.NewReader(data), int64(len(data)), 10000)
		require.NoError(t, err, name)
		streams := 0
		for _, e := range c.entries {
			if e.typ != 2 {
				continue
			}
			streams++
			n, err := io.Copy(io.Discard, c.open(e))
			require.NoError(t, err, "%s/%q", name, e.name)
			assert.EqualValues(t, e.size, n, "%s/%q", name, e.name)
		}
		assert.Greater(t, streams, 2, name)
		res, _ := inspect(t, Config{}, att{name: name, data: data})
		for _, s := range res.Symbols {
			assert.NotEqual(t, "ARCHIVE_UNINSPECTABLE", s.Name, "%s: %v", name, res.Symbols)
		}
	}
}

func TestCFBCorrupt(t *testing.T) {
	doc := makeCFB(t, "\x01Ole10Native", ole10("run.bat", []byte("x")))
	// A FAT whose chain loops back on itself.
	loop := append([]byte(nil), doc...)
	binary.LittleEndian.PutUint32(loop[512+4*1:], 1) // the directory chain loops
	_, fs := inspect(t, Config{}, att{name: "loop.doc", data: loop})
	requireFinding(t, fs, KindUninspectable, "loop.doc")
	// A FAT sector count past the file.
	big := append([]byte(nil), doc...)
	binary.LittleEndian.PutUint32(big[0x2c:], 1<<30)
	_, fs = inspect(t, Config{}, att{name: "big.doc", data: big})
	requireFinding(t, fs, KindUninspectable, "big.doc")
}

func FuzzCFB(f *testing.F) {
	f.Add(makeCFB(f, "\x01Ole10Native", ole10("run.bat", []byte("x"))))
	f.Add(makeCFB(f, "Package", []byte("PK")))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := openCFB(bytes.NewReader(data), int64(len(data)), 100)
		if err != nil {
			return
		}
		for i, e := range c.entries {
			if e.typ == 1 && len(c.children(i)) > len(c.entries) {
				t.Fatalf("more children than entries")
			}
			n, _ := io.Copy(io.Discard, io.LimitReader(c.open(e), 1<<20))
			if n > int64(len(data))*8+4096 {
				t.Fatalf("stream of %d bytes from %d", n, len(data))
			}
			if e.name == "\x01Ole10Native" {
				ole10Native(c.open(e), int64(e.size)) //nolint:errcheck // must not panic
			}
		}
	})
}

func TestRTFObjects(t *testing.T) {
	res, fs := inspect(t, Config{}, att{name: "letter.rtf", data: clamFile(t, "clam.exe.rtf")})
	requireFinding(t, fs, KindEmbeddedObject, "letter.rtf/")
	requireFinding(t, fs, KindBannedType, "(pe)")
	assert.Equal(t, filter.Reject, res.Action)

	// An obfuscated one: control words and groups inside the hex.
	pkg := ole10("run.bat", []byte("@echo off\r\n"))
	var obj bytes.Buffer
	binary.Write(&obj, binary.LittleEndian, []uint32{0x0501, 2, 8})
	obj.WriteString("Package\x00")
	binary.Write(&obj, binary.LittleEndian, []uint32{0, 0})
	obj.Write(pkg[:4]) // the native size comes first in both forms
	binary.LittleEndian.PutUint32(obj.Bytes()[obj.Len()-4:], uint32(len(pkg)-4))
	obj.Write(pkg[4:])
	hex := fmt.Sprintf("%x", obj.Bytes())
	rtf := "{\\rtf1{\\object\\objemb{\\*\\objclass Package}{\\*\\objdata " + hex[:10] + "{\\*\\junk}\\par " + hex[10:] + "}}}"
	res, fs = inspect(t, Config{}, att{name: "a.rtf", data: []byte(rtf)})
	requireFinding(t, fs, KindBannedType, "a.rtf/run.bat (.bat)")
	assert.Equal(t, filter.Reject, res.Action)

	res, _ = inspect(t, Config{}, att{name: "plain.rtf", data: []byte("{\\rtf1\\ansi Hello \\b world\\b0.}")})
	assert.Empty(t, res.Symbols)
}

func FuzzRTFObjects(f *testing.F) {
	f.Add([]byte("{\\objdata 0105000002000000080000005061636b61676500}"))
	f.Add([]byte("\\objdata {\\*\\x}ab\\par cd}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := rtfHex(bytes.NewReader(data), 1<<20)
		if err == nil && len(b) > len(data)/2+1 {
			t.Fatalf("%d bytes from %d hex characters at most", len(b), len(data))
		}
		ole1Payload(b)
	})
}

type cfbSpec struct {
	name               string
	typ                byte // 1 storage, 2 stream (the root is added first)
	data               []byte
	left, right, child uint32
}

// makeCFBTree builds a version 3 compound file whose directory is given
// entry by entry after the root (root child = entry 1); streams are padded
// past the mini stream cutoff.
func makeCFBTree(t testing.TB, specs ...cfbSpec) []byte {
	t.Helper()
	le := binary.LittleEndian
	const none = 0xffffffff
	dirSectors := (len(specs) + 1 + 3) / 4
	next := uint32(1 + dirSectors)
	starts := make([]uint32, len(specs))
	var data []byte
	fat := make([]uint32, 128)
	for i := range fat {
		fat[i] = none
	}
	fat[0] = 0xfffffffd
	for i := range dirSectors {
		fat[1+i] = uint32(2 + i)
	}
	fat[dirSectors] = 0xfffffffe
	for i, s := range specs {
		if s.typ != 2 {
			continue
		}
		d := append([]byte(nil), s.data...)
		d = append(d, make([]byte, max(0, 4096-len(d)))...)
		d = append(d, make([]byte, (512-len(d)%512)%512)...)
		starts[i] = next
		n := uint32(len(d) / 512)
		for k := range n {
			fat[next+k] = next + k + 1
		}
		fat[next+n-1] = 0xfffffffe
		next += n
		data = append(data, d...)
		specs[i].data = s.data
	}
	if next > 128 {
		t.Fatal("makeCFBTree: too much data for one FAT sector")
	}
	hdr := make([]byte, 512)
	copy(hdr, oleHeader)
	le.PutUint16(hdr[0x18:], 0x3e)
	le.PutUint16(hdr[0x1a:], 3)
	le.PutUint16(hdr[0x1c:], 0xfffe)
	le.PutUint16(hdr[0x1e:], 9)
	le.PutUint16(hdr[0x20:], 6)
	le.PutUint32(hdr[0x2c:], 1)
	le.PutUint32(hdr[0x30:], 1)
	le.PutUint32(hdr[0x38:], 4096)
	le.PutUint32(hdr[0x3c:], 0xfffffffe)
	le.PutUint32(hdr[0x44:], 0xfffffffe)
	for i := range 109 {
		le.PutUint32(hdr[76+4*i:], none)
	}
	le.PutUint32(hdr[76:], 0)
	fatb := make([]byte, 512)
	for i, v := range fat {
		le.PutUint32(fatb[4*i:], v)
	}
	dir := make([]byte, dirSectors*512)
	entry := func(i int, name string, typ byte, left, right, child, start uint32, size uint64) {
		e := dir[128*i:]
		u := utf16.Encode([]rune(name))
		for j, v := range u {
			le.PutUint16(e[2*j:], v)
		}
		le.PutUint16(e[0x40:], uint16(2*len(u)+2))
		e[0x42], e[0x43] = typ, 1
		le.PutUint32(e[0x44:], left)
		le.PutUint32(e[0x48:], right)
		le.PutUint32(e[0x4c:], child)
		le.PutUint32(e[0x74:], start)
		le.PutUint64(e[0x78:], size)
	}
	entry(0, "Root Entry", 5, none, none, 1, 0xfffffffe, 0)
	for i, s := range specs {
		start, size := uint32(0xfffffffe), uint64(0)
		if s.typ == 2 {
			start, size = starts[i], uint64(max(len(s.data), 4096))
		}
		entry(i+1, s.name, s.typ, s.left, s.right, s.child, start, size)
	}
	return append(append(append(hdr, fatb...), dir...), data...)
}

func utf16le(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return append(b, 0, 0)
}

func TestOutlookMsgAttachments(t *testing.T) {
	const none = 0xffffffff
	msg := makeCFBTree(t,
		cfbSpec{name: "__substg1.0_0037001F", typ: 2, data: utf16le("hello"), left: none, right: 2, child: none},
		cfbSpec{name: "__attach_version1.0_#00000000", typ: 1, left: none, right: none, child: 3},
		cfbSpec{name: "__substg1.0_37010102", typ: 2, data: tinyPE(), left: 4, right: none, child: none},
		cfbSpec{name: "__substg1.0_3707001F", typ: 2, data: utf16le("invoice.pdf.exe"), left: none, right: none, child: none},
	)
	res, fs := inspect(t, Config{}, att{name: "fwd.msg", data: msg})
	requireFinding(t, fs, KindBannedType, "fwd.msg/invoice.pdf.exe (pe)")
	assert.Equal(t, filter.Reject, res.Action)

	clean := makeCFBTree(t,
		cfbSpec{name: "__attach_version1.0_#00000000", typ: 1, left: none, right: none, child: 2},
		cfbSpec{name: "__substg1.0_37010102", typ: 2, data: []byte("%PDF-1.4\n"), left: 3, right: none, child: none},
		cfbSpec{name: "__substg1.0_3707001E", typ: 2, data: []byte("report.pdf\x00"), left: none, right: none, child: none},
	)
	res, _ = inspect(t, Config{}, att{name: "fwd.msg", data: clean})
	assert.Equal(t, filter.Accept, res.Action, "%v", res.Symbols)

	// A sibling tree that loops ends.
	loop := makeCFBTree(t,
		cfbSpec{name: "__attach_version1.0_#00000000", typ: 1, left: none, right: none, child: 2},
		cfbSpec{name: "__substg1.0_3707001E", typ: 2, data: []byte("a.txt\x00"), left: 3, right: none, child: none},
		cfbSpec{name: "__substg1.0_3704001E", typ: 2, data: []byte("a.vbs\x00"), left: 2, right: 2, child: none},
	)
	res, fs = inspect(t, Config{}, att{name: "loop.msg", data: loop})
	requireFinding(t, fs, KindBannedType, ".vbs")
	assert.Equal(t, filter.Reject, res.Action)
}
