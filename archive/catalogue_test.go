package archive

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// The catalogue: every class of hostile input issue 12 names, built here
// at test time in several variants, each with the least action the
// default configuration must take. Nothing of it is committed as a file.
// It runs in the ordinary `go test` and asserts, for the inspector in a
// pipeline with filter.DefaultPolicy:
//
//   - no hostile case is accepted without a symbol, and each reaches at
//     least its expected action;
//   - benign mail (the real-mail corpus, ordinary documents, archives and
//     images) is accepted;
//   - each case takes at most 1 s, and the heap stays under 64 MiB.

// scored is the expectation "accepted or worse, but never without a symbol".
const scored = filter.Accept

type catCase struct {
	class, name string
	raw         []byte
	want        filter.Action
}

func b64lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	out.WriteString(s)
	return out.String()
}

// mail builds a message from a header block and a body, LF turned CRLF.
func mail(header, body string) []byte {
	return lines("From: a@example.org\nTo: b@example.org\nSubject: c\nDate: Tue, 1 Dec 2026 08:00:00 +0000\nMessage-ID: <c@example.org>\nMIME-Version: 1.0\n" + header + "\n" + body)
}

// multi builds a multipart/mixed message with a text part and one more
// part given by its header lines and body.
func multi(partHeader, body string) []byte {
	return mail("Content-Type: multipart/mixed; boundary=b\n",
		"--b\nContent-Type: text/plain\n\nhello\n--b\n"+partHeader+"\n"+body+"\n--b--\n")
}

func catalogue(t testing.TB) []catCase {
	pe := tinyPE()
	pe64 := b64lines(pe)
	pdf := []byte("%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n")
	pdf64 := b64lines(pdf)
	var cs []catCase
	add := func(class, name string, raw []byte, want filter.Action) {
		cs = append(cs, catCase{class: class, name: name, raw: raw, want: want})
	}

	// 1. Defects.
	add("defect", "two boundaries, PE behind the second", mail("Content-Type: multipart/mixed; boundary=a; boundary=z\n",
		"--a\nContent-Type: text/plain\n\nhi\n--z\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"+pe64+"\n--z--\n--a--\n"), filter.Reject)
	add("defect", "two boundaries over a pdf", mail("Content-Type: multipart/mixed; boundary=a; boundary=z\n",
		"--z\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"+pdf64+"\n--z--\n"), filter.Quarantine)
	add("defect", "two boundaries over text", mail("Content-Type: multipart/alternative; boundary=a; boundary=z\n",
		"--a\nContent-Type: text/plain\n\nhi\n--a--\n"), scored)
	add("defect", "two Content-Type over a pdf", multi("Content-Type: text/plain\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n", pdf64), filter.Quarantine)
	add("defect", "two Content-Transfer-Encoding, base64 reading a PE", multi("Content-Type: text/plain\nContent-Transfer-Encoding: 7bit\nContent-Transfer-Encoding: base64\n", pe64), filter.Reject)
	add("defect", "two Content-Disposition over a pdf", multi("Content-Type: application/pdf\nContent-Disposition: inline\nContent-Disposition: attachment; filename=a.pdf\nContent-Transfer-Encoding: base64\n", pdf64), filter.Quarantine)
	add("defect", "missing boundary, PE inside", mail("Content-Type: multipart/mixed\n",
		"--g\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"+pe64+"\n--g--\n"), filter.Reject)
	add("defect", "empty boundary over a pdf", mail("Content-Type: multipart/mixed; boundary=\"\"\n",
		"--g\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"+pdf64+"\n--g--\n"), filter.Quarantine)
	add("defect", "no delimiter at all", mail("Content-Type: multipart/mixed; boundary=q\n", "just text\n"), scored)
	add("defect", "unterminated over a pdf", mail("Content-Type: multipart/mixed; boundary=b\n",
		"--b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n"+pdf64+"\n"), filter.Quarantine)
	add("defect", "unterminated over text", mail("Content-Type: multipart/mixed; boundary=b\n", "--b\nContent-Type: text/plain\n\nhi\n"), scored)
	for name, junk := range map[string]string{
		"no colon": "junk line", "space in the name": "Content Type: text/plain", "8-bit name": "C\xf6ntent-Type: text/plain",
		"NUL in the name": "Content-Type\x00: text/plain",
	} {
		add("defect", "header line: "+name+", PE behind it", lines("From: a@example.org\nSubject: x\n"+junk+
			"\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"+pe64+"\n"), filter.Reject)
		add("defect", "header line: "+name+", text", lines("From: a@example.org\nSubject: x\n"+junk+"\nContent-Type: text/plain\n\nhello\n"), scored)
	}
	add("defect", "continuation as the first line, PE", lines(" Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"+pe64+"\n"), filter.Reject)
	add("defect", "bare CR endings, PE", []byte(strings.ReplaceAll(string(multi("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n", pe64)), "\r\n", "\r")), filter.Reject)
	add("defect", "bare CR endings, text", []byte(strings.ReplaceAll(string(mail("Content-Type: text/plain\n", "hello\nthere\n")), "\r\n", "\r")), scored)
	for _, cte := range []string{"base64; x=y", "\"base64\"", "base64 (comment)", "base-64", "x-foo"} {
		add("defect", "transfer encoding "+cte+", PE", multi("Content-Type: application/octet-stream\nContent-Transfer-Encoding: "+cte+"\n", pe64), filter.Reject)
		add("defect", "transfer encoding "+cte+", text", multi("Content-Type: text/plain\nContent-Transfer-Encoding: "+cte+"\n", "aGVsbG8gd29ybGQ="), scored)
	}

	// 2. Content wherever it hides.
	for name, hdr := range map[string]string{
		"typed text/plain": "Content-Type: text/plain\n", "garbage type": "Content-Type: foo\n", "empty type": "Content-Type: \n",
		"no type": "", "typed image/png": "Content-Type: image/png\n",
	} {
		add("sniff", "unnamed PE, "+name, multi(hdr+"Content-Transfer-Encoding: base64\n", pe64), filter.Reject)
		add("sniff", "unnamed MZ stub, "+name, multi(hdr+"Content-Transfer-Encoding: base64\n", b64lines(append([]byte("MZ"), make([]byte, 100)...))), filter.Reject)
	}
	add("sniff", "PE as the whole message body", mail("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n", pe64), filter.Reject)
	z := makeZip(t, zfile{name: "setup.exe", data: pe})
	for name, pre := range prefixes {
		add("sniff", "zip after "+name, multi("Content-Type: application/octet-stream; name=f."+name+"\nContent-Transfer-Encoding: base64\n", b64lines(append(append([]byte(nil), pre...), z...))), filter.Reject)
	}
	add("sniff", "harmless zip after a pdf", multi("Content-Type: application/pdf; name=a.pdf\nContent-Transfer-Encoding: base64\n",
		b64lines(append(append([]byte(nil), pdf...), makeZip(t, zfile{name: "a.txt", data: []byte("x")})...))), filter.Quarantine)
	add("sniff", "7z after a png", multi("Content-Type: image/png; name=a.png\nContent-Transfer-Encoding: base64\n",
		b64lines(append(append([]byte(nil), prefixes["png"]...), clamFile(t, "clam.7z")...))), filter.Reject)
	add("sniff", "OLE Packager object with a .bat", multi("Content-Type: application/msword; name=a.doc\nContent-Transfer-Encoding: base64\n",
		b64lines(makeCFB(t, "\x01Ole10Native", ole10("run.bat", []byte("@echo off\r\n"))))), filter.Reject)
	add("sniff", "OLE Packager object with a PE named .txt", multi("Content-Type: application/msword; name=a.doc\nContent-Transfer-Encoding: base64\n",
		b64lines(makeCFB(t, "\x01Ole10Native", ole10("notes.txt", pe)))), filter.Reject)
	add("sniff", "OLE Package stream with a zipped script", multi("Content-Type: application/msword; name=a.doc\nContent-Transfer-Encoding: base64\n",
		b64lines(makeCFB(t, "Package", makeZip(t, zfile{name: "a.js", data: []byte("x")})))), filter.Reject)

	add("sniff", "RTF with a Packager object (clam.exe.rtf)", multi("Content-Type: application/rtf; name=a.rtf\nContent-Transfer-Encoding: base64\n",
		b64lines(clamFile(t, "clam.exe.rtf"))), filter.Reject)
	add("sniff", "docx with an embedded Packager object", multi("Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document; name=a.docx\nContent-Transfer-Encoding: base64\n",
		b64lines(ooxml(t, "word/document.xml", zfile{name: "word/embeddings/oleObject1.bin", data: makeCFB(t, "\x01Ole10Native", ole10("run.vbs", []byte("x")))}))), filter.Reject)

	// 3. Containers.
	inner := innerMail("setup.exe", pe)
	var qp bytes.Buffer
	qw := quotedprintable.NewWriter(&qp)
	qw.Write(inner)
	qw.Close()
	add("container", "message/rfc822 in base64", wrap("message/rfc822", "base64", b64lines(inner)), filter.Reject)
	add("container", "message/rfc822 in quoted-printable", wrap("message/rfc822", "quoted-printable", qp.String()), filter.Reject)
	add("container", "message/rfc822 in 7bit", wrap("message/rfc822", "7bit", string(inner)), filter.Reject)
	add("container", ".eml as octet-stream", wrap("application/octet-stream; name=fwd.eml", "base64", b64lines(inner)), filter.Reject)
	add("container", ".eml in a zip", wrap("application/zip; name=a.zip", "base64", b64lines(makeZip(t, zfile{name: "fwd.eml", data: inner}))), filter.Reject)
	add("container", "message/partial", wrap("message/partial; id=\"p@x\"; number=1; total=3", "7bit", "Content-Type: application/octet-stream\n\nTVqQ"), filter.Quarantine)
	add("container", "TNEF with a PE (clam.tnef)", wrap("application/ms-tnef; name=winmail.dat", "base64", b64lines(clamFile(t, "clam.tnef"))), filter.Reject)
	add("container", "TNEF with a script", wrap("application/ms-tnef; name=winmail.dat", "base64", b64lines(makeTNEF("invoice.js", []byte("x")))), filter.Reject)
	add("container", "TNEF with a script, typed octet-stream, no name", wrap("application/octet-stream", "base64", b64lines(makeTNEF("invoice.js", []byte("x")))), filter.Reject)
	const none = 0xffffffff
	add("container", "Outlook .msg with a PE attachment", wrap("application/vnd.ms-outlook; name=fwd.msg", "base64", b64lines(makeCFBTree(t,
		cfbSpec{name: "__attach_version1.0_#00000000", typ: 1, left: none, right: none, child: 2},
		cfbSpec{name: "__substg1.0_37010102", typ: 2, data: pe, left: 3, right: none, child: none},
		cfbSpec{name: "__substg1.0_3707001F", typ: 2, data: utf16le("scan.pdf"), left: none, right: none, child: none},
	))), filter.Reject)
	add("container", "ISO with a PE", wrap("application/octet-stream; name=photos.iso", "base64", b64lines(makeISO("setup.exe", pe))), filter.Reject)
	add("container", "ISO named .pdf with text", wrap("application/pdf; name=a.pdf", "base64", b64lines(makeISO("readme.txt", []byte("hello")))), filter.Quarantine)
	add("container", "CHM named .dat", wrap("application/octet-stream; name=help.dat", "base64", b64lines(clamFile(t, "clam.chm"))), filter.Reject)
	add("container", "MHT by name", wrap("application/octet-stream; name=page.mht", "base64", b64lines([]byte("From: x\nSubject: y\nContent-Type: text/html\n\n<p>x</p>\n"))), filter.Reject)
	add("container", "BinHex in a text body (clam.exe.binhex)", mail("Content-Type: text/plain\n", "see below\n\n"+string(clamFile(t, "clam.exe.binhex"))+"\n"), filter.Reject)
	add("container", "BinHex as its own part", wrap("application/mac-binhex40; name=a.hqx", "7bit", string(clamFile(t, "clam.exe.binhex"))), filter.Reject)
	for name, block := range textBlockVariants(pe) {
		add("container", name+" in a text body", mail("Content-Type: text/plain\n", "Hello,\n\n"+block+"\nbye\n"), filter.Reject)
		add("container", name+" as its own part", wrap("application/octet-stream; name=data.txt", "7bit", block), filter.Reject)
	}

	// 4. Names.
	for _, ext := range DefaultBannedExtensions() {
		add("name", "."+ext, multi("Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"file."+ext+"\"\nContent-Transfer-Encoding: base64\n", "eA=="), filter.Reject)
	}
	add("name", ".svg scored", multi("Content-Type: image/svg+xml\nContent-Disposition: attachment; filename=logo.svg\n", "<svg xmlns='http://www.w3.org/2000/svg'/>"), scored)
	for name, disp := range map[string]string{
		"NTFS ::$DATA":              "filename=\"a.bat::$DATA\"",
		"NTFS alternate stream":     "filename=\"a.txt:evil.bat\"",
		"RFC 2047 unknown charset":  "filename=\"=?x-unknown?Q?evil.exe?=\"",
		"RFC 2047 language tag":     "filename=\"=?UTF-8*en?Q?evil.exe?=\"",
		"RFC 2231 language tag":     "filename*=UTF-8'en'evil%2Eexe",
		"RFC 2231 continuation":     "filename*0=\"ev\"; filename*1=\"il.exe\"",
		"single-quoted":             "filename='evil.exe'",
		"CLSID extension":           "filename=\"readme.txt.{3050F4D8-98B5-11CF-BB82-00AA00BDCE0B}\"",
		"trailing dot and space":    "filename=\"evil.exe. \"",
		"RTLO":                      "filename=\"invoice_\u202Egpj.exe\"",
		"name in Content-Type only": "",
	} {
		h := "Content-Type: application/octet-stream\nContent-Disposition: attachment; " + disp + "\n"
		if disp == "" {
			h = "Content-Type: application/octet-stream; name=\"evil.scr\"\nContent-Disposition: inline\n"
		}
		add("name", name, multi(h+"Content-Transfer-Encoding: base64\n", "eA=="), filter.Reject)
	}
	zipOf := func(e rawEntry) string { return b64lines(rawZip(0, e)) }
	att := func(name, body string) []byte {
		return multi("Content-Type: application/octet-stream; name="+name+"\nContent-Transfer-Encoding: base64\n", body)
	}
	add("name", "NUL in a zip member name", att("a.zip", zipOf(entry("run.bat\x00.txt", []byte("x")))), filter.Reject)
	add("name", "empty zip member name over a PE", att("a.zip", zipOf(entry("", pe))), filter.Reject)
	add("name", "empty zip member name over text", att("a.zip", zipOf(entry("", []byte("hello")))), scored)
	add("name", "zip symlink named .lnk", att("a.zip", zipOf(rawEntry{name: "invoice.pdf.lnk", data: []byte("/x"), creator: 3, external: 0o120777 << 16, offset: -1})), filter.Reject)
	tarLink := append(tarBlock("start.bat", '2', 0, true), make([]byte, 1024)...)
	copy(tarLink[157:], "/bin/sh")
	fixTarSum(tarLink)
	add("name", "tar symlink named .bat", att("a.tar", b64lines(tarLink)), filter.Reject)
	hard := append(tarBlock("run.cmd", '1', 0, true), make([]byte, 1024)...)
	copy(hard[157:], "readme.txt")
	fixTarSum(hard)
	add("name", "tar hard link named .cmd", att("a.tar", b64lines(hard)), filter.Reject)
	gnu := append(tarBlock("././@LongLink", 'L', 8, false), tarData([]byte("run.bat\x00"))...)
	gnu = append(append(append(gnu, tarBlock("readme.txt", '0', 5, false)...), tarData([]byte("hello"))...), make([]byte, 1024)...)
	add("name", "tar GNU long name disagrees", att("a.tar", b64lines(gnu)), filter.Reject)
	pax := append(tarBlock("PaxHeaders/x", 'x', 15, true), tarData([]byte("15 path=run.js\n"))...)
	pax = append(append(append(pax, tarBlock("notes.txt", '0', 5, true)...), tarData([]byte("hello"))...), make([]byte, 1024)...)
	add("name", "tar PAX path disagrees", att("a.tar", b64lines(pax)), filter.Reject)
	sizes := rawZip(0, entry("a.txt", []byte("hello")))
	binary.LittleEndian.PutUint32(sizes[22:], 4)
	add("name", "zip local size disagrees", att("a.zip", b64lines(sizes)), filter.Quarantine)
	return cs
}

// textBlockVariants are files encoded in text, in every form the issue
// names.
func textBlockVariants(pe []byte) map[string]string {
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
		return b.String() + "`\nend\n"
	}
	var y strings.Builder
	fmt.Fprintf(&y, "=ybegin part=1 line=128 size=%d name=a b.exe\n=ypart begin=1 end=%d\n", len(pe), len(pe))
	for i, c := range pe {
		e := c + 42
		if e == 0 || e == '\n' || e == '\r' || e == '=' {
			y.WriteByte('=')
			e += 64
		}
		y.WriteByte(e)
		if i%128 == 127 {
			y.WriteByte('\n')
		}
	}
	fmt.Fprintf(&y, "\n=yend size=%d part=1\n", len(pe))
	return map[string]string{
		"uuencode 644":              uu("begin 644 a.exe"),
		"uuencode 0755":             uu("begin 0755 a.exe"),
		"uuencode upper case":       uu("BEGIN 644 a.exe"),
		"uuencode without a name":   uu("begin 644"),
		"uuencode name with spaces": uu("begin 644 my file.exe"),
		"begin-base64":              "begin-base64 644 a.exe\n" + base64.StdEncoding.EncodeToString(pe) + "\n====\n",
		"yEnc multipart":            y.String(),
	}
}

// benign builds ordinary mail that must be accepted.
func benign(t testing.TB) []catCase {
	var cs []catCase
	add := func(name string, raw []byte) { cs = append(cs, catCase{class: "benign", name: name, raw: raw}) }
	att := func(ct, name string, data []byte) []byte {
		return multi("Content-Type: "+ct+"; name=\""+name+"\"\nContent-Disposition: attachment; filename=\""+name+"\"\nContent-Transfer-Encoding: base64\n", b64lines(data))
	}
	jpeg := append([]byte{0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}, bytes.Repeat([]byte{0x42, 0x13}, 2000)...)
	jpeg = append(jpeg, 0xff, 0xd9)
	add("pdf", att("application/pdf", "report.pdf", []byte("%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n")))
	add("png", att("image/png", "photo.png", png))
	add("jpeg", att("image/jpeg", "photo.jpg", jpeg))
	add("gif", att("image/gif", "a.gif", prefixes["gif"]))
	add("docx", att("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "letter.docx", ooxml(t, "word/document.xml")))
	add("odt", att("application/vnd.oasis.opendocument.text", "letter.odt", odf(t)))
	add("zip of documents", att("application/zip", "docs.zip", makeZip(t, zfile{name: "a.txt", data: []byte("hello")}, zfile{name: "b.pdf", data: []byte("%PDF-1.4\n")})))
	add("tar.gz", att("application/gzip", "src.tar.gz", makeTarGz(t, zfile{name: "main.go", data: []byte("package main\n")})))
	add("ics", att("text/calendar", "invite.ics", []byte("BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n")))
	add("csv", att("text/csv", "figures.csv", []byte("a,b\n1,2\n")))
	add("html mail", mail("Content-Type: multipart/alternative; boundary=x\n", "--x\nContent-Type: text/plain\n\nhi\n--x\nContent-Type: text/html\n\n<p>hi</p>\n--x--\n"))
	add("plain mail mentioning begin", mail("Content-Type: text/plain\n", "begin the meeting at 10\nFrom: me\n"))
	add("clean forward", wrap("message/rfc822", "7bit", string(innerMail("a.pdf", []byte("%PDF-1.4\n")))))
	add("TNEF with a text file", att("application/ms-tnef", "winmail.dat", makeTNEF("notes.txt", []byte("hello"))))
	files, _ := filepath.Glob("../filter/testdata/mail/*/*")
	for _, f := range files {
		if strings.HasSuffix(f, ".md") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		add("corpus "+filepath.Base(f), raw)
	}
	return cs
}

func TestCatalogue(t *testing.T) {
	in := New(Config{})
	p := filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy()}, in)
	h := watchHeap()
	start := time.Now()
	cases := catalogue(t)
	good := benign(t)
	type tally struct{ n, reject, quarantine, scored int }
	byClass := map[string]*tally{}
	var slowest time.Duration
	for _, c := range append(cases, good...) {
		t0 := time.Now()
		v := p.Check(context.Background(), filter.Data, filter.NewMessageBytes(filter.Envelope{}, c.raw, filter.Limits{}))
		took := time.Since(t0)
		slowest = max(slowest, took)
		if took > time.Second {
			t.Errorf("%s/%s took %v", c.class, c.name, took)
		}
		tl := byClass[c.class]
		if tl == nil {
			tl = &tally{}
			byClass[c.class] = tl
		}
		tl.n++
		switch {
		case v.Action >= filter.Reject:
			tl.reject++
		case v.Action >= filter.Quarantine:
			tl.quarantine++
		default:
			tl.scored++
		}
		if c.class == "benign" {
			if !v.Action.Delivers() {
				t.Errorf("benign %s: %s %v", c.name, v.Action, v.Symbols)
			}
			if !strings.HasPrefix(c.name, "corpus ") && len(v.Symbols) > 0 {
				t.Errorf("benign %s carries symbols: %v", c.name, v.Symbols)
			}
			continue
		}
		if len(v.Symbols) == 0 {
			t.Errorf("%s/%s: accepted without a symbol", c.class, c.name)
		}
		if v.Action < c.want {
			t.Errorf("%s/%s: %s, want at least %s: %v", c.class, c.name, v.Action, c.want, v.Symbols)
		}
	}
	h.done(t, maxHeap)
	classes := make([]string, 0, len(byClass))
	for k := range byClass {
		classes = append(classes, k)
	}
	sort.Strings(classes)
	for _, k := range classes {
		c := byClass[k]
		t.Logf("%-10s %3d cases: %3d reject, %3d quarantine, %3d accepted or add-header", k, c.n, c.reject, c.quarantine, c.scored)
	}
	t.Logf("%d hostile and %d benign cases in %v, slowest %v", len(cases), len(good), time.Since(start), slowest)
	if p.Panics() > 0 {
		t.Fatalf("%d panics recovered", p.Panics())
	}
	if n, stack := in.Panics(); n > 0 {
		t.Fatalf("%d decoder panics: %s", n, stack)
	}
}
