package archive

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/ascii85"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pdfDoc builds a PDF of the objects given (dictionaries, with a stream
// when data is set), numbered from 1.
type pdfObj struct {
	dict string
	data []byte
}

func pdfDoc(objs ...pdfObj) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	for i, o := range objs {
		fmt.Fprintf(&b, "%d 0 obj\n%s\n", i+1, o.dict)
		if o.data != nil {
			b.WriteString("stream\r\n")
			b.Write(o.data)
			b.WriteString("\nendstream\n")
		}
		b.WriteString("endobj\n")
	}
	b.WriteString("trailer\n<< /Root 1 0 R >>\n%%EOF\n")
	return b.Bytes()
}

func zlibBytes(b []byte) []byte {
	var out bytes.Buffer
	zw := zlib.NewWriter(&out)
	zw.Write(b) //nolint:errcheck // bytes.Buffer
	zw.Close()  //nolint:errcheck // bytes.Buffer
	return out.Bytes()
}

func pdfFindings(t *testing.T, cfg Config, doc []byte) []Finding {
	t.Helper()
	fs, err := New(cfg).Inspect(context.Background(), newMsg(message(att{name: "statement.pdf", ctype: "application/pdf", data: doc})))
	require.NoError(t, err)
	return fs
}

func TestPDFEmbeddedFiles(t *testing.T) {
	exe := tinyPE()
	catalog := pdfObj{dict: "<< /Type /Catalog /Names << /EmbeddedFiles << /Names [(setup.exe) 2 0 R] >> >> >>"}
	cases := []struct {
		name string
		obj  pdfObj
	}{
		{"flate", pdfObj{dict: fmt.Sprintf("<< /Type /EmbeddedFile /Filter /FlateDecode /Length %d >>", len(zlibBytes(exe))), data: zlibBytes(exe)}},
		{"no filter, lying length", pdfObj{dict: "<< /Type /EmbeddedFile /Length 3 >>", data: exe}},
		{"escaped names, filter chain", pdfObj{dict: "<< /Type /Embedded#46ile /Filter [/AHx /Fl] >>",
			data: []byte(strings.ToUpper(hex.EncodeToString(zlibBytes(exe))) + ">")}},
		{"ascii85", pdfObj{dict: "<< /Type /EmbeddedFile /Filter /ASCII85Decode >>", data: append(ascii85Bytes(exe), "~>"...)}},
		{"zip in the PDF", pdfObj{dict: "<< /Type /EmbeddedFile /Filter /FlateDecode >>", data: zlibBytes(makeZip(t, zfile{name: "run.exe", data: exe}))}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := pdfFindings(t, Config{}, pdfDoc(catalog, c.obj))
			requireFinding(t, fs, KindBannedType, "embedded file 1")
		})
	}
}

func ascii85Bytes(b []byte) []byte {
	var out bytes.Buffer
	w := ascii85.NewEncoder(&out)
	w.Write(b) //nolint:errcheck // bytes.Buffer
	w.Close()  //nolint:errcheck // bytes.Buffer
	return out.Bytes()
}

func TestPDFUnreadable(t *testing.T) {
	exe := tinyPE()
	t.Run("unknown filter", func(t *testing.T) {
		fs := pdfFindings(t, Config{}, pdfDoc(pdfObj{dict: "<< /Type /EmbeddedFile /Filter /LZWDecode >>", data: exe}))
		requireFinding(t, fs, KindUninspectable, "LZWDecode")
	})
	t.Run("encrypted", func(t *testing.T) {
		doc := pdfDoc(pdfObj{dict: "<< /Type /EmbeddedFile /Filter /FlateDecode >>", data: []byte("\x8a\x11 ciphertext")},
			pdfObj{dict: "<< /Filter /Standard /V 2 /R 3 >>"})
		doc = bytes.Replace(doc, []byte("<< /Root 1 0 R >>"), []byte("<< /Root 1 0 R /Encrypt 2 0 R >>"), 1)
		fs := pdfFindings(t, Config{}, doc)
		requireFinding(t, fs, KindEncrypted, "embedded file 1")
	})
}

func TestPDFActive(t *testing.T) {
	for name, doc := range map[string][]byte{
		"open action":   pdfDoc(pdfObj{dict: "<< /Type /Catalog /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>"}),
		"escaped name":  pdfDoc(pdfObj{dict: "<< /Type /Catalog /OpenAction << /S /J#61vaScript /J#53 (x) >> >>"}),
		"object stream": pdfDoc(pdfObj{dict: "<< /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode >>", data: zlibBytes([]byte("3 0 << /S /JavaScript /JS (this.exportDataObject()) >>"))}),
	} {
		t.Run(name, func(t *testing.T) {
			requireFinding(t, pdfFindings(t, Config{}, doc), KindPDFActive, "javascript")
		})
	}
	t.Run("launch", func(t *testing.T) {
		doc := pdfDoc(pdfObj{dict: "<< /Type /Catalog /OpenAction << /S /Launch /F (cmd.exe) >> >>"})
		requireFinding(t, pdfFindings(t, Config{}, doc), KindPDFActive, "launch")
	})
	t.Run("an e-invoice's XML is no finding", func(t *testing.T) {
		doc := pdfDoc(pdfObj{dict: "<< /Type /EmbeddedFile /Subtype /text#2Fxml /Filter /FlateDecode >>",
			data: zlibBytes([]byte(`<?xml version="1.0"?><rsm:CrossIndustryInvoice></rsm:CrossIndustryInvoice>`))})
		assert.Empty(t, pdfFindings(t, Config{}, doc))
	})
	t.Run("a plain document has none", func(t *testing.T) {
		doc := pdfDoc(pdfObj{dict: "<< /Type /Catalog /Pages 2 0 R >>"}, pdfObj{dict: "<< /Length 44 /Filter /FlateDecode >>",
			data: zlibBytes([]byte("BT /F1 12 Tf 72 712 Td (Statement) Tj ET"))})
		assert.Empty(t, pdfFindings(t, Config{}, doc))
	})
}

// TestPDFLimits: each limit the PDF walk counts against, exceeded.
func TestPDFLimits(t *testing.T) {
	t.Run("entries", func(t *testing.T) {
		var objs []pdfObj
		for range 5 {
			objs = append(objs, pdfObj{dict: "<< /Type /EmbeddedFile >>", data: []byte("hello")})
		}
		requireFinding(t, pdfFindings(t, Config{Limits: Limits{MaxEntries: 3}}, pdfDoc(objs...)), KindBomb, "entries")
	})
	t.Run("ratio", func(t *testing.T) {
		bomb := zlibBytes(make([]byte, 8<<20))
		doc := pdfDoc(pdfObj{dict: "<< /Type /EmbeddedFile /Filter /FlateDecode >>", data: bomb})
		requireFinding(t, pdfFindings(t, Config{}, doc), KindBomb, "ratio")
	})
	t.Run("object stream ratio", func(t *testing.T) {
		bomb := zlibBytes(make([]byte, 8<<20))
		doc := pdfDoc(pdfObj{dict: "<< /Type /ObjStm /Filter /FlateDecode >>", data: bomb})
		requireFinding(t, pdfFindings(t, Config{}, doc), KindBomb, "ratio")
	})
	t.Run("streams", func(t *testing.T) {
		doc := pdfDoc(pdfObj{dict: "<< /Type /Catalog >>", data: bytes.Repeat([]byte("stream "), maxPDFStreams)})
		requireFinding(t, pdfFindings(t, Config{}, doc), KindUninspectable, "streams")
	})
}

// FuzzPDF walks arbitrary PDF-looking bytes: no panic, bounded time.
func FuzzPDF(f *testing.F) {
	f.Add(pdfDoc(pdfObj{dict: "<< /Type /EmbeddedFile /Filter [/AHx /Fl] >>", data: []byte("78 9c 4b 4c 4a 06 00 02 4d 01 27>")}))
	f.Add(pdfDoc(pdfObj{dict: "<< /Type /ObjStm /Filter /A85 >>", data: []byte("87cURD]i,\"Ebo80~>")}))
	f.Add([]byte("%PDF-1.4\nstream\nendstream obj /Type /EmbeddedFile stream\r\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if len(doc) > 16<<10 {
			return
		}
		in := New(Config{})
		raw := message(att{name: "a.pdf", ctype: "application/pdf", data: append([]byte("%PDF-1.7\n"), doc...)})
		if _, err := in.Inspect(context.Background(), newMsg(raw)); err != nil {
			t.Fatal(err)
		}
	})
}
