package archive

import (
	"bytes"
	"encoding/ascii85"
	"encoding/hex"
	"io"
	"sort"
	"strconv"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zlib"
)

// PDFs carry files and code: an attached file (a stream of /Type
// /EmbeddedFile, which readers offer to save and open) and actions that
// run when the document opens (/JavaScript, /JS, /Launch). pdfObjects
// walks every embedded file like an attachment (an executable in a PDF
// is banned like one in a zip; an embedded file alone is no finding, as
// e-invoices carry their XML so) and records KindPDFActive for the
// actions (fillable forms use JavaScript too: it scores, lightly).
//
// The reading is the lenient one a scanner needs, not a PDF parser: every
// "stream" keyword is found, the dictionary before it is read back to its
// "obj", names are read with their #xx escapes undone (/J#61vaScript is
// /JavaScript) and the data runs to the next "endstream" (a /Length can
// be an indirect reference, or lie). Object streams (/Type /ObjStm), which
// hold dictionaries compressed, are decoded and searched for actions
// too. Filters undone: FlateDecode, ASCIIHexDecode and ASCII85Decode, in
// chains; an embedded file under another filter, or in an encrypted PDF,
// cannot be read and is uninspectable (quarantine), never passed unseen.
//
// Written here, not taken from a PDF library: the Go ones parse the
// cross-reference table and refuse the broken files attackers send; a
// scanner has to read what any reader would repair.

const (
	maxPDFStreams  = 100_000 // "stream" and "endstream" keywords looked at
	maxPDFDictRead = 4 << 10 // bytes read back from "stream" for its dictionary
)

var (
	pdfStream = []byte("stream")
)

func (w *walker) pdfObjects(n node, sp held) error {
	size := sp.Size()
	keys := findAll(sp, size, pdfStream, maxPDFStreams)
	if len(keys) == maxPDFStreams {
		w.find(KindUninspectable, n.path, "pdf: more than "+strconv.Itoa(maxPDFStreams/2)+" streams")
	}
	var starts, ends []int64
	for _, off := range keys {
		if off >= 3 && hasAt(sp, off-3, "end") {
			ends = append(ends, off-3)
		} else {
			starts = append(starts, off)
		}
	}
	encrypted := len(findAll(sp, size, []byte("/Encrypt"), 1)) > 0
	active := map[string]bool{}
	scanChunks(io.NewSectionReader(sp, 0, size), func(b []byte) { pdfActions(active, b) })
	files := 0
	for _, off := range starts {
		if err := w.tick(n.path); err != nil {
			return err
		}
		// The dictionary lies after the keyword before this one.
		from := max(off-maxPDFDictRead, 0)
		if i := sort.Search(len(keys), func(i int) bool { return keys[i] >= off }); i > 0 {
			from = max(from, keys[i-1]+int64(len(pdfStream)))
		}
		dict := pdfNames(bytesAt(sp, from, int(off-from)))
		if i := bytes.LastIndex(dict, []byte("obj")); i >= 0 {
			dict = dict[i+3:]
		}
		embedded := bytes.Contains(dict, []byte("/EmbeddedFile"))
		objStm := bytes.Contains(dict, []byte("/ObjStm"))
		if !embedded && !objStm {
			continue
		}
		data := off + int64(len(pdfStream))
		if hasAt(sp, data, "\r") {
			data++
		}
		if hasAt(sp, data, "\n") {
			data++
		}
		end := size
		if i := sort.Search(len(ends), func(i int) bool { return ends[i] >= data }); i < len(ends) {
			end = ends[i]
		}
		if err := w.countEntry(n.path); err != nil {
			return err
		}
		raw := io.NewSectionReader(sp, data, end-data)
		if objStm {
			in := &counter{r: raw}
			if dec, ok := pdfDecode(pdfFilters(dict), in); ok && !encrypted {
				p := n.path + "#objstm@" + strconv.FormatInt(off, 10)
				err := w.guard(n, TypePDF, func() error {
					err := scanChunks(w.meter(dec, in, p), func(b []byte) { pdfActions(active, b) })
					if w.stop {
						return err // a limit
					}
					return nil // corrupt data: what decoded was searched, as a reader shows it
				})
				if err != nil {
					return err
				}
			}
			continue
		}
		files++
		c := n.child("embedded file "+strconv.Itoa(files), false, -1)
		c.names = nil
		filters := pdfFilters(dict)
		dec, ok := pdfDecode(filters, raw)
		switch {
		case encrypted:
			w.find(KindEncrypted, c.path, "pdf")
			w.find(KindUninspectable, c.path, "pdf: an embedded file in an encrypted document")
			continue
		case !ok:
			w.find(KindUninspectable, c.path, "pdf: embedded file filter "+string(bytes.Join(filters, []byte(" "))))
			continue
		}
		in := &counter{r: raw}
		dec, _ = pdfDecode(filters, in)
		if err := w.guard(c, TypePDF, func() error { return w.file(c, w.meter(dec, in, c.path)) }); err != nil {
			return err
		}
	}
	for _, a := range []string{"javascript", "launch"} {
		if active[a] {
			w.find(KindPDFActive, n.path, a)
		}
	}
	return w.tick(n.path)
}

// scanChunks calls fn with r in pieces of 64 KB, each beginning with the
// last 64 bytes of the one before, so that a name cut by a piece's end is
// whole in the next. It returns the error that ended r, io.EOF aside.
func scanChunks(r io.Reader, fn func([]byte)) error {
	const size, overlap = 64 << 10, 64
	buf := make([]byte, overlap+size)
	keep := 0
	for {
		n, err := io.ReadFull(r, buf[keep:])
		if n > 0 {
			end := keep + n
			fn(buf[:end])
			keep = min(overlap, end)
			copy(buf, buf[end-keep:end])
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// hasAt reports whether r holds s at off, without a buffer for a file
// held in memory (a PDF's every stream keyword is looked at so).
func hasAt(r io.ReaderAt, off int64, s string) bool {
	if mf, ok := r.(memFile); ok {
		return string(mf.section(off, int64(len(s)))) == s
	}
	return readAt(r, off, len(s)) == s
}

// bytesAt returns up to n bytes of r at off, read-only: for a file held
// in memory its own bytes, else a new buffer.
func bytesAt(r io.ReaderAt, off int64, n int) []byte {
	if mf, ok := r.(memFile); ok {
		return mf.section(off, int64(n))
	}
	b := make([]byte, n)
	k, _ := r.ReadAt(b, off)
	return b[:k]
}

func readAt(r io.ReaderAt, off int64, n int) string {
	b := make([]byte, n)
	k, _ := r.ReadAt(b, off)
	return string(b[:k])
}

// pdfNames returns b with the #xx escapes of its names undone.
func pdfNames(b []byte) []byte {
	if bytes.IndexByte(b, '#') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '#' && i+2 < len(b) {
			var x [1]byte
			if _, err := hex.Decode(x[:], b[i+1:i+3]); err == nil {
				out = append(out, x[0])
				i += 2
				continue
			}
		}
		out = append(out, b[i])
	}
	return out
}

// pdfActions marks the actions named in b: javascript, launch.
func pdfActions(active map[string]bool, b []byte) {
	b = pdfNames(b)
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '/')
		if j < 0 {
			return
		}
		i += j + 1
		k := i
		for k < len(b) && pdfRegular(b[k]) {
			k++
		}
		switch string(b[i:k]) {
		case "JavaScript", "JS":
			active["javascript"] = true
		case "Launch":
			active["launch"] = true
		}
	}
}

// pdfRegular reports whether c is a regular character of a PDF token.
func pdfRegular(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '\f', 0, '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return false
	}
	return true
}

// pdfFilters returns the filter names of a stream dictionary, in order.
func pdfFilters(dict []byte) [][]byte {
	i := bytes.Index(dict, []byte("/Filter"))
	if i < 0 {
		return nil
	}
	rest := bytes.TrimLeft(dict[i+len("/Filter"):], " \t\r\n\f")
	one := len(rest) > 0 && rest[0] == '/'
	if len(rest) > 0 && rest[0] == '[' {
		if j := bytes.IndexByte(rest, ']'); j >= 0 {
			rest = rest[1:j]
		}
	}
	var out [][]byte
	for len(rest) > 0 {
		j := bytes.IndexByte(rest, '/')
		if j < 0 {
			break
		}
		k := j + 1
		for k < len(rest) && pdfRegular(rest[k]) {
			k++
		}
		out = append(out, rest[j+1:k])
		rest = rest[k:]
		if one {
			break
		}
	}
	return out
}

// pdfDecode undoes filters over r; ok is false for a filter it cannot.
func pdfDecode(filters [][]byte, r io.Reader) (io.Reader, bool) {
	for _, f := range filters {
		switch string(f) {
		case "FlateDecode", "Fl":
			r = newPDFFlate(r)
		case "ASCIIHexDecode", "AHx":
			r = &asciiHex{r: r}
		case "ASCII85Decode", "A85":
			r = ascii85.NewDecoder(&untilEOD{r: r})
		default:
			return nil, false
		}
	}
	return r, true
}

// newPDFFlate reads zlib data, as PDF writers give it, or raw deflate,
// as some do.
func newPDFFlate(r io.Reader) io.Reader {
	var head [2]byte
	n, _ := io.ReadFull(r, head[:])
	all := io.MultiReader(bytes.NewReader(head[:n]), r)
	if n == 2 && head[0]&0x0f == 8 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 {
		if z, err := zlib.NewReader(all); err == nil {
			return z
		}
	}
	return flate.NewReader(all)
}

// asciiHex decodes ASCIIHexDecode data: hex digits, white space skipped,
// '>' the end, an odd last digit followed by 0.
type asciiHex struct {
	r    io.Reader
	buf  [4096]byte
	odd  int // a pending high digit + 1, or 0
	done bool
}

func (a *asciiHex) Read(p []byte) (int, error) {
	if a.done {
		return 0, io.EOF
	}
	n := 0
	for n == 0 && !a.done {
		k, err := a.r.Read(a.buf[:min(len(a.buf), 2*len(p))])
		for _, c := range a.buf[:k] {
			v, ok := hexVal(c)
			if c == '>' {
				a.done = true
				break
			}
			if !ok {
				continue
			}
			if a.odd == 0 {
				a.odd = int(v) + 1
				continue
			}
			p[n] = byte(a.odd-1)<<4 | v
			n++
			a.odd = 0
		}
		if err != nil {
			a.done = true
		}
	}
	if a.done && a.odd != 0 && n < len(p) {
		p[n] = byte(a.odd-1) << 4
		n++
		a.odd = 0
	}
	return n, nil
}

// untilEOD ends ASCII85 data at its "~>" marker.
type untilEOD struct {
	r    io.Reader
	done bool
}

func (u *untilEOD) Read(p []byte) (int, error) {
	if u.done {
		return 0, io.EOF
	}
	n, err := u.r.Read(p)
	if i := bytes.IndexByte(p[:n], '~'); i >= 0 {
		n, u.done = i, true
	}
	return n, err
}
