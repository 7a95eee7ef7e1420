package filter

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// Header names a verdict adds.
const (
	HeaderSpamStatus = "X-Spam-Status"
	HeaderVerdict    = "X-Portcullis-Verdict"
)

// OwnHeaders returns the names of the header fields a Portcullis gateway
// writes. Inbound copies of them are forgeries (a sender must not be able
// to say "X-Spam-Status: No"): pass them to WithHeaders to remove. The
// slice is new on every call.
func OwnHeaders() []string { return []string{HeaderSpamStatus, HeaderVerdict} }

// ErrHeaderName is returned by a WithHeaders reader when a header to add
// has a name that is not a valid field name (RFC 5322: printable ASCII, no
// colon, no space).
var ErrHeaderName = errors.New("filter: invalid header field name")

// maxFieldLine is where a header field written by WithHeaders is folded
// (RFC 5322 recommends 78 characters a line).
const maxFieldLine = 78

// WithHeaders returns the message read from raw with the header fields of
// add prepended, in order, and every field of the original header whose
// name is one of remove (case-insensitive; "Name :" with space before the
// colon too) left out together with its continuation lines. Everything
// else — the other fields, their order and folding, the blank line and the
// body — is passed through byte for byte.
//
// It streams: memory stays a few kilobytes whatever the message size or
// the length of its lines. The added fields take the line ending of the
// message's first line (CRLF unless that line ends in a bare LF within
// the first 4 KiB; a longer first line, which RFC 5322 does not allow,
// gets CRLF); their
// values are made one logical line (CR and LF become spaces) and folded
// at spaces or commas past 78 characters.
//
// A gateway writes a verdict's headers as
//
//	WithHeaders(msg.Reader(), v.Headers, OwnHeaders())
func WithHeaders(raw io.Reader, add []Header, remove []string) io.Reader {
	h := &headerReader{src: bufio.NewReaderSize(raw, 4096), add: add, remove: make(map[string]bool, len(remove))}
	for _, n := range remove {
		h.remove[strings.ToLower(strings.TrimSpace(n))] = true
	}
	return h
}

type headerState int

const (
	statePrefix headerState = iota // the added fields are not written yet
	stateLineStart
	stateInLine
	stateBody
)

type headerReader struct {
	src    *bufio.Reader
	add    []Header
	remove map[string]bool

	state   headerState
	drop    bool   // the current field is removed
	pending []byte // output not yet returned; may alias src's buffer
	err     error
}

func (h *headerReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(h.pending) == 0 && h.err == nil {
		if h.state == stateBody {
			return h.src.Read(p)
		}
		h.step()
	}
	if len(h.pending) > 0 {
		n := copy(p, h.pending)
		h.pending = h.pending[n:]
		return n, nil
	}
	return 0, h.err
}

// step produces the next piece of output, reading the source at most once
// (pending may alias the reader's buffer until the next read).
func (h *headerReader) step() {
	switch h.state {
	case statePrefix:
		h.state = stateLineStart
		h.pending, h.err = h.prefix()
	case stateLineStart:
		b, err := h.src.Peek(peekField)
		switch {
		case len(b) == 0:
			h.err = orEOF(err)
			return
		case b[0] == '\n' || (b[0] == '\r' && len(b) > 1 && b[1] == '\n'):
			h.state = stateBody // the blank line, passed on by the body
			return
		case b[0] == ' ' || b[0] == '\t':
			// A continuation line belongs to the field before it.
		default:
			h.drop = h.removed(b)
		}
		h.state = stateInLine
	case stateInLine:
		chunk, err := h.src.ReadSlice('\n')
		if len(chunk) > 0 && chunk[len(chunk)-1] == '\n' {
			h.state = stateLineStart
		}
		if !h.drop {
			h.pending = chunk
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			h.err = err
		}
	}
}

// peekField is how much of a line is looked at for its field name.
const peekField = 1024

// removed reports whether the field line starting b is one to remove: its
// name, before the colon with any space before the colon trimmed, is in
// the set. A line without a colon is no field, unless it is one of the
// names followed by more space than was peeked: a parser that reads on
// may find its colon, so it goes (the most dangerous reading).
func (h *headerReader) removed(b []byte) bool {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	} else if len(b) == peekField && bytes.IndexByte(b, ':') < 0 {
		return h.remove[strings.ToLower(string(bytes.TrimRight(b, " \t")))]
	}
	colon := bytes.IndexByte(b, ':')
	if colon < 0 {
		return false
	}
	name := strings.ToLower(string(bytes.TrimRight(b[:colon], " \t")))
	return h.remove[name]
}

// prefix renders the fields to add, with the message's line ending.
func (h *headerReader) prefix() ([]byte, error) {
	if len(h.add) == 0 {
		return nil, nil
	}
	eol := "\r\n"
	if b, _ := h.src.Peek(4096); len(b) > 0 {
		if i := bytes.IndexByte(b, '\n'); i == 0 || (i > 0 && b[i-1] != '\r') {
			eol = "\n"
		}
	}
	var out []byte
	for _, f := range h.add {
		if !validFieldName(f.Name) {
			return nil, ErrHeaderName
		}
		out = appendField(out, f.Name, f.Value, eol)
	}
	return out, nil
}

func validFieldName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c <= ' ' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}

// appendField writes "Name: value" folded at spaces, or after commas when
// a run has no space, so that lines stay near maxFieldLine.
func appendField(out []byte, name, value, eol string) []byte {
	value = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, value)
	value = strings.TrimSpace(value)
	out = append(out, name...)
	out = append(out, ':')
	col := len(name) + 1
	if value == "" {
		return append(out, eol...)
	}
	for _, word := range strings.Split(value, " ") {
		if word != "" && col+1+len(word) > maxFieldLine && col > len(name)+1 {
			out = append(out, eol...)
			col = 0
		}
		out = append(out, ' ')
		col++
		for col+len(word) > maxFieldLine {
			// No space in sight: fold after a comma, if there is one.
			cut := strings.LastIndexByte(word[:max(0, min(len(word), maxFieldLine-col))], ',')
			if cut < 0 {
				break
			}
			out = append(out, word[:cut+1]...)
			out = append(out, eol...)
			out = append(out, '\t')
			word, col = word[cut+1:], 1
		}
		out = append(out, word...)
		col += len(word)
	}
	return append(out, eol...)
}

func orEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}
