package archive

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
)

// Files travel inside text bodies too, and clients still show them as
// attachments: uuencoded blocks ("begin 644 x.exe" … "end", in any of the
// begin-line forms encoders write, and "begin-base64" blocks), yEnc
// ("=ybegin … name=x.exe" … "=yend") and BinHex 4.0 ("(This file must be
// converted with BinHex 4.0)" and a ':'-delimited block). textBlocks finds
// each in a text and walks it as a file named as its header says.

// uuBegin matches the begin line forms: "begin 644 name", "begin 0644
// name", "begin 644" (no name), "BEGIN  644   name", "begin-base64 644 name".
var uuBegin = regexp.MustCompile(`(?i)^begin(-base64)?[ \t]+[0-7]{1,6}(?:[ \t]+(.*))?$`)

// lineSource yields the lines of a text without their terminators, each
// valid until the next call. A line longer than its buffer is cut (its
// rest skipped): an overlong line must not end the search, or one would
// hide every block after it.
type lineSource struct {
	br    *bufio.Reader
	mid   bool // the last piece read filled the buffer: the line goes on
	cool  int  // lines still to read before skipPlain searches again
	every bool // never skip: tests compare the two
}

var lineBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

func newLineSource(r io.Reader) *lineSource {
	br := lineBufs.Get().(*bufio.Reader)
	br.Reset(r)
	return &lineSource{br: br}
}

// close gives the buffer back; the source must not be used after.
func (s *lineSource) close() {
	s.br.Reset(nil)
	lineBufs.Put(s.br)
	s.br = nil
}

func (s *lineSource) next() ([]byte, bool) {
	if s.mid {
		s.skipRest()
	}
	line, long, _, ok := s.nextLong()
	if long {
		line = append([]byte(nil), line[:256]...) // enough to tell a begin line
		s.skipRest()
	}
	return line, ok
}

// nextLong is next without cutting: a line longer than the buffer comes
// in pieces of at most the buffer (long is true for all but the last),
// each valid until the source is read again; cont is true for the pieces
// after the first.
func (s *lineSource) nextLong() (line []byte, long, cont, ok bool) {
	line, err := s.br.ReadSlice('\n')
	cont, long = s.mid, errors.Is(err, bufio.ErrBufferFull)
	s.mid = long
	if long {
		return line, true, cont, true
	}
	if len(line) == 0 && err != nil {
		return nil, false, cont, false
	}
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	return line, false, cont, true
}

// skipPlain discards the whole lines already buffered that textBlocks
// would find nothing in, up to the first that may hold something: a
// begin line (any case), "=ybegin ", a BinHex tag, or a run of
// minEmbedded base64 characters (which never spans lines: line breaks
// are not of the alphabet). Prose is so passed over a window at a time
// instead of a line at a time. The cost stays linear whatever the text
// holds: a window is at most plainWindow bytes, each search stops where
// an earlier one found something, and after a find the next
// plainCooldown lines are read one by one, unsearched, as before.
func (s *lineSource) skipPlain() {
	if s.cool > 0 {
		s.cool--
		return
	}
	if s.every || s.mid || s.br.Buffered() == 0 {
		return
	}
	data, _ := s.br.Peek(min(s.br.Buffered(), plainWindow)) // buffered: no read, no error
	win := data[:bytes.LastIndexByte(data, '\n')+1]
	if len(win) == 0 {
		return
	}
	best := len(win)
	base64Runs(win, func(start, _ int) bool { best = start; return false })
	for _, tag := range [...][]byte{ybegin, binhexTag} {
		if k := bytes.Index(win[:best], tag); k >= 0 {
			best = k
		}
	}
	for i := 0; i < best; {
		if hasPrefixFold(win[i:], "begin") {
			best = i
			break
		}
		j := bytes.IndexByte(win[i:best], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	s.br.Discard(bytes.LastIndexByte(win[:best], '\n') + 1) //nolint:errcheck // buffered
	if best < len(win) {
		s.cool = plainCooldown
	}
}

const (
	plainWindow   = 8 << 10
	plainCooldown = 16
)

// skipRest discards the rest of a line longer than the buffer.
func (s *lineSource) skipRest() {
	for s.mid {
		_, err := s.br.ReadSlice('\n')
		s.mid = errors.Is(err, bufio.ErrBufferFull)
	}
}

var (
	ybegin    = []byte("=ybegin ")
	binhexTag = []byte("(This file must be converted with BinHex")
)

// textBlocks walks the files encoded in a text.
func (w *walker) textBlocks(n node, r io.Reader) error {
	src := newLineSource(r)
	src.every = w.in.everyLine
	defer src.close()
	for {
		src.skipPlain()
		line, long, cont, ok := src.nextLong()
		if !ok {
			return nil
		}
		if long || cont {
			// A piece of a line longer than the buffer: only its first
			// can be a begin line, and every piece can carry files.
			var head []byte
			if !cont {
				head = append([]byte(nil), line[:256]...) // enough to tell a begin line
			}
			if err := w.embedded(n, line, long, src.br); err != nil {
				return err
			}
			if cont {
				continue
			}
			line = head
		}
		var name, kind string
		var dec io.Reader
		var m [][]byte
		if len(line) > 5 && hasPrefixFold(line, "begin") {
			m = uuBegin.FindSubmatch(line)
		}
		switch {
		case m != nil:
			name, kind = strings.TrimSpace(string(m[2])), "uuencode"
			if len(m[1]) > 0 {
				kind, dec = "base64", base64.NewDecoder(base64.StdEncoding, &b64Lines{src: src})
			} else {
				dec = &uuReader{src: src}
			}
		case bytes.HasPrefix(line, ybegin):
			name, kind = yencParam(string(line), "name"), "yenc"
			dec = &yencReader{src: src}
		case bytes.Contains(line, binhexTag):
			bh, err := newBinHex(&binhexText{src: src})
			if err != nil {
				w.find(KindUninspectable, n.path+"/binhex", shortErr(err))
				continue
			}
			name, kind, dec = bh.name, "binhex", bh.data
		default:
			if !long && !cont {
				if err := w.embedded(n, line, false, nil); err != nil {
					return err
				}
			}
			continue
		}
		c := n.child(name, false, -1)
		if name == "" {
			c = n.child(kind, false, -1)
			c.names = nil
		}
		if err := w.file(c, w.meter(dec, nil, c.path)); err != nil {
			return err
		}
	}
}

// hasPrefixFold reports whether b starts with the lower-case ASCII
// prefix in any case.
func hasPrefixFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if c := b[i]; c != prefix[i] && c|0x20 != prefix[i] {
			return false
		}
	}
	return true
}

// uuReader decodes uuencoded lines up to "end" (or a line that is not
// uuencoding).
type uuReader struct {
	src  *lineSource
	out  []byte
	done bool
}

func (u *uuReader) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.done {
			return 0, io.EOF
		}
		line, ok := u.src.next()
		if !ok || string(line) == "end" || len(line) == 0 || line[0] < ' ' || line[0] > '`' {
			u.done = true
			continue
		}
		u.out = uuLine(u.out[:0], line)
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

func uuLine(dst []byte, line []byte) []byte {
	n := int((line[0] - ' ') & 63)
	val := func(i int) byte {
		if i >= len(line) {
			return 0
		}
		return (line[i] - ' ') & 63
	}
	for i := 1; n > 0; i += 4 {
		a, b, c, d := val(i), val(i+1), val(i+2), val(i+3)
		for _, x := range [3]byte{a<<2 | b>>4, b<<4 | c>>2, c<<6 | d} {
			if n == 0 {
				break
			}
			dst = append(dst, x)
			n--
		}
	}
	return dst
}

// b64Lines feeds the lines of a begin-base64 block, up to "====".
type b64Lines struct {
	src  *lineSource
	out  []byte
	done bool
}

func (b *b64Lines) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.done {
			return 0, io.EOF
		}
		line, ok := b.src.next()
		if !ok || string(line) == "====" || len(line) == 0 {
			b.done = true
			continue
		}
		b.out = append(b.out[:0], bytes.TrimSpace(line)...)
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// yencParam reads one key=value of a yEnc header line; name runs to the
// end of the line (names may hold spaces).
func yencParam(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if key != "name" {
		if j := strings.IndexByte(v, ' '); j >= 0 {
			v = v[:j]
		}
	}
	return strings.TrimSpace(v)
}

// yencReader decodes yEnc data lines up to "=yend"; "=ypart" lines are
// skipped.
type yencReader struct {
	src  *lineSource
	out  []byte
	done bool
}

func (y *yencReader) Read(p []byte) (int, error) {
	for len(y.out) == 0 {
		if y.done {
			return 0, io.EOF
		}
		line, ok := y.src.next()
		switch {
		case !ok || bytes.HasPrefix(line, []byte("=yend")):
			y.done = true
			continue
		case bytes.HasPrefix(line, []byte("=ypart ")):
			continue
		}
		out := y.out[:0]
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c == '=' && i+1 < len(line) {
				i++
				c = line[i] - 64
			}
			out = append(out, c-42)
		}
		y.out = out
	}
	n := copy(p, y.out)
	y.out = y.out[n:]
	return n, nil
}

// The BinHex 4.0 alphabet.
const binhexAlphabet = "!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"

var binhexValue = func() [256]int8 {
	var t [256]int8
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(binhexAlphabet); i++ {
		t[binhexAlphabet[i]] = int8(i)
	}
	return t
}()

// binhexText yields the 6-bit characters between the block's colons.
type binhexText struct {
	src     *lineSource
	started bool
	done    bool
	line    []byte
}

func (b *binhexText) nextChar() (byte, bool) {
	for {
		if b.done {
			return 0, false
		}
		if len(b.line) == 0 {
			l, ok := b.src.next()
			if !ok {
				b.done = true
				return 0, false
			}
			b.line = l
			continue
		}
		c := b.line[0]
		b.line = b.line[1:]
		switch {
		case c == ':':
			if b.started {
				b.done = true
				return 0, false
			}
			b.started = true
		case !b.started, c == ' ', c == '\t':
		default:
			if v := binhexValue[c]; v >= 0 {
				return byte(v), true
			}
			b.done = true // not BinHex any more
			return 0, false
		}
	}
}

// binhexBytes turns 6-bit characters into bytes and undoes the run-length
// encoding (0x90 n repeats the previous byte n-1 more times).
type binhexBytes struct {
	t      *binhexText
	acc    uint32
	bits   uint
	prev   byte
	repeat int
}

func (b *binhexBytes) raw() (byte, bool) {
	for b.bits < 8 {
		v, ok := b.t.nextChar()
		if !ok {
			return 0, false
		}
		b.acc = b.acc<<6 | uint32(v)
		b.bits += 6
	}
	b.bits -= 8
	return byte(b.acc >> b.bits), true
}

func (b *binhexBytes) ReadByte() (byte, error) {
	if b.repeat > 0 {
		b.repeat--
		return b.prev, nil
	}
	c, ok := b.raw()
	if !ok {
		return 0, io.EOF
	}
	if c == 0x90 {
		n, ok := b.raw()
		if !ok {
			return 0, io.EOF
		}
		if n == 0 {
			b.prev = 0x90
			return 0x90, nil
		}
		if n == 1 {
			return b.ReadByte()
		}
		b.repeat = int(n) - 2
		return b.prev, nil
	}
	b.prev = c
	return c, nil
}

func (b *binhexBytes) Read(p []byte) (int, error) {
	for i := range p {
		c, err := b.ReadByte()
		if err != nil {
			if i == 0 {
				return 0, err
			}
			return i, nil
		}
		p[i] = c
	}
	return len(p), nil
}

type binhex struct {
	name string
	data io.Reader
}

// newBinHex reads the header of a BinHex stream: the name, the fork
// lengths; data is the data fork.
func newBinHex(t *binhexText) (*binhex, error) {
	br := &binhexBytes{t: t}
	n, err := br.ReadByte()
	if err != nil {
		return nil, errBinHex("header")
	}
	hdr := make([]byte, int(n)+1+4+4+2+4+4+2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, errBinHex("header")
	}
	name := string(hdr[:n])
	// name, version (1), type (4), creator (4), flags (2), then the data
	// fork's length.
	dlen := int64(binary.BigEndian.Uint32(hdr[int(n)+11:]))
	return &binhex{name: name, data: io.LimitReader(br, dlen)}, nil
}

func errBinHex(what string) error {
	return fmt.Errorf("%w: binhex: truncated %s", ErrUninspectable, what)
}
