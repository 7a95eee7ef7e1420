package filter

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
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
}

type frame struct {
	part     *Part
	boundary []byte // "--" + boundary
	children int
}

type lineReader struct {
	br        *bufio.Reader
	off       int64 // offset of the next unread byte
	lineStart bool  // the next byte starts a line
}

const lineBuf = 64 << 10

// next returns the next line with its terminator. A line longer than the
// buffer comes back in pieces; whole reports whether this piece started a
// line.
func (lr *lineReader) next() (line []byte, start int64, whole bool, err error) {
	start = lr.off
	whole = lr.lineStart
	line, err = lr.br.ReadSlice('\n')
	lr.off += int64(len(line))
	switch {
	case err == bufio.ErrBufferFull:
		lr.lineStart = false
		err = nil
	case err == nil:
		lr.lineStart = true
	}
	return line, start, whole, err
}

func eolLen(line []byte) int {
	n := len(line)
	switch {
	case n >= 2 && line[n-2] == '\r' && line[n-1] == '\n':
		return 2
	case n >= 1 && line[n-1] == '\n':
		return 1
	}
	return 0
}

func (p *parser) run() {
	p.lr = lineReader{
		br:        bufio.NewReaderSize(io.NewSectionReader(p.m.raw, 0, p.m.size), int(min(lineBuf, max(p.m.size, 256)))),
		lineStart: true,
	}
	top := p.newPart(nil, 0)
	if top == nil {
		return
	}
	first := true
	for !p.stopped {
		line, start, whole, err := p.lr.next()
		if len(line) > 0 {
			if first && whole && bytes.HasPrefix(line, []byte("From ")) && p.hdr == top && len(p.hdrBuf) == 0 {
				// An mbox separator line, not a header.
				p.defect("mbox From_ line skipped")
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

func (p *parser) fail(err error) {
	if p.m.err == nil {
		p.m.err = err
	}
	p.stopped = true
}

func (p *parser) defect(s string) {
	if len(p.m.defects) < 100 {
		p.m.defects = append(p.m.defects, s)
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
	if p.hdr != nil && p.headerLine(line, start, whole) && len(p.frames) > 0 {
		// The header ended without a blank line and this line is body:
		// it may be the first delimiter of the container just opened.
		if k, closing := p.matchBoundary(line); k >= 0 && whole {
			p.boundary(k, closing, start, int64(len(line)))
		}
	}
	p.prevEOL = eolLen(line)
}

// matchBoundary finds the innermost open frame whose delimiter the line is.
func (p *parser) matchBoundary(line []byte) (k int, closing bool) {
	for k := len(p.frames) - 1; k >= 0; k-- {
		b := p.frames[k].boundary
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
	}
	return -1, false
}

// boundary handles a delimiter line of frame k at offset start.
func (p *parser) boundary(k int, closing bool, start, n int64) {
	f := p.frames[k]
	if len(p.frames)-1 > k {
		p.defect("missing closing boundary")
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
	return part
}

// headerLine adds a line to the header being read. It returns true when the
// line turned out to be the first line of the body.
func (p *parser) headerLine(line []byte, start int64, whole bool) (body bool) {
	part := p.hdr
	if int64(len(p.hdrBuf)+len(line)) > p.lim.MaxHeaderBytes {
		p.fail(&LimitError{Limit: LimitHeaderBytes, Max: p.lim.MaxHeaderBytes, Part: part.Path})
		return false
	}
	if whole {
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 {
			p.endHeader(start+int64(len(line)), true)
			return false
		}
		if !validHeaderLine(trimmed, p.hdrLines == 0) {
			// No blank line between header and body: the body starts here.
			p.defect("header ended without a blank line in part " + displayPath(part.Path))
			p.endHeader(start, true)
			return true
		}
		p.hdrLines++
	}
	p.hdrBuf = append(p.hdrBuf, line...)
	return false
}

func displayPath(path string) string {
	if path == "" {
		return "0"
	}
	return path
}

// validHeaderLine reports whether line can be part of a header block.
func validHeaderLine(line []byte, first bool) bool {
	if line[0] == ' ' || line[0] == '\t' {
		return !first
	}
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return false
	}
	key := bytes.TrimRight(line[:i], " \t")
	for _, c := range key {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// endHeader parses the collected header of p.hdr; its body starts at body.
func (p *parser) endHeader(body int64, descend bool) {
	part := p.hdr
	p.hdr = nil
	part.bodyOff = body
	block := append(p.hdrBuf, '\r', '\n')
	h, err := readHeaderBlock(block)
	if err != nil {
		p.defect("malformed header in part " + displayPath(part.Path) + ": " + err.Error())
	}
	part.Header = h
	p.describe(part)
	if !descend {
		return
	}
	switch {
	case part.IsMultipart():
		b := part.Params["boundary"]
		if b == "" {
			p.defect("multipart without boundary in part " + displayPath(part.Path))
			return
		}
		p.frames = append(p.frames, &frame{part: part, boundary: []byte("--" + b)})
	case part.IsMessage():
		switch part.Encoding {
		case "7bit", "8bit", "binary", "":
			p.newPart(part, body)
		default:
			p.defect("encoded message/rfc822 not descended in part " + displayPath(part.Path))
		}
	}
}

// describe fills in the typed fields of a part from its header.
func (p *parser) describe(part *Part) {
	h := part.Header
	ct := h.Get("Content-Type")
	mt, ctParams := parseParamHeader(ct)
	if mt == "" || !strings.Contains(mt, "/") {
		if ct != "" {
			p.defect("unparsable Content-Type in part " + displayPath(part.Path))
		}
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
	disp, dParams := parseParamHeader(h.Get("Content-Disposition"))
	part.Disposition = disp
	enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	if enc == "" {
		enc = "7bit"
	}
	part.Encoding = enc

	names := candidateNames(dParams, "filename", "name")
	names = append(names, candidateNames(ctParams, "name", "filename")...)
	if isUUEncoding(enc) {
		if n := p.uuName(part); n != "" {
			names = append(names, n)
		}
	}
	part.Names = dedupe(names)
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
		// A boundary (or the end) came before the blank line.
		p.endHeader(max(end, part.headerStart), false)
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
		p.endHeader(end, false)
	}
	p.hdr = nil
	if len(p.frames) > 0 && !p.stopped {
		p.defect("missing closing boundary at end of message")
	}
	for i := len(p.open) - 1; i >= 0; i-- {
		part := p.open[i]
		if part.Header.Header.Len() == 0 && part.ContentType == "" {
			// Stopped while reading its header: describe what we have.
			part.ContentType = "text/plain"
			part.Encoding = "7bit"
			part.Params = map[string]string{}
		}
		p.closePart(part, end)
	}
	p.open = nil
}
