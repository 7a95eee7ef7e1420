package smtpd

import (
	"bytes"
	"errors"
	"io"
	"reflect"

	"github.com/emersion/go-smtp"
)

// The DATA stream is read in bulk where it can be. go-smtp hands a
// session a reader that takes the dot-stuffed stream one byte at a time
// from a 4 KiB bufio.Reader, itself fed through a per-byte line counter:
// 7 to 11 ns a byte, more than the default pipeline spends on a large
// text message. When the connection is a limitedConn (LimitListener's, not
// under TLS) and go-smtp's bufio.Reader holds nothing of the message yet,
// the session reads the message from the connection's own 64 KiB buffer
// instead (dotReader): whole lines are copied, the dot-unstuffing and
// end-of-data states and the line and size limits are go-smtp's own, byte
// for byte. When it is done, the connection serves go-smtp's reader the
// end-of-data line ".\r\n", so go-smtp ends DATA where the message ended
// and reads the next command from the bytes after it. In every other case
// (TLS, BDAT, a client that sent message bytes together with DATA, a
// server not made by NewServer) go-smtp's reader is used as it is.
//
// Whether go-smtp's bufio.Reader is empty is learnt without looking into
// it: the connection is armed (limitedConn.handoff), and the session
// reads one byte from go-smtp's reader. An empty bufio.Reader asks the
// connection for more, and the armed connection answers errHandoff (which
// bufio.Reader hands back once and forgets) instead of reading the
// socket: the stream is then at the start of the message, in the first
// state, because go-smtp's reader consumed nothing. A byte returned
// instead means the client sent message bytes before the 354: they are
// given to the pipeline first and the rest read through go-smtp's reader.

// States of the DATA stream, the same as go-smtp's reader (which follows
// net/textproto's), so that both readers return the same bytes.
const (
	dsBeginLine = iota // at the start of a line (the initial state)
	dsDot              // read "." at the start of a line
	dsDotCR            // read ".\r" at the start of a line
	dsCR               // read "\r"
	dsData             // in the middle of a line
	dsEOF              // read the end-of-data line ".\r\n"
)

// errHandoff is what an armed limitedConn answers to go-smtp's reader
// (see above); it never reaches the client or the pipeline.
var errHandoff = errors.New("smtpd: data handoff")

// endOfData is the end-of-data line the connection serves go-smtp's
// reader once a dotReader has read the message: its first state, then
// ".\r\n", is its end.
var endOfData = []byte(".\r\n")

// goSMTPDataReader is the type name of go-smtp's DATA reader, the one
// reader a dotReader may stand in for (BDAT's chunks come through a pipe
// and are read by go-smtp itself).
const goSMTPDataReader = "*smtp.dataReader"

// dotReader reads one message's DATA stream from a limitedConn's buffer:
// the bytes go-smtp's reader would return, with its errors.
type dotReader struct {
	c       *limitedConn
	state   int
	line    int   // the current line's length as go-smtp's lineLimitReader counts it
	maxLine int   // the line limit; 0: none
	left    int64 // bytes it may still return; negative: no limit
	err     error // sticky: the limit or the socket's error
	sockErr error // the socket's own error, for the connection's next reads
}

// bulkData returns the reader DATA is read from: a dotReader when the
// conditions of the comment above hold, else r (with the byte the probe
// read, if any). bulk reports which.
func (s *session) bulkData(r io.Reader) (_ io.Reader, d *dotReader) {
	srv := s.b.srv.Load()
	c, ok := s.c.Conn().(*limitedConn)
	if srv == nil || !ok || reflect.TypeOf(r).String() != goSMTPDataReader {
		return r, nil
	}
	var one [1]byte
	c.handoff = true
	n, err := r.Read(one[:])
	armed := c.handoff
	c.handoff = false
	if n == 0 && errors.Is(err, errHandoff) && !armed && c.last == '\n' {
		// go-smtp's reader consumed nothing (the last byte the connection
		// served it was the DATA line's end and its buffer is empty).
		d := &dotReader{c: c, line: 1, maxLine: srv.MaxLineLength, left: -1}
		if srv.MaxMessageBytes > 0 {
			d.left = srv.MaxMessageBytes
		}
		return d, d
	}
	if errors.Is(err, errHandoff) {
		err = nil // go-smtp's reader goes on from where it stopped
	}
	return &prefixReader{b: one[:n], err: err, r: r}, nil
}

// prefixReader returns b, then err if any, then what r returns.
type prefixReader struct {
	b   []byte
	err error
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.b) > 0 {
		n := copy(b, p.b)
		p.b = p.b[n:]
		return n, nil
	}
	if p.err != nil {
		return 0, p.err
	}
	return p.r.Read(b)
}

// Read implements io.Reader as go-smtp's reader does: io.EOF after the
// end-of-data line, smtp.ErrDataTooLarge past the size limit,
// smtp.ErrTooLongLine for a line over the limit, io.ErrUnexpectedEOF
// when the client closed the connection before the end.
func (d *dotReader) Read(p []byte) (int, error) {
	if d.state == dsEOF {
		return 0, io.EOF
	}
	if d.err != nil {
		return 0, d.err
	}
	if d.left == 0 {
		return 0, smtp.ErrDataTooLarge
	}
	if d.left > 0 && int64(len(p)) > d.left {
		p = p[:d.left]
	}
	n, empty := 0, 0
	for n == 0 && len(p) > 0 && d.state != dsEOF {
		in, err := d.c.peek()
		if len(in) == 0 {
			if err == nil {
				if empty++; empty < 100 {
					continue
				}
				err = io.ErrNoProgress
			}
			d.sockErr = err
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			d.err = err
			break
		}
		used, out, err := d.unstuff(p, in)
		d.c.advance(used)
		n += out
		if err != nil {
			d.err = err
			break
		}
	}
	if d.left > 0 {
		d.left -= int64(n)
	}
	if d.err != nil {
		return n, d.err
	}
	if d.state == dsEOF {
		return n, io.EOF
	}
	return n, nil
}

// unstuff moves the message bytes of in into dst, up to the end-of-data
// line, and returns how many bytes of in it used and of dst it filled
// (never more than it used: it reads at most len(dst) bytes of in).
func (d *dotReader) unstuff(dst, in []byte) (used, out int, err error) {
	if len(in) > len(dst) {
		in = in[:len(dst)]
	}
	i := 0
	for i < len(in) {
		if d.state == dsBeginLine {
			// Whole ordinary lines (no dot first, one CR, just before the
			// LF, within the line limit) pass as they are, in one copy:
			// the state and the line length are the same after each.
			start := i
			for i < len(in) {
				rest := in[i:]
				j := bytes.IndexByte(rest, '\n')
				if j < 1 || rest[0] == '.' || rest[j-1] != '\r' || (d.maxLine > 0 && 1+j > d.maxLine) ||
					bytes.IndexByte(rest[:j-1], '\r') >= 0 {
					break
				}
				i += j + 1
			}
			if i > start {
				out += copy(dst[out:], in[start:i])
				continue
			}
		}
		if d.state == dsData {
			// The bulk of a line: everything up to and with the next CR.
			run := in[i:]
			k := bytes.IndexByte(run, '\r')
			if k >= 0 {
				run = run[:k+1]
			}
			if err := d.count(run); err != nil {
				return i, out, err
			}
			out += copy(dst[out:], run)
			i += len(run)
			if k >= 0 {
				d.state = dsCR
			}
			continue
		}
		c := in[i]
		i++
		if c == '\n' {
			d.line = 0
		}
		if d.line++; d.maxLine > 0 && d.line > d.maxLine {
			return i, out, smtp.ErrTooLongLine
		}
		switch d.state {
		case dsBeginLine:
			switch c {
			case '.':
				d.state = dsDot
				continue
			case '\r':
				d.state = dsCR
			default:
				d.state = dsData
			}
		case dsDot:
			if c == '\r' {
				d.state = dsDotCR
				continue
			}
			d.state = dsData
		case dsDotCR:
			if c == '\n' {
				d.state = dsEOF
				return i, out, nil
			}
			d.state = dsData
		case dsCR:
			if c == '\n' {
				d.state = dsBeginLine
			} else {
				d.state = dsData
			}
		}
		dst[out] = c
		out++
	}
	return i, out, nil
}

// count adds b (in the middle of a line) to the line length as
// go-smtp's lineLimitReader does: a line feed starts a new line of
// length 1.
func (d *dotReader) count(b []byte) error {
	if d.maxLine <= 0 {
		return nil
	}
	for {
		k := bytes.IndexByte(b, '\n')
		if k < 0 {
			d.line += len(b)
			break
		}
		if d.line += k; d.line > d.maxLine {
			return smtp.ErrTooLongLine
		}
		d.line = 1
		b = b[k+1:]
	}
	if d.line > d.maxLine {
		return smtp.ErrTooLongLine
	}
	return nil
}

// finish reads what is left of the message when the session stopped
// early (the size limit, a spool error), as go-smtp does after Data, and
// then sets the connection up for go-smtp's reader: the end-of-data line
// when the message was read to its end, else the error that stopped it,
// which go-smtp's reader returns to go-smtp and go-smtp's next command
// read ends the connection on, as it would have without a dotReader.
func (d *dotReader) finish() {
	if d.err == nil && d.state != dsEOF {
		d.left = -1
		var buf [4 << 10]byte
		for d.err == nil && d.state != dsEOF {
			d.Read(buf[:])
		}
	}
	switch {
	case d.state == dsEOF:
		d.c.inject = endOfData
	case d.sockErr != nil:
		d.c.poison = d.sockErr
	default:
		d.c.poison = d.err
	}
}
