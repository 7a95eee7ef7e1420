package filter

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// parser walks the raw message once, line by line, keeping a stack of the
// open multipart boundaries. It never holds more than one header block and
// one line buffer in memory, so its cost grows with the message size, and
// every limit is checked at the point the input would pass it.
type parser struct {
	m   *Message
	lim Limits
	lr  lineReader

	frames []*frame // open multipart containers, innermost last
	open   []*Part  // parts whose body has not ended, innermost last

	hdr      *Part // part whose header is being read, or nil
	hdrBuf   []byte
	hdrLines int
	prevEOL  int // length of the previous line's terminator
	stopped  bool
	bareCR   bool // a bare CR was reported

	// A malformed line in a header waits here until the next line tells
	// whether it was junk inside the header (a field follows) or the first
	// line of a body that had no blank line before it.
	pending bool
	pend    []byte
	pendAt  int64
}

type frame struct {
	part       *Part
	boundaries [][]byte // "--" + boundary, each one honoured
	children   int
}

type lineReader struct {
	br        *bufio.Reader
	off       int64 // offset of the next unread byte
	lineStart bool  // the next byte starts a line
}

const lineBuf = 64 << 10

// noBodySkip turns skipBody off: the tests compare the parses with and
// without it.
var noBodySkip = false

// next returns the next line with its terminator: "\n" (with any CRs
// before it), or a run of CRs not followed by "\n" (a bare CR, which
// some clients read as a line break, so the parser does too). A line
// longer than the buffer comes back in pieces; whole reports whether this
// piece started a line. The line is valid until the next call.
func (lr *lineReader) next() (line []byte, start int64, whole, bareCR bool, err error) {
	start, whole = lr.off, lr.lineStart
	from, want := 0, max(lr.br.Buffered(), 1)
	for {
		data, perr := lr.br.Peek(min(want, lr.br.Size()))
		n, cr, next, ok := lineEnd(data, from, perr != nil)
		if ok {
			line, bareCR = data[:n], cr
			lr.lineStart = true
			break
		}
		from, want = next, len(data)+1 // undecided: read more
		if perr == nil && want > lr.br.Size() {
			perr = bufio.ErrBufferFull
		}
		if perr != nil {
			line = data
			if perr == bufio.ErrBufferFull {
				lr.lineStart = false
			} else {
				lr.lineStart, err = true, perr
			}
			break
		}
	}
	lr.br.Discard(len(line)) //nolint:errcheck // the bytes were peeked
	lr.off += int64(len(line))
	return line, start, whole, bareCR, err
}

// skipBody consumes, from the start of a line, the buffered whole lines
// of a body that no delimiter can be: up to the next line that begins
// with '-', or to the last line end buffered, and never past a bare CR
// (the end of a line that next then judges). It returns the bytes
// consumed and the terminator length of the last line consumed. A body
// line is nothing to the parser unless it is a delimiter, so a base64
// attachment's thousands of lines cost one search, not a call each (a
// tenth of the zip tier's parse was the per-line loop).
func (lr *lineReader) skipBody() (n, eol int) {
	data, _ := lr.br.Peek(lr.br.Buffered())
	if len(data) == 0 || data[0] == '-' {
		return 0, 0
	}
	end := bytes.Index(data, []byte("\n-"))
	if end < 0 {
		end = bytes.LastIndexByte(data, '\n')
	}
	region := data[:end+1] // whole lines, the last ending in '\n'
	for i := 0; ; {
		c := bytes.IndexByte(region[i:], '\r')
		if c < 0 {
			break
		}
		c += i
		j := c + 1
		for region[j] == '\r' { // the region ends in '\n': j stays inside
			j++
		}
		if region[j] != '\n' {
			region = region[:bytes.LastIndexByte(region[:c], '\n')+1]
			break
		}
		i = j + 1
	}
	if len(region) == 0 {
		return 0, 0
	}
	lr.br.Discard(len(region)) //nolint:errcheck // the bytes were peeked
	lr.off += int64(len(region))
	return len(region), eolLen(region)
}

// lineEnd finds the end of the first line of data, scanning from from.
// When it cannot tell yet (no terminator, or CRs at the very end and more
// input may follow), ok is false and next is where to scan from.
func lineEnd(data []byte, from int, atEnd bool) (n int, bareCR bool, next int, ok bool) {
	limit := len(data)
	nl := bytes.IndexByte(data[from:], '\n')
	if nl >= 0 {
		nl += from
		limit = nl
	}
	cr := bytes.IndexByte(data[from:limit], '\r')
	if cr < 0 {
		if nl >= 0 {
			return nl + 1, false, 0, true
		}
		return 0, false, len(data), false
	}
	cr += from
	j := cr
	for j < len(data) && data[j] == '\r' {
		j++
	}
	switch {
	case j < len(data) && data[j] == '\n':
		return j + 1, false, 0, true
	case j < len(data), atEnd:
		return j, true, 0, true
	}
	return 0, false, cr, false
}

// eolLen is the length of a line's terminator: "\n" and the CRs before
// it, or a run of bare CRs.
func eolLen(line []byte) int {
	n := len(line)
	i := n
	if i > 0 && line[i-1] == '\n' {
		i--
	}
	for i > 0 && line[i-1] == '\r' {
		i--
	}
	return n - i
}

// lineReaders holds the read buffers of parses: a parse copies what it
// keeps of a line, so its buffer is free when run returns (a quarter of
// what the zip tier's message allocated, and a buffer the size of the
// message for a small one).
var lineReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, lineBuf) }}

func (p *parser) run() {
	src := io.NewSectionReader(p.m.raw, 0, p.m.size)
	br := lineReaders.Get().(*bufio.Reader)
	br.Reset(src)
	defer func() {
		br.Reset(nil)
		lineReaders.Put(br)
	}()
	p.lr = lineReader{br: br, lineStart: true}
	top := p.newPart(nil, 0)
	if top == nil {
		return
	}
	first := true
	for !p.stopped {
		if p.hdr == nil && p.lr.lineStart && !noBodySkip {
			if n, eol := p.lr.skipBody(); n > 0 {
				p.prevEOL = eol
				continue
			}
		}
		line, start, whole, bareCR, err := p.lr.next()
		if bareCR && !p.bareCR && !p.inBinary() {
			p.bareCR = true
			p.defect(DefectBareCR, p.current(), "at offset "+strconv.FormatInt(start+int64(len(line)-eolLen(line)), 10))
		}
		if len(line) > 0 {
			if first && whole && bytes.HasPrefix(line, []byte("From ")) && p.hdr == top && len(p.hdrBuf) == 0 {
				// An mbox separator line, not a header.
				p.defect(DefectMbox, "", "")
				top.headerStart = p.lr.off
			} else {
				p.line(line, start, whole)
			}
			first = false
		}
		if err != nil {
			if err != io.EOF {
				p.fail(err)
			}
			break
		}
	}
	p.finish(p.lr.off)
}

// inBinary reports a line inside the body of a part sent as binary,
// where a CR is data, not a line ending gone wrong.
func (p *parser) inBinary() bool {
	if p.hdr != nil || len(p.open) == 0 {
		return false
	}
	return p.open[len(p.open)-1].Encoding == "binary"
}

// current is the path of the innermost open part.
func (p *parser) current() string {
	if len(p.open) == 0 {
		return ""
	}
	return p.open[len(p.open)-1].Path
}

func (p *parser) fail(err error) {
	if p.m.err == nil {
		p.m.err = err
	}
	p.stopped = true
}

func (p *parser) defect(k DefectKind, part, detail string) {
	if len(p.m.defects) < maxDefects {
		p.m.defects = append(p.m.defects, Defect{Kind: k, Part: part, Detail: detail})
	}
}

func (p *parser) line(line []byte, start int64, whole bool) {
	if whole && len(p.frames) > 0 && len(line) > 2 && line[0] == '-' && line[1] == '-' {
		if k, closing := p.matchBoundary(line); k >= 0 {
			p.boundary(k, closing, start, int64(len(line)))
			p.prevEOL = eolLen(line)
			return
		}
	}
	if p.hdr != nil {
		p.headerLine(line, start, whole)
	}
	p.prevEOL = eolLen(line)
}

// matchBoundary finds the innermost open frame whose delimiter the line is.
func (p *parser) matchBoundary(line []byte) (k int, closing bool) {
	for k := len(p.frames) - 1; k >= 0; k-- {
		for _, b := range p.frames[k].boundaries {
			if !bytes.HasPrefix(line, b) {
				continue
			}
			rest := line[len(b):]
			closing := bytes.HasPrefix(rest, []byte("--"))
			if closing {
				rest = rest[2:]
			}
			if len(bytes.Trim(rest, " \t\r\n")) == 0 {
				return k, closing
			}
			if closing {
				// "--b--" with text after it: a close delimiter to the
				// clients that match by prefix, and an odd line to none.
				p.defect(DefectDelimiter, p.frames[k].part.Path, "text after the close delimiter "+quoteLine(line))
				return k, true
			}
		}
	}
	return -1, false
}

// boundary handles a delimiter line of frame k at offset start.
func (p *parser) boundary(k int, closing bool, start, n int64) {
	f := p.frames[k]
	for _, inner := range p.frames[k+1:] {
		p.defect(DefectUnterminated, inner.part.Path, "closed by the delimiter of part "+displayPath(f.part.Path))
	}
	end := start - int64(p.prevEOL)
	// Close every part opened inside the container: its current child and
	// anything nested in that child.
	for i := len(p.open) - 1; i >= 0 && p.open[i] != f.part; i-- {
		p.closePart(p.open[i], end)
		p.open = p.open[:i]
	}
	p.frames = p.frames[:k+1]
	if closing {
		p.frames = p.frames[:k]
		return
	}
	f.children++
	p.newPart(f.part, start+n)
}

// newPart opens a part whose header starts at off and makes it the one
// whose header is read next.
func (p *parser) newPart(parent *Part, off int64) *Part {
	depth, path := 0, ""
	if parent != nil {
		depth = parent.Depth + 1
		n := len(parent.Children) + 1
		if parent.Path == "" {
			path = strconv.Itoa(n)
		} else {
			path = parent.Path + "." + strconv.Itoa(n)
		}
	}
	if depth > p.lim.MaxDepth {
		p.fail(&LimitError{Limit: LimitDepth, Max: int64(p.lim.MaxDepth), Part: path})
		return nil
	}
	if len(p.m.parts) >= p.lim.MaxParts {
		p.fail(&LimitError{Limit: LimitParts, Max: int64(p.lim.MaxParts), Part: path})
		return nil
	}
	part := &Part{Path: path, Depth: depth, Parent: parent, msg: p.m, headerStart: off, bodyOff: off, bodyEnd: -1}
	if parent != nil {
		parent.Children = append(parent.Children, part)
	}
	p.m.parts = append(p.m.parts, part)
	p.open = append(p.open, part)
	p.hdr = part
	p.hdrBuf = p.hdrBuf[:0]
	p.hdrLines = 0
	p.pending = false
	return part
}

// headerLine adds a line to the header being read. A malformed line is
// held back (pending) until the next line decides: a field after it means
// it was junk inside the header, skipped as the most lenient clients skip
// it, so that no field after it goes unread; another malformed line means
// the body began at the first one, without a blank line.
func (p *parser) headerLine(line []byte, start int64, whole bool) {
	part := p.hdr
	if int64(len(p.hdrBuf)+len(line)) > p.lim.MaxHeaderBytes {
		p.fail(&LimitError{Limit: LimitHeaderBytes, Max: p.lim.MaxHeaderBytes, Part: part.Path})
		return
	}
	if !whole {
		// The rest of a line longer than the buffer.
		if !p.pending {
			p.appendHeader(line)
		}
		return
	}
	trimmed := bytes.TrimRight(line, "\r\n")
	if len(trimmed) == 0 {
		if p.pending && p.hdrLines == 0 {
			// Not a header at all: the body starts at the first line.
			p.defect(DefectHeaderSyntax, part.Path, "no header, body starts with "+quoteLine(p.pend))
			p.endHeader(p.pendAt, true)
			return
		}
		p.skipPending()
		p.endHeader(start+int64(len(line)), true)
		return
	}
	first := p.hdrLines == 0 && !p.pending
	switch {
	case trimmed[0] == ' ' || trimmed[0] == '\t':
		if p.pending {
			return // folded into the junk line
		}
		if first {
			lead := bytes.TrimLeft(trimmed, " \t")
			if len(lead) == 0 || !validField(lead) {
				break
			}
			// A first line that is folded: read it as the field it holds.
			p.defect(DefectHeaderSyntax, part.Path, "continuation as the first line "+quoteLine(lead))
			p.appendHeader(line[len(trimmed)-len(lead):])
			p.hdrLines++
			return
		}
		p.appendHeader(line)
		return
	case validField(trimmed):
		p.skipPending()
		p.appendHeader(line)
		p.hdrLines++
		return
	}
	// A malformed line.
	if badField(trimmed) {
		// A field with a broken name ("Content Type:", 8-bit, NUL): no
		// body line looks like that; skip it and go on with the header.
		p.skipPending()
		p.defect(DefectHeaderSyntax, part.Path, "malformed field name "+quoteLine(trimmed)+" skipped")
		return
	}
	complete := p.lr.lineStart
	if !p.pending && complete && !bytes.HasPrefix(trimmed, []byte("--")) {
		p.pending, p.pendAt = true, start
		p.pend = append(p.pend[:0], line...)
		return
	}
	// Two malformed lines in a row, a possible delimiter, or a line too
	// long to hold: the body began at the first of them.
	at := start
	var held []byte
	if p.pending {
		at, held = p.pendAt, p.pend
	}
	p.defect(DefectHeaderSyntax, part.Path, "no blank line after the header, body starts with "+quoteLine(line))
	p.pending = false
	p.endHeader(at, true)
	if held != nil {
		// Feed the held line again: it may start the header of an
		// encapsulated message, or (in pieces) nothing at all.
		cur := append([]byte(nil), line...)
		p.line(held, at, true)
		p.prevEOL = eolLen(held)
		p.line(cur, start, true)
		return
	}
	p.line(line, start, true)
}

// skipPending drops a held malformed line: it was junk inside a header.
func (p *parser) skipPending() {
	if p.pending {
		p.pending = false
		p.defect(DefectHeaderSyntax, p.hdr.Path, "malformed header line "+quoteLine(p.pend)+" skipped")
	}
}

// appendHeader adds a line to the header block with its terminator made
// CRLF, whatever it was (LF, CRs, a bare CR), so go-message reads it.
func (p *parser) appendHeader(line []byte) {
	n := eolLen(line)
	p.hdrBuf = append(p.hdrBuf, line[:len(line)-n]...)
	if n > 0 {
		p.hdrBuf = append(p.hdrBuf, '\r', '\n')
	}
}

func displayPath(path string) string {
	if path == "" {
		return "0"
	}
	return path
}

// validField reports whether line is a header field: a non-empty name of
// printable ASCII without spaces (spaces before the colon are allowed, as
// RFC 822 did) and a colon.
func validField(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	key := bytes.TrimRight(line[:i], " \t")
	if len(key) == 0 {
		return false
	}
	for _, c := range key {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// badField reports a line that tries to be a field: a colon after a short
// name that starts with a letter, holds no tab and at most one space.
func badField(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 || i > 76 {
		return false
	}
	c := line[0]
	if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') || bytes.IndexByte(line[:i], '\t') >= 0 {
		return false
	}
	return bytes.Count(bytes.TrimRight(line[:i], " "), []byte(" ")) <= 1
}

// endHeader parses the collected header of p.hdr; its body starts at body.
func (p *parser) endHeader(body int64, descend bool) {
	part := p.hdr
	p.hdr = nil
	p.pending = false
	part.bodyOff = body
	block := append(p.hdrBuf, '\r', '\n')
	h, err := readHeaderBlock(block)
	if err != nil {
		p.defect(DefectHeaderSyntax, part.Path, err.Error())
	}
	part.Header = h
	p.describe(part)
	if !descend {
		return
	}
	switch {
	case part.IsMultipart():
		bounds := p.boundaries(part)
		if len(bounds) == 0 {
			return
		}
		f := &frame{part: part}
		for _, b := range bounds {
			f.boundaries = append(f.boundaries, []byte("--"+b))
		}
		p.frames = append(p.frames, f)
	case part.IsMessage():
		switch part.Encoding {
		case "7bit", "8bit", "binary", "":
			p.newPart(part, body)
		default:
			p.defect(DefectEncoding, part.Path, "encoded "+part.ContentType+" ("+part.Encoding+") not descended")
		}
	}
}

// maxBoundary bounds a boundary; RFC 2046 allows 70 characters.
const maxBoundary = 256

// boundaries returns every boundary of a multipart part: each distinct
// boundary parameter of each of its Content-Type fields, or, when it has
// none, one guessed from the first line of its body that starts with "--",
// as lenient clients guess.
func (p *parser) boundaries(part *Part) []string {
	var out []string
	for _, v := range part.Header.Values("Content-Type") {
		mt, params := parseParamHeader(v)
		if !strings.HasPrefix(mt, "multipart/") {
			continue
		}
		vals := extendedValues(params, "boundary")
		for _, pr := range params {
			if pr.key == "boundary" {
				vals = append(vals, pr.value)
			}
		}
		for _, v := range vals {
			if v != "" && len(v) <= maxBoundary && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	if len(out) > 1 {
		p.defect(DefectBoundaryParams, part.Path, strconv.Itoa(len(out))+" boundaries")
	}
	if len(out) > 0 {
		return out
	}
	if g := p.guessBoundary(part.bodyOff); g != "" {
		p.defect(DefectNoBoundary, part.Path, "guessed "+quoteLine([]byte(g)))
		return []string{g}
	}
	p.defect(DefectNoBoundary, part.Path, "no delimiter line found")
	return nil
}

// guessBoundary reads up to 8 KiB of a body for its first "--" line.
func (p *parser) guessBoundary(off int64) string {
	buf := make([]byte, 8<<10)
	n, _ := p.m.raw.ReadAt(buf, off)
	for _, l := range bytes.Split(buf[:n], []byte("\n")) {
		l = bytes.TrimRight(l, " \t\r")
		if len(l) > 2 && l[0] == '-' && l[1] == '-' && len(l) <= maxBoundary+2 {
			b := bytes.TrimSuffix(l[2:], []byte("--"))
			if len(b) > 0 {
				return string(b)
			}
		}
	}
	return ""
}

// contentRank orders the readings of a part's type by what they can hide:
// a container hides most, then a file, then text.
func contentRank(mt string, params []param) int {
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		return 4
	case mt == "message/rfc822" || mt == "message/global":
		return 3
	case mt == "text/plain":
		return 0
	case strings.HasPrefix(mt, "text/"):
		return 1
	}
	return 2
}

// describe fills in the typed fields of a part from its header. Where the
// header says two things (two Content-Type fields), the part takes the
// reading that can hide most and keeps every name of every reading.
func (p *parser) describe(part *Part) {
	h := part.Header
	cts := h.Values("Content-Type")
	var mt string
	var ctParams, allCT []param
	best := -1
	for _, ct := range cts {
		m, params := parseParamHeader(ct)
		allCT = append(allCT, params...)
		if m == "" || !strings.Contains(m, "/") {
			if ct != "" {
				p.defect(DefectContentType, part.Path, quoteLine([]byte(ct)))
			}
			continue
		}
		if r := contentRank(m, params); r > best {
			best, mt, ctParams = r, m, params
		}
	}
	if len(cts) > 1 {
		p.defect(DefectDuplicateHeader, part.Path, strconv.Itoa(len(cts))+" Content-Type fields")
	}
	if mt == "" {
		mt = "text/plain"
		if part.Parent != nil && part.Parent.ContentType == "multipart/digest" {
			mt = "message/rfc822"
		}
	}
	part.ContentType = mt
	part.Params = make(map[string]string, len(ctParams))
	for _, pr := range ctParams {
		if _, ok := part.Params[pr.key]; !ok {
			part.Params[pr.key] = pr.value
		}
	}

	cds := h.Values("Content-Disposition")
	if len(cds) > 1 {
		p.defect(DefectDuplicateHeader, part.Path, strconv.Itoa(len(cds))+" Content-Disposition fields")
	}
	var dParams []param
	for _, cd := range cds {
		disp, params := parseParamHeader(cd)
		dParams = append(dParams, params...)
		if part.Disposition == "" || disp == "attachment" {
			part.Disposition = disp
		}
	}

	p.encodings(part, h.Values("Content-Transfer-Encoding"))

	names := candidateNames(dParams, "filename", "name")
	names = append(names, candidateNames(allCT, "name", "filename")...)
	if isUUEncoding(part.Encoding) {
		if n := p.uuName(part); n != "" {
			names = append(names, n)
		}
	}
	part.Names = dedupe(names)
	if len(part.Names) > 1 {
		p.defect(DefectParams, part.Path, strconv.Itoa(len(part.Names))+" different file names")
	}
}

// encodings sets the part's transfer encoding and every reading of it: a
// decorated value reads as what it decorates, an unknown one as raw bytes
// and as base64, two fields as both.
func (p *parser) encodings(part *Part, values []string) {
	if len(values) > 1 {
		p.defect(DefectDuplicateHeader, part.Path, strconv.Itoa(len(values))+" Content-Transfer-Encoding fields")
	}
	var encs []string
	add := func(e string) {
		if !slices.Contains(encs, e) {
			encs = append(encs, e)
		}
	}
	for _, v := range values {
		enc, decorated := normaliseEncoding(v)
		switch {
		case enc == "":
			continue
		case decorated:
			p.defect(DefectEncoding, part.Path, "decorated "+quoteLine([]byte(v))+" read as "+enc)
		case !knownEncoding(enc):
			p.defect(DefectEncoding, part.Path, "unknown "+quoteLine([]byte(v)))
		}
		add(enc)
	}
	if len(encs) == 0 {
		encs = []string{"7bit"}
	}
	part.Encoding = encs[0]
	for _, e := range encs {
		if !knownEncoding(e) {
			add("base64")
		}
	}
	part.encodings = encs
}

// normaliseEncoding undoes the decorations mail in the wild puts on a
// Content-Transfer-Encoding value: case, quotes, comments, parameters.
func normaliseEncoding(v string) (enc string, decorated bool) {
	s := strings.ToLower(strings.TrimSpace(v))
	orig := s
	for {
		i := strings.IndexByte(s, '(')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], ')')
		if j < 0 {
			s = s[:i]
			break
		}
		s = s[:i] + " " + s[i+j+1:]
	}
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	s = strings.Trim(strings.TrimSpace(s), `"'`)
	if f := strings.Fields(s); len(f) > 0 {
		s = f[0]
	} else {
		s = ""
	}
	return s, s != orig
}

func knownEncoding(enc string) bool {
	switch enc {
	case "7bit", "8bit", "binary", "base64", "quoted-printable":
		return true
	}
	return isUUEncoding(enc)
}

func dedupe(names []string) []string {
	var out []string
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	return out
}

// uuName reads the "begin MODE NAME" line at the start of a uuencoded body.
func (p *parser) uuName(part *Part) string {
	buf := make([]byte, 1024)
	n, _ := p.m.raw.ReadAt(buf, part.bodyOff)
	for _, l := range strings.Split(string(buf[:n]), "\n") {
		l = strings.TrimRight(l, "\r")
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "begin" {
			return strings.Join(f[2:], " ")
		}
	}
	return ""
}

func (p *parser) closePart(part *Part, end int64) {
	if p.hdr == part {
		// A boundary (or the end) came before the blank line; a held
		// malformed line was the start of the body.
		at := end
		if p.pending {
			at = p.pendAt
		}
		p.endHeader(max(min(at, end), part.headerStart), false)
	}
	if end < part.bodyOff {
		end = part.bodyOff
	}
	part.bodyEnd = end
}

// finish closes whatever is open at the end of input (or where a limit
// stopped the parse).
func (p *parser) finish(end int64) {
	if p.hdr != nil && !errors.Is(p.m.err, ErrLimit) {
		at := end
		if p.pending {
			at = p.pendAt
			p.defect(DefectHeaderSyntax, p.hdr.Path, "no blank line after the header, body starts with "+quoteLine(p.pend))
		}
		p.endHeader(at, false)
	}
	p.hdr = nil
	if !p.stopped {
		for _, f := range p.frames {
			p.defect(DefectUnterminated, f.part.Path, "no closing delimiter before the end of the message")
		}
	}
	for i := len(p.open) - 1; i >= 0; i-- {
		part := p.open[i]
		if part.Header.Header.Len() == 0 && part.ContentType == "" {
			// Stopped while reading its header: describe what we have.
			part.ContentType = "text/plain"
			part.Encoding = "7bit"
			part.encodings = []string{"7bit"}
			part.Params = map[string]string{}
		}
		p.closePart(part, end)
	}
	p.open = nil
}
