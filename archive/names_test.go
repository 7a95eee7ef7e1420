package archive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/portcullis-mail/portcullis/filter"
)

func TestNameReadings(t *testing.T) {
	for _, tt := range []struct {
		name  string
		want  []string
		odd   bool
		clsid bool
	}{
		{name: "a.bat::$DATA", want: []string{"a.bat"}, odd: true},
		{name: "a.txt:evil.bat", want: []string{"a.txt", "evil.bat"}, odd: true},
		{name: "dir/a.txt:evil.bat:$DATA", want: []string{"dir/a.txt", "dir/evil.bat"}, odd: true},
		{name: "run.bat\x00.txt", want: []string{"run.bat"}, odd: true},
		{name: "readme.txt.{3050F4D8-98B5-11CF-BB82-00AA00BDCE0B}", want: []string{"readme.txt"}, clsid: true},
		{name: "report.pdf", want: []string{"report.pdf"}},
	} {
		got, odd, clsid := nameReadings(tt.name)
		for _, w := range tt.want {
			assert.Contains(t, got, w, tt.name)
		}
		assert.Equal(t, tt.odd, len(odd) > 0, tt.name)
		assert.Equal(t, tt.clsid, clsid, tt.name)
	}
}

// tarBlock is one raw tar header block.
func tarBlock(name string, typ byte, size int, ustar bool) []byte {
	h := make([]byte, 512)
	copy(h, name)
	copy(h[100:], "0000644\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", size))
	copy(h[136:], "00000000000\x00")
	h[156] = typ
	if ustar {
		copy(h[257:], "ustar\x0000")
	}
	copy(h[148:], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	return h
}

func tarData(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }

func TestNames(t *testing.T) {
	pe := tinyPE()
	zipWith := func(e rawEntry) []byte { return rawZip(0, e) }
	sizeMismatch := zipWith(entry("a.txt", []byte("hello")))
	binary.LittleEndian.PutUint32(sizeMismatch[22:], 4) // the local header's size
	gnuMismatch := append(tarBlock("././@LongLink", 'L', 8, false), tarData([]byte("run.bat\x00"))...)
	gnuMismatch = append(gnuMismatch, tarBlock("readme.txt", '0', 5, false)...)
	gnuMismatch = append(append(gnuMismatch, tarData([]byte("hello"))...), make([]byte, 1024)...)
	paxMismatch := append(tarBlock("PaxHeaders/x", 'x', 15, true), tarData([]byte("15 path=run.js\n"))...)
	paxMismatch = append(paxMismatch, tarBlock("notes.txt", '0', 5, true)...)
	paxMismatch = append(append(paxMismatch, tarData([]byte("hello"))...), make([]byte, 1024)...)
	tarLink := append(tarBlock("start.bat", '2', 0, true), make([]byte, 1024)...)
	copy(tarLink[157:], "/bin/sh")
	fixTarSum(tarLink)

	tests := []struct {
		name   string
		a      att
		action filter.Action
		kinds  []Kind
	}{
		{"NTFS stream", att{name: "a.bat::$DATA", data: []byte("x")}, filter.Reject, []Kind{KindBannedType, KindBadName}},
		{"NTFS alternate stream", att{name: "a.txt:evil.bat", data: []byte("x")}, filter.Reject, []Kind{KindBannedType, KindBadName}},
		{"CLSID extension", att{name: "readme.txt.{3050F4D8-98B5-11CF-BB82-00AA00BDCE0B}", data: []byte("x")}, filter.Reject, []Kind{KindBannedType}},
		{"unknown charset in an encoded word", att{header: "Content-Disposition: attachment; filename=\"=?x-unknown?Q?evil.exe?=\"\r\n", data: []byte("x")}, filter.Reject, []Kind{KindBannedType}},
		{"language tag in an encoded word", att{header: "Content-Disposition: attachment; filename=\"=?UTF-8*en?B?ZXZpbC5zY3I=?=\"\r\n", data: []byte("x")}, filter.Reject, []Kind{KindBannedType}},
		{"single-quoted name", att{header: "Content-Disposition: attachment; filename='evil.vbs'\r\n", data: []byte("x")}, filter.Reject, []Kind{KindBannedType}},
		{"NUL in a member name", att{name: "a.zip", data: zipWith(entry("run.bat\x00.txt", []byte("x")))}, filter.Reject, []Kind{KindBannedType, KindBadName}},
		{"empty member name", att{name: "a.zip", data: zipWith(entry("", pe))}, filter.Reject, []Kind{KindBannedType, KindBadName}},
		{"zip symlink with a banned name", att{name: "a.zip", data: zipWith(rawEntry{name: "invoice.pdf.lnk", data: []byte("/etc/passwd"), creator: 3, external: 0o120777 << 16, offset: -1})}, filter.Reject, []Kind{KindLink, KindBannedType}},
		{"tar symlink with a banned name", att{name: "a.tar", data: tarLink}, filter.Reject, []Kind{KindLink, KindBannedType}},
		{"zip local size differs", att{name: "a.zip", data: sizeMismatch}, filter.Quarantine, []Kind{KindZipSizeMismatch}},
		{"tar GNU long name differs", att{name: "a.tar", data: gnuMismatch}, filter.Reject, []Kind{KindTarNameMismatch, KindBannedType}},
		{"tar PAX path differs", att{name: "a.tar", data: paxMismatch}, filter.Reject, []Kind{KindTarNameMismatch, KindBannedType}},
		{"svg is scored", att{name: "logo.svg", data: []byte("<svg xmlns='http://www.w3.org/2000/svg'/>")}, filter.Accept, []Kind{KindRiskyName}},
	}
	for _, ext := range []string{"iso", "img", "vhdx", "one", "appx", "msix", "library-ms", "url", "xll", "wsc", "sct", "scf",
		"application", "gadget", "msp", "psm1", "vb", "inf", "settingcontent-ms", "diagcab", "hlp", "mht", "dll", "xlam", "ppam"} {
		tests = append(tests, struct {
			name   string
			a      att
			action filter.Action
			kinds  []Kind
		}{"banned ." + ext, att{name: "file." + ext, data: []byte("x")}, filter.Reject, []Kind{KindBannedType}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, fs := inspect(t, Config{}, tt.a)
			for _, k := range tt.kinds {
				requireFinding(t, fs, k, "")
			}
			assert.Equal(t, tt.action, res.Action, "%v", res.Symbols)
		})
	}
}

func fixTarSum(b []byte) {
	h := b[:512]
	copy(h[148:], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
}

func TestOrdinaryNamesAreNotOdd(t *testing.T) {
	for _, name := range []string{"report.pdf", "Q3 figures.xlsx", "photo 2024-01-01 12:30.jpg", "C:report.docx", "notes (1).txt"} {
		_, fs := inspect(t, Config{}, att{name: name, data: []byte("x")})
		for _, f := range fs {
			assert.NotEqual(t, KindBannedType, f.Kind, "%s: %v", name, fs)
		}
	}
	var z bytes.Buffer
	z.Write(makeZip(t, zfile{name: "dir/a.txt", data: []byte("hello")}, zfile{name: "b.pdf", data: []byte("%PDF-1.4")}))
	res, _ := inspect(t, Config{}, att{name: "a.zip", data: z.Bytes()})
	assert.Empty(t, res.Symbols)
}

func TestDefaultBannedExtensions(t *testing.T) {
	// The list issue 12 asked for: what Windows executes or mounts today.
	issue := []string{"iso", "img", "vhd", "vhdx", "one", "appx", "appxbundle", "msix", "msixbundle", "library-ms", "url",
		"xll", "wsc", "sct", "scf", "chm", "application", "gadget", "msp", "mst", "psm1", "psd1", "vb", "ins", "isp",
		"inf", "settingcontent-ms", "diagcab", "hlp", "mht", "mhtml", "dll", "sys", "ocx", "drv", "xlam", "ppam",
		"exe", "bat", "cmd", "com", "pif", "scr", "vbs", "vbe", "js", "jse", "wsf", "wsh", "hta", "ps1", "msi", "lnk", "jar", "cpl", "reg"}
	got := DefaultBannedExtensions()
	for _, ext := range issue {
		assert.Contains(t, got, ext)
	}
	seen := map[string]bool{}
	for _, ext := range got {
		assert.False(t, seen[ext], "duplicate %s", ext)
		seen[ext] = true
	}
	got[0] = "changed"
	assert.NotEqual(t, "changed", DefaultBannedExtensions()[0], "the default is a fresh copy")
	assert.Contains(t, DefaultScoredExtensions(), "svg")
}
