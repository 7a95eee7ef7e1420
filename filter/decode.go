package filter

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
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
		if raw, ok := p.msg.Bytes(); ok && p.Encoding == "quoted-printable" {
			// In memory: one pass, into a buffer of the body's size
			// (decoding shortens it but for bare CRs, which become CRLF).
			body := raw[p.bodyOff:p.bodyEnd]
			p.dec = p.capDecoded(appendQP(make([]byte, 0, len(body)+16), body))
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
	return p.capDecoded(raw[p.bodyOff:p.bodyEnd:p.bodyEnd]), true
}

// capDecoded cuts a body decoded whole at Limits.MaxDecodedBytes,
// setting the *LimitError a decoder gives.
func (p *Part) capDecoded(b []byte) []byte {
	if max := p.msg.limits.MaxDecodedBytes; int64(len(b)) > max {
		p.decErr = &LimitError{Limit: LimitDecodedBytes, Max: max, Part: p.Path}
		b = b[:max:max]
	}
	return b
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
		if raw, ok := p.msg.Bytes(); ok {
			r = newBase64Bytes(raw[p.bodyOff:p.bodyEnd])
		} else {
			r = newBase64Reader(r)
		}
	case "quoted-printable":
		r = newQPReader(r) // qp.go
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
// hide the rest of an attachment. Padding ends the data so far: a partial
// quantum of two or three characters decodes to what it holds, of one to
// nothing (as encoding/base64 reads an unpadded tail).
//
// It is one pass over the input: four characters at a time while they are
// all of the alphabet (every quantum of a clean line), one at a time
// around the rest. A body in memory is decoded from the message's own
// bytes, and a read of at least 8 bytes is decoded straight into the
// caller's buffer: no copy of the input, none of the output.
type base64Reader struct {
	r    io.Reader // nil when src is the whole input
	src  []byte    // input not yet decoded
	in   []byte    // the buffer src is read into from r
	acc  uint32    // the characters of a partial quantum, 6 bits each
	nacc int       // how many
	out  []byte    // decoded, not yet read
	obuf []byte    // out's buffer, for reads too small to decode into
	eof  bool      // no input after src
	tail [2]byte   // the partial quantum at the end
}

func newBase64Reader(r io.Reader) io.Reader { return &base64Reader{r: r} }

// newBase64Bytes decodes src, which must not change while it is read.
func newBase64Bytes(src []byte) io.Reader { return &base64Reader{src: src, eof: true} }

// b64val maps a byte to its 6-bit value (the URL-safe alphabet read as
// the standard one), '=' to b64pad, and every other byte to b64skip.
const (
	b64pad  = 0x40
	b64skip = 0x80
)

var b64val = func() [256]byte {
	var t [256]byte
	for i := range t {
		t[i] = b64skip
	}
	for i, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = byte(i)
	}
	t['-'], t['_'], t['='] = 62, 63, b64pad
	return t
}()

func (d *base64Reader) Read(p []byte) (int, error) {
	for {
		if len(d.out) > 0 {
			n := copy(p, d.out)
			d.out = d.out[n:]
			return n, nil
		}
		if len(p) == 0 {
			return 0, nil
		}
		if len(d.src) == 0 {
			if d.eof {
				if d.nacc == 0 {
					return 0, io.EOF
				}
				d.out = d.flush(d.tail[:0])
				continue
			}
			d.fill()
			continue
		}
		if len(p) >= 8 {
			// At most ¾ of what is decoded comes out, so p holds it.
			k := min(len(d.src), (len(p)-2)/3*4-d.nacc)
			out := d.decode(p[:0], d.src[:k])
			d.src = d.src[k:]
			if len(out) > 0 {
				return len(out), nil
			}
			continue
		}
		if d.obuf == nil {
			d.obuf = make([]byte, 0, 4096)
		}
		k := min(len(d.src), (cap(d.obuf)-2)/3*4-d.nacc)
		d.out = d.decode(d.obuf[:0], d.src[:k])
		d.src = d.src[k:]
	}
}

// fill reads the next piece of input. An error of the reader ends the
// input, as the end of the body does.
func (d *base64Reader) fill() {
	if d.in == nil {
		d.in = make([]byte, 8192)
	}
	n, err := d.r.Read(d.in)
	d.src = d.in[:n]
	if err != nil {
		d.eof = true
	}
}

// decode appends to dst, which must have room for ¾ of len(src) and
// d.nacc bytes more, what src decodes to; a partial quantum at its end
// waits in d.acc for the next call.
func (d *base64Reader) decode(dst, src []byte) []byte {
	n := len(dst)
	dst = dst[:cap(dst)]
	acc, nacc := d.acc, d.nacc
	for i := 0; i < len(src); {
		if nacc == 0 {
			// Eight characters make six bytes, stored as eight: the two
			// after them are overwritten next (the room is there, as what
			// decodes from src takes at most ¾ of cap(dst)-2).
			for ; i+8 <= len(src); i += 8 {
				q := src[i : i+8 : i+8]
				c0, c1, c2, c3 := b64val[q[0]], b64val[q[1]], b64val[q[2]], b64val[q[3]]
				c4, c5, c6, c7 := b64val[q[4]], b64val[q[5]], b64val[q[6]], b64val[q[7]]
				if (c0|c1|c2|c3|c4|c5|c6|c7)&(b64pad|b64skip) != 0 {
					break
				}
				v := uint64(c0)<<58 | uint64(c1)<<52 | uint64(c2)<<46 | uint64(c3)<<40 |
					uint64(c4)<<34 | uint64(c5)<<28 | uint64(c6)<<22 | uint64(c7)<<16
				binary.BigEndian.PutUint64(dst[n:n+8], v)
				n += 6
			}
			for ; i+4 <= len(src); i += 4 {
				q := src[i : i+4 : i+4]
				a, b, c, e := b64val[q[0]], b64val[q[1]], b64val[q[2]], b64val[q[3]]
				if (a|b|c|e)&(b64pad|b64skip) != 0 {
					break
				}
				v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(e)
				d3 := dst[n : n+3 : n+3]
				d3[0], d3[1], d3[2] = byte(v>>16), byte(v>>8), byte(v)
				n += 3
			}
			if i == len(src) {
				break
			}
		}
		v := b64val[src[i]]
		i++
		switch {
		case v < b64pad:
			acc = acc<<6 | uint32(v)
			if nacc++; nacc == 4 {
				_ = dst[n+2]
				dst[n], dst[n+1], dst[n+2] = byte(acc>>16), byte(acc>>8), byte(acc)
				n += 3
				acc, nacc = 0, 0
			}
		case v == b64pad:
			d.acc, d.nacc = acc, nacc
			n = len(d.flush(dst[:n]))
			acc, nacc = 0, 0
		}
	}
	d.acc, d.nacc = acc, nacc
	return dst[:n]
}

// flush appends the partial quantum to dst and empties it.
func (d *base64Reader) flush(dst []byte) []byte {
	switch d.nacc {
	case 2:
		dst = append(dst, byte(d.acc>>4))
	case 3:
		dst = append(dst, byte(d.acc>>10), byte(d.acc>>2))
	}
	d.acc, d.nacc = 0, 0
	return dst
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
