package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

var (
	pdf  = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
	png  = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 64)...)
	ics  = []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:Meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
	text = []byte(strings.Repeat("The quick brown fox jumps over the lazy dog.\n", 200))
)

func ooxml(t testing.TB, main string, extra ...zfile) []byte {
	files := []zfile{
		{name: "[Content_Types].xml", data: []byte(`<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`)},
		{name: "_rels/.rels", data: []byte(`<?xml version="1.0"?><Relationships/>`)},
		{name: main, data: []byte(`<?xml version="1.0"?><document>hello</document>`)},
	}
	return makeZip(t, append(files, extra...)...)
}

func odf(t testing.TB) []byte {
	return makeZip(t,
		zfile{name: "mimetype", data: []byte("application/vnd.oasis.opendocument.text"), method: 0xffff},
		zfile{name: "META-INF/manifest.xml", data: []byte(`<manifest/>`)},
		zfile{name: "content.xml", data: []byte(`<office:document-content/>`)})
}

// Mail that must pass: no findings, nothing demanded.
func TestBenign(t *testing.T) {
	cases := []att{
		{name: "docs.zip", data: makeZip(t, zfile{name: "a.txt", data: text}, zfile{name: "b.pdf", data: pdf}, zfile{name: "dir/", data: nil})},
		{name: "logs.tar.gz", data: makeTarGz(t, zfile{name: "a.log", data: text}, zfile{name: "b.txt", data: text})},
		{name: "report.docx", data: ooxml(t, "word/document.xml")},
		{name: "sheet.xlsx", data: ooxml(t, "xl/workbook.xml")},
		{name: "slides.pptx", data: ooxml(t, "ppt/presentation.xml")},
		{name: "letter.odt", data: odf(t)},
		{name: "invoice.pdf", ctype: "application/pdf", data: pdf},
		{name: "photo.png", ctype: "image/png", data: png},
		{name: "invite.ics", ctype: "text/calendar", data: ics},
		{name: "noms.zip", data: makeZip(t, zfile{name: "résumé.txt", data: text}, zfile{name: "报告/季度.txt", data: text}, zfile{name: "Ünïcödé.pdf", data: pdf})},
		{name: "empty.zip", data: makeZip(t)},
		{name: "docs-in-zip.zip", data: makeZip(t, zfile{name: "report.docx", data: ooxml(t, "word/document.xml")})},
		{name: "notes.txt.gz", data: gz(t, text)},
		{name: "mz-text.txt", data: []byte("MZ Holdings annual report, page 1")},
		{name: "zero.bin", data: nil},
	}
	for _, a := range cases {
		t.Run(a.name, func(t *testing.T) {
			res, fs := inspect(t, Config{}, a)
			if len(fs) != 0 || res.Action != filter.Accept {
				t.Fatalf("findings %v, action %v", fs, res.Action)
			}
		})
	}
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	return makeTarGzRaw(b)
}

func TestDocuments(t *testing.T) {
	t.Run("macro", func(t *testing.T) {
		res, fs := inspect(t, Config{}, att{name: "report.docm", data: ooxml(t, "word/document.xml", zfile{name: "word/vbaProject.bin", data: []byte("vba")})})
		requireFinding(t, fs, KindMacro, "report.docm (word/vbaProject.bin)")
		if res.Action != filter.Accept || res.Symbols[0].Score != DefaultScores()[KindMacro] {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("OLE with a VBA project and a packaged exe", func(t *testing.T) {
		ole := append([]byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}, make([]byte, 600)...)
		ole = append(ole, vbaMarker...)
		ole = append(ole, []byte("\x02\x00package header")...)
		ole = append(ole, tinyPE()...)
		res, fs := inspect(t, Config{}, att{name: "old.doc", data: ole})
		requireFinding(t, fs, KindMacro, "old.doc (vba)")
		requireFinding(t, fs, KindEmbeddedExe, "old.doc (pe)")
		if res.Action != filter.Quarantine {
			t.Fatal(res.Action)
		}
		// The same object inside a docx.
		_, fs = inspect(t, Config{}, att{name: "r.docx", data: ooxml(t, "word/document.xml", zfile{name: "word/embeddings/oleObject1.bin", data: ole})})
		requireFinding(t, fs, KindEmbeddedExe, "r.docx/word/embeddings/oleObject1.bin (pe)")
	})
	t.Run("exe stored in a docx", func(t *testing.T) {
		_, fs := inspect(t, Config{}, att{name: "r.docx", data: ooxml(t, "word/document.xml", zfile{name: "word/media/x.exe", data: tinyPE()})})
		requireFinding(t, fs, KindBannedType, "r.docx/word/media/x.exe (pe)")
	})
	t.Run("jar", func(t *testing.T) {
		_, fs := inspect(t, Config{}, att{name: "lib.zip", data: makeZip(t, zfile{name: "META-INF/MANIFEST.MF", data: []byte("Main-Class: X\n")}, zfile{name: "X.class", data: []byte("\xca\xfe\xba\xbe\x00\x00\x00\x34")})})
		if len(fs) != 0 {
			t.Fatalf("a jar named .zip is not banned by default: %v", fs)
		}
		_, fs = inspect(t, Config{BannedTypes: []string{"jar"}}, att{name: "lib.zip", data: makeZip(t, zfile{name: "META-INF/MANIFEST.MF", data: []byte("Main-Class: X\n")})})
		requireFinding(t, fs, KindBannedType, "lib.zip (jar)")
	})
}

func TestAllowDenyLists(t *testing.T) {
	pe := tinyPE()
	// Allowing a type and an extension lifts both bans.
	_, fs := inspect(t, Config{AllowedTypes: []string{"PE"}, AllowedExtensions: []string{".EXE"}}, att{name: "tool.exe", data: pe})
	if hasFinding(fs, KindBannedType, "") {
		t.Fatalf("allowed: %v", fs)
	}
	// Allowing the extension alone: the content is still banned.
	_, fs = inspect(t, Config{AllowedExtensions: []string{"exe"}}, att{name: "tool.exe", data: pe})
	requireFinding(t, fs, KindBannedType, "tool.exe (pe)")
	// An installer package under a document's name.
	res, fs := inspect(t, Config{}, att{name: "invoice.doc", data: msiHead()})
	requireFinding(t, fs, KindTypeMismatch, "invoice.doc (.doc is msi)")
	if res.Action != filter.Quarantine {
		t.Fatal(res.Action)
	}
	// A custom deny list.
	_, fs = inspect(t, Config{BannedExtensions: []string{"docx"}}, att{name: "r.docx", data: ooxml(t, "word/document.xml")})
	requireFinding(t, fs, KindBannedType, "r.docx (.docx)")
	// Actions and scores per kind.
	res, _ = inspect(t, Config{Actions: map[Kind]filter.Action{KindBannedType: filter.Quarantine}, Scores: map[Kind]float64{KindBannedType: 2}}, att{name: "x.exe", data: pe})
	if res.Action != filter.Quarantine || res.Symbols[0].Score != 2 {
		t.Fatalf("%+v", res)
	}
}

// Every limit, exceeded.
func TestLimits(t *testing.T) {
	many := makeZip(t, zfile{name: "a.txt", data: text}, zfile{name: "b.txt", data: text}, zfile{name: "c.txt", data: text})
	big := bytes.Repeat([]byte("abcdefgh"), 1<<17) // 1 MiB
	cases := []struct {
		name string
		lim  Limits
		a    att
		want string
	}{
		{"entries", Limits{MaxEntries: 2}, att{name: "m.zip", data: many}, "entries > 2"},
		{"total-bytes", Limits{MaxTotalBytes: 2 * int64(len(text))}, att{name: "m.zip", data: many}, "total-bytes > "},
		{"entry-bytes declared", Limits{MaxEntryBytes: 1000}, att{name: "m.zip", data: many}, "entry-bytes > 1000"},
		{"entry-bytes streamed", Limits{MaxEntryBytes: 1000}, att{name: "t.gz", data: gz(t, text)}, "entry-bytes > 1000"},
		{"ratio", Limits{MaxRatio: 2, RatioFloor: 1000}, att{name: "t.gz", data: gz(t, text)}, "ratio > 2"},
		{"depth", Limits{MaxDepth: 1}, att{name: "t.tar.gz", data: makeTarGz(t, zfile{name: "a", data: text})}, "depth > 1"},
		{"time", Limits{MaxTime: time.Nanosecond}, att{name: "m.zip", data: many}, "time > 1ns"},
		{"spill to a file", Limits{MemoryBytes: 1024}, att{name: "s.zip", data: makeZip(t, zfile{name: "big.bin", data: big, method: 0xffff}, zfile{name: "x.exe", data: tinyPE()})}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, fs := inspect(t, Config{Limits: c.lim}, c.a)
			if c.want == "" {
				requireFinding(t, fs, KindBannedType, "s.zip/x.exe (pe)")
				return
			}
			requireFinding(t, fs, KindBomb, c.want)
			if res.Action != filter.Reject {
				t.Fatal(res.Action)
			}
		})
	}
}

func TestLeaves(t *testing.T) {
	msg := newMsg(message(
		att{name: "a.zip", data: makeZip(t, zfile{name: "dir/x.txt", data: text}, zfile{name: "in.zip", data: makeZip(t, zfile{name: "y.pdf", data: pdf})})},
		att{name: "r.docx", data: ooxml(t, "word/document.xml")},
		att{name: "enc.7z", data: readFixture(t, "encrypted-headers.7z")},
		att{data: png, ctype: "image/png"},
	))
	var got []string
	err := New(Config{}).Leaves(context.Background(), msg, func(l Leaf, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		got = append(got, l.Path+" "+l.Type+" "+itoa(l.Depth)+" "+itoa(int(l.Size))+" "+itoa(len(b)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a.zip/dir/x.txt text 1 9000 9000",
		"a.zip/in.zip/y.pdf pdf 2 " + itoa(len(pdf)) + " " + itoa(len(pdf)),
		"r.docx ooxml 0 " + itoa(len(ooxml(t, "word/document.xml"))) + " " + itoa(len(ooxml(t, "word/document.xml"))),
		"enc.7z 7z 0 238 238",
		"part 5 png 0 " + itoa(len(png)) + " " + itoa(len(png)),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("leaves:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// An error from fn stops the walk and comes back as is.
	stop := errors.New("engine down")
	n := 0
	err = New(Config{}).Leaves(context.Background(), msg, func(l Leaf, r io.Reader) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("err %v after %d leaves", err, n)
	}
	// Also when an archive library carries it up (tar, 7z wrap errors).
	for _, a := range []att{
		{name: "a.tgz", data: makeTarGz(t, zfile{name: "a", data: text}, zfile{name: "b", data: text})},
		{name: "clam.7z", data: clamFile(t, "clam.7z")},
	} {
		n = 0
		err = New(Config{}).Leaves(context.Background(), newMsg(message(a, a)), func(l Leaf, r io.Reader) error { n++; return stop })
		if err != stop || n != 1 {
			t.Fatalf("%s: err %v after %d leaves", a.name, err, n)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// A cancelled context is an error, never a clean result.
func TestContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := New(Config{}).Check(ctx, newMsg(message(att{name: "a.zip", data: makeZip(t, zfile{name: "a.txt", data: text})})))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

// msiHead is an OLE header whose first directory sector (sector 0, at
// 512) holds a root entry of the Windows Installer class.
func msiHead() []byte {
	h := make([]byte, 1024)
	copy(h, oleHeader)
	h[0x1e] = 9
	copy(h[512+0x50:], msiCLSIDs[0])
	return h
}

func TestDetectType(t *testing.T) {
	cases := []struct {
		head []byte
		name string
		want string
	}{
		{tinyPE(), "x.txt", TypePE},
		{[]byte("MZ but no header"), "x.exe", TypeText},
		{[]byte("\x7fELF\x02\x01\x01"), "", TypeELF},
		{[]byte("\xcf\xfa\xed\xfe\x07\x00\x00\x01"), "", TypeMachO},
		{[]byte("\xca\xfe\xba\xbe\x00\x00\x00\x02"), "", TypeMachO},
		{[]byte("\xca\xfe\xba\xbe\x00\x00\x00\x34"), "", TypeClass},
		{lnkHeader, "", TypeLNK},
		{msiHead(), "x.doc", TypeMSI},
		{oleHeader, "x.doc", TypeOLE},
		{[]byte("#!/bin/sh\necho hi\n"), "notes.txt", TypeScript},
		{[]byte("echo off\r\n"), "RUN.BAT", TypeScript},
		{[]byte("<html><head><HTA:APPLICATION id=x></head></html>"), "x.htm", TypeHTA},
		{[]byte("<!DOCTYPE html><html></html>"), "", TypeHTML},
		{pdf, "", TypePDF},
		{png, "", "png"},
		{[]byte("\x60\xea\x00\x00"), "", TypeARJ},
		{[]byte("MSCF\x00\x00\x00\x00"), "", TypeCAB},
		{[]byte("\x1f\x8b\x08"), "", TypeGzip},
		{[]byte("BZh91AY"), "", TypeBzip2},
		{[]byte("\xfd7zXZ\x00"), "", TypeXz},
		{[]byte("\x28\xb5\x2f\xfd"), "", TypeZstd},
		{[]byte("Rar!\x1a\x07\x01\x00"), "", TypeRar},
		{[]byte("\x00\x01\x02\x03\xff"), "", TypeBinary},
		{[]byte("plain words"), "x.js", TypeScript},
		{[]byte("plain words"), "x.txt", TypeText},
	}
	for _, c := range cases {
		if got := DetectType(c.head, c.name); got != c.want {
			t.Errorf("DetectType(%q, %q) = %q, want %q", c.head[:min(len(c.head), 12)], c.name, got, c.want)
		}
	}
}

// A docx whose first entry is not [Content_Types].xml is still a document
// once the directory is read: inside a zip it is not a nested archive.
func TestDocumentInZipNotNested(t *testing.T) {
	docx := makeZip(t,
		zfile{name: "_rels/.rels", data: []byte(`<Relationships/>`)},
		zfile{name: "word/document.xml", data: []byte(`<document/>`)},
		zfile{name: "[Content_Types].xml", data: []byte(`<Types/>`)})
	if DetectType(docx, "") != TypeZip {
		t.Fatal("the head alone should not tell")
	}
	res, fs := inspect(t, Config{}, att{name: "a.zip", data: makeZip(t, zfile{name: "report.docx", data: docx})})
	if len(fs) != 0 || res.Action != filter.Accept {
		t.Fatalf("%v", fs)
	}
}

type countingMetrics struct {
	mu     sync.Mutex
	counts map[string]float64
}

func (c *countingMetrics) Add(name string, d float64, labels ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[name+"|"+strings.Join(labels, ",")] += d
}
func (c *countingMetrics) Set(string, float64, ...string) {}
func (c *countingMetrics) Observe(name string, v float64, labels ...string) {
	c.Add(name+"#observations", 1, labels...)
}

// Findings are counted by kind and every inspection is timed.
func TestMetrics(t *testing.T) {
	m := &countingMetrics{counts: map[string]float64{}}
	in := New(Config{Metrics: m})
	msg := newMsg(message(att{name: "a.zip", data: makeZip(t, zfile{name: "x.exe", data: tinyPE()})}))
	if _, err := in.Check(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if m.counts["portcullis_archive_findings_total|kind,banned-type"] != 1 ||
		m.counts["portcullis_archive_seconds#observations|mode,check"] != 1 {
		t.Fatalf("%v", m.counts)
	}
}
