package filter

import (
	"bufio"
	"encoding/base64"
	"errors"
	"io"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// Open returns a reader over the part's body with the transfer encoding
// undone (base64, quoted-printable, x-uuencode) but the charset left as is:
// the bytes of the attached file. Decoding is lenient the way mail clients
// are: characters outside the base64 alphabet are skipped, a bad
// quoted-printable escape is kept literally. Unknown encodings read as raw.
// Reading past Limits.MaxDecodedBytes returns a *LimitError.
func (p *Part) Open() io.Reader {
	var r io.Reader = p.Raw()
	switch p.Encoding {
	case "base64":
		r = newBase64Reader(r)
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	default:
		if isUUEncoding(p.Encoding) {
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
		var r io.Reader = p.Open()
		cs := p.Charset()
		if cs != "" && cs != "utf-8" && cs != "us-ascii" && cs != "utf8" {
			if cr, err := charset.Reader(cs, r); err == nil {
				r = cr
			}
		}
		var b strings.Builder
		_, p.textErr = io.Copy(&b, r)
		s := b.String()
		if !utf8.ValidString(s) {
			s = strings.ToValidUTF8(s, "\uFFFD")
		}
		p.text = s
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
// breaks, spaces, stray characters) are skipped, and missing padding at
// the end is tolerated, so one bad character does not hide the rest.
type base64Reader struct {
	r    *bufio.Reader
	q    [4]byte
	nq   int
	out  []byte
	done bool
	buf  [3 * 1024]byte
}

func newBase64Reader(r io.Reader) io.Reader { return &base64Reader{r: bufio.NewReaderSize(r, 4096)} }

var b64val = func() [256]int8 {
	var t [256]int8
	for i := range t {
		t[i] = -1
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = int8(i)
	}
	// The URL-safe alphabet shows up in the wild too.
	t['-'], t['_'] = 62, 63
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
	out := d.buf[:0]
	for len(out)+3 <= cap(out) {
		c, err := d.r.ReadByte()
		if err != nil {
			d.done = true
			break
		}
		if c == '=' {
			// Padding ends a quantum; whatever is queued is flushed below.
			if d.nq >= 2 {
				out = d.flushPartial(out)
			}
			d.nq = 0
			continue
		}
		v := b64val[c]
		if v < 0 {
			continue
		}
		d.q[d.nq] = byte(v)
		d.nq++
		if d.nq == 4 {
			out = append(out, d.q[0]<<2|d.q[1]>>4, d.q[1]<<4|d.q[2]>>2, d.q[2]<<6|d.q[3])
			d.nq = 0
		}
	}
	if d.done && d.nq >= 2 {
		out = d.flushPartial(out)
		d.nq = 0
	}
	d.out = out
}

func (d *base64Reader) flushPartial(out []byte) []byte {
	out = append(out, d.q[0]<<2|d.q[1]>>4)
	if d.nq == 3 {
		out = append(out, d.q[1]<<4|d.q[2]>>2)
	}
	return out
}

var _ = base64.StdEncoding // the alphabet above is RFC 4648's

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
