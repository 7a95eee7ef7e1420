package filter

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime/quotedprintable"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/emersion/go-message/charset"
)

// Open returns a reader over the part's body with the transfer encoding
// undone (base64, quoted-printable, x-uuencode) but the charset left as is:
// the bytes of the attached file. Decoding is lenient the way mail clients
// are: characters outside the base64 alphabet are skipped, a bad
// quoted-printable escape is kept literally. Unknown encodings read as raw.
// Reading past Limits.MaxDecodedBytes returns a *LimitError.
func (p *Part) Open() io.Reader { return p.OpenAs(p.Encoding) }

// Encodings lists every reading of the part's transfer encoding, Encoding
// first: the values of several Content-Transfer-Encoding fields, and for
// an unknown encoding "base64" after it. An inspector that judges every
// reading (OpenAs) judges what any client may show. It has one element
// for a well-formed part.
func (p *Part) Encodings() []string {
	if len(p.encodings) == 0 {
		return []string{p.Encoding}
	}
	return p.encodings
}

// OpenAs is Open with the body read as transfer encoding enc (one of
// Encodings, or any other).
//
// A text leaf that is not an attachment is decoded once, on first use,
// and every later Open (and Text) reads the same decoded bytes: the
// archive inspector's search for encoded files and the rules read the
// same body, which must not be decoded twice.
func (p *Part) OpenAs(enc string) io.Reader {
	if enc == p.Encoding && p.IsText() && !p.IsAttachment() {
		b, err := p.decoded()
		return &bytesErrReader{b: b, err: err}
	}
	return p.decode(enc)
}

// decoded returns the body of a text part, transfer encoding undone,
// read once into a buffer sized by the raw body (decoding never makes a
// body longer) and shared: it is never written after.
func (p *Part) decoded() ([]byte, error) {
	p.decOnce.Do(func() {
		if b, ok := p.inPlace(); ok {
			p.dec = b
			return
		}
		p.dec, p.decErr = readAll(p.decode(p.Encoding), min(p.RawSize(), p.msg.limits.MaxDecodedBytes)+1)
	})
	return p.dec, p.decErr
}

// inPlace returns the decoded body without a copy when decoding is the
// identity (no transfer encoding) and the message is in memory: the
// body's own bytes, capped at Limits.MaxDecodedBytes with the same
// *LimitError a decoder gives.
func (p *Part) inPlace() ([]byte, bool) {
	raw, ok := p.msg.Bytes()
	if !ok || decodes(p.Encoding) {
		return nil, false
	}
	b := raw[p.bodyOff:p.bodyEnd:p.bodyEnd]
	if max := p.msg.limits.MaxDecodedBytes; int64(len(b)) > max {
		p.decErr = &LimitError{Limit: LimitDecodedBytes, Max: max, Part: p.Path}
		b = b[:max:max]
	}
	return b, true
}

// decodes reports whether enc is a transfer encoding decode undoes.
func decodes(enc string) bool {
	return enc == "base64" || enc == "quoted-printable" || isUUEncoding(enc)
}

// readAll is io.ReadAll into a buffer of capacity hint first.
func readAll(r io.Reader, hint int64) ([]byte, error) {
	b := make([]byte, 0, max(hint, 512))
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// bytesErrReader reads b, then returns err (io.EOF when nil).
type bytesErrReader struct {
	b   []byte
	err error
}

func (r *bytesErrReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func (p *Part) decode(enc string) io.Reader {
	var r io.Reader = p.Raw()
	switch enc {
	case "base64":
		r = newBase64Reader(r)
	case "quoted-printable":
		r = quotedprintable.NewReader(&eolReader{r: r})
	default:
		if isUUEncoding(enc) {
			r = newUUReader(r)
		}
	}
	return &limitReader{r: r, n: p.msg.limits.MaxDecodedBytes, max: p.msg.limits.MaxDecodedBytes, part: p.Path}
}

func isUUEncoding(enc string) bool {
	switch enc {
	case "x-uuencode", "uuencode", "x-uue", "uue":
		return true
	}
	return false
}

// DecodedSize returns the size of the decoded body, computed once.
func (p *Part) DecodedSize() (int64, error) {
	p.sizeOnce.Do(func() {
		p.decodedSize, p.decodedErr = io.Copy(io.Discard, p.Open())
	})
	return p.decodedSize, p.decodedErr
}

// Charset returns the declared charset of a text part, lower case ("" when
// absent).
func (p *Part) Charset() string { return strings.ToLower(p.Params["charset"]) }

// ErrNotText is returned by Text for parts that are not text/* leaves.
var ErrNotText = errors.New("filter: part is not text")

// Text returns the body of a text/* part decoded to UTF-8, computed once and
// shared. An unknown or broken charset does not fail: the bytes are kept
// with invalid UTF-8 replaced, as mail clients show them.
func (p *Part) Text() (string, error) {
	if !p.IsText() {
		return "", ErrNotText
	}
	p.textOnce.Do(func() {
		var b []byte
		if p.IsAttachment() {
			b, p.textErr = readAll(p.Open(), min(p.RawSize(), p.msg.limits.MaxDecodedBytes)+1)
		} else {
			b, p.textErr = p.decoded()
		}
		cs := p.Charset()
		if cs != "" && cs != "utf-8" && cs != "us-ascii" && cs != "utf8" {
			if cr, err := charset.Reader(cs, bytes.NewReader(b)); err == nil {
				// A converted text is new bytes; its error is the
				// decoder's, if any, after the body's own.
				conv, err := readAll(cr, int64(len(b))+int64(len(b))/2)
				if p.textErr == nil {
					p.textErr = err
				}
				b = conv
			}
		}
		if !utf8.Valid(b) {
			p.text = strings.ToValidUTF8(string(b), "\uFFFD")
			return
		}
		// b is never written again (the decoded body is shared read-only,
		// a converted one is ours): the string can share it.
		p.text = unsafe.String(unsafe.SliceData(b), len(b))
	})
	return p.text, p.textErr
}

// eolReader turns runs of CRs before a LF, and bare CRs, into CRLF, which
// is all the quoted-printable decoder understands: "=\r\r\n" is still a
// soft line break. LF and CRLF pass as they are.
type eolReader struct {
	r    io.Reader
	in   [4096]byte
	obuf [8192 + 2]byte
	out  []byte
	cr   int // CRs at the end of the last read, not yet written
	err  error
}

func (e *eolReader) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		if e.err != nil {
			if e.cr > 0 {
				e.cr = 0
				e.out = append(e.obuf[:0], '\r', '\n')
				break
			}
			return 0, e.err
		}
		n, err := e.r.Read(e.in[:])
		e.err = err
		e.out = e.convert(e.in[:n])
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

func (e *eolReader) convert(data []byte) []byte {
	out := e.obuf[:0]
	for len(data) > 0 {
		if e.cr > 0 {
			// CRs pending: one line break, whatever follows.
			out = append(out, '\r', '\n')
			e.cr = 0
			if data[0] == '\n' {
				data = data[1:]
			}
			continue
		}
		i := bytes.IndexByte(data, '\r')
		if i < 0 {
			return append(out, data...)
		}
		out = append(out, data[:i]...)
		j := i
		for j < len(data) && data[j] == '\r' {
			j++
		}
		e.cr = j - i
		data = data[j:]
	}
	return out
}

type limitReader struct {
	r    io.Reader
	n    int64
	max  int64
	part string
}

func (l *limitReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		// One byte more tells a body that is exactly at the limit apart
		// from one that is over it.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n == 0 {
			return 0, io.EOF
		}
		return 0, &LimitError{Limit: LimitDecodedBytes, Max: l.max, Part: l.part}
	}
	if int64(len(b)) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= int64(n)
	return n, err
}

// base64Reader decodes base64 leniently: bytes outside the alphabet (line
// breaks, spaces, stray characters) are skipped, the URL-safe alphabet is
// accepted, and missing padding is tolerated, so one bad character does not
// hide the rest of an attachment. Clean input is decoded in bulk by
// encoding/base64.
type base64Reader struct {
	r    io.Reader
	in   [8192]byte
	work []byte // alphabet characters not yet decoded
	out  []byte
	obuf []byte
	done bool
}

func newBase64Reader(r io.Reader) io.Reader {
	return &base64Reader{r: r, work: make([]byte, 0, 8192+4), obuf: make([]byte, 0, 6144+3)}
}

// b64class maps a byte to itself (standard alphabet), to its standard
// equivalent (URL-safe alphabet), to '=' (padding), or to 0 (skipped).
var b64class = func() [256]byte {
	var t [256]byte
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = c
	}
	t['-'], t['_'], t['='] = '+', '/', '='
	return t
}()

func (d *base64Reader) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.done {
			return 0, io.EOF
		}
		d.fill()
	}
	n := copy(p, d.out)
	d.out = d.out[n:]
	return n, nil
}

func (d *base64Reader) fill() {
	n, err := d.r.Read(d.in[:])
	out := d.obuf[:0]
	in := d.in[:n]
	for {
		// Padding ends the data so far, whole or not.
		k := bytes.IndexByte(in, '=')
		if k < 0 {
			d.work = appendBase64(d.work, in)
			break
		}
		d.work = appendBase64(d.work, in[:k])
		out = d.decode(out, true)
		in = in[k+1:]
	}
	if err != nil {
		d.done = true
	}
	d.out = d.decode(out, d.done)
}

// appendBase64 appends to dst the alphabet characters of src (which holds
// no padding), URL-safe ones read as standard: every byte is written and
// the write position moves only past the kept ones, a loop with no branch
// on the data, which the line breaks every 76 characters would mispredict.
func appendBase64(dst, src []byte) []byte {
	k := len(dst)
	dst = slices.Grow(dst, len(src))[:k+len(src)]
	for _, c := range src {
		v := b64class[c]
		dst[k] = v
		k += int(b64keep[c])
	}
	return dst[:k]
}

// b64keep is 1 for the bytes b64class maps to an alphabet character.
var b64keep = func() [256]byte {
	var t [256]byte
	for c, v := range b64class {
		if v != 0 && v != '=' {
			t[c] = 1
		}
	}
	return t
}()

// decode appends the decoded whole quanta of work to out; with flush, a
// trailing partial quantum too.
func (d *base64Reader) decode(out []byte, flush bool) []byte {
	whole := len(d.work) &^ 3
	if whole > 0 {
		k := len(out)
		out = out[:k+whole/4*3]
		base64.StdEncoding.Decode(out[k:], d.work[:whole]) //nolint:errcheck // alphabet already checked
	}
	rest := d.work[whole:]
	if flush {
		if len(rest) >= 2 {
			var q [3]byte
			m, _ := base64.RawStdEncoding.Decode(q[:], rest)
			out = append(out, q[:m]...)
		}
		rest = rest[:0]
	}
	d.work = append(d.work[:0], rest...)
	return out
}

// uuReader decodes a uuencoded body ("begin MODE NAME" … "end").
type uuReader struct {
	s     *bufio.Scanner
	out   []byte
	begun bool
	done  bool
}

func newUUReader(r io.Reader) io.Reader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 4096), 64<<10)
	return &uuReader{s: s}
}

func (u *uuReader) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.done || !u.s.Scan() {
			return 0, io.EOF
		}
		line := strings.TrimRight(u.s.Text(), "\r")
		if !u.begun {
			u.begun = strings.HasPrefix(line, "begin ")
			continue
		}
		if line == "end" {
			u.done = true
			continue
		}
		u.out = uuDecodeLine(u.out[:0], line)
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

func uuDecodeLine(dst []byte, line string) []byte {
	if line == "" {
		return dst
	}
	n := int((line[0] - ' ') & 63)
	val := func(i int) byte {
		if i >= len(line) {
			return 0
		}
		return (line[i] - ' ') & 63
	}
	for i := 1; n > 0; i += 4 {
		a, b, c, d := val(i), val(i+1), val(i+2), val(i+3)
		for _, x := range []byte{a<<2 | b>>4, b<<4 | c>>2, c<<6 | d} {
			if n == 0 {
				break
			}
			dst = append(dst, x)
			n--
		}
	}
	return dst
}
