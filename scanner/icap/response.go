package icap

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/portcullis-mail/portcullis/scanner"
)

// response is an ICAP response head: status, header fields and the
// Encapsulated offsets.
type response struct {
	status int
	reason string
	fields [][2]string // canonical-case name, value (folded lines joined by "\n")
	close  bool
	encap  [][2]string // entity name, offset (as given)
	offs   []int64
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{scanner.ErrProtocol}, args...)...)
}

// readLine reads one CRLF (or LF) terminated line of at most the reader's
// buffer size.
func readLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return "", protoErr("line longer than %d bytes", br.Size())
	}
	if err == io.EOF && len(b) > 0 {
		return "", protoErr("truncated line %q", b)
	}
	if err != nil {
		return "", fmt.Errorf("icap: read: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// readResponse reads a status line and header fields, bounded in size and
// count, and parses Encapsulated and Connection.
func readResponse(br *bufio.Reader) (*response, error) {
	line, err := readLine(br)
	if err != nil {
		return nil, err
	}
	proto, rest, _ := strings.Cut(line, " ")
	code, reason, _ := strings.Cut(rest, " ")
	if proto != "ICAP/1.0" || len(code) != 3 {
		return nil, protoErr("status line %q", line)
	}
	r := &response{reason: reason}
	if r.status, err = strconv.Atoi(code); err != nil || r.status < 100 {
		return nil, protoErr("status line %q", line)
	}
	total := len(line)
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		if total += len(line) + 2; total > maxHeaders {
			return nil, protoErr("header longer than %d bytes", maxHeaders)
		}
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(r.fields) == 0 {
				return nil, protoErr("continuation line first")
			}
			f := &r.fields[len(r.fields)-1]
			f[1] += "\n" + strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, protoErr("header line %q", line)
		}
		if len(r.fields) >= maxFields {
			return nil, protoErr("more than %d header fields", maxFields)
		}
		r.fields = append(r.fields, [2]string{strings.ToLower(name), strings.TrimSpace(value)})
	}
	for _, v := range r.all("Connection") {
		if strings.EqualFold(strings.TrimSpace(v), "close") {
			r.close = true
		}
	}
	if enc := r.get("Encapsulated"); enc != "" {
		if err := r.parseEncapsulated(enc); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// parseEncapsulated checks "res-hdr=0, res-body=123": known names,
// non-decreasing offsets, at most one body entity and it last.
func (r *response) parseEncapsulated(v string) error {
	var last int64
	for part := range strings.SplitSeq(v, ",") {
		name, off, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.ParseInt(off, 10, 64)
		if !ok || err != nil || n < last || n > maxHeaders {
			return protoErr("Encapsulated %q", v)
		}
		switch name {
		case "req-hdr", "res-hdr":
		case "req-body", "res-body", "opt-body", "null-body":
		default:
			return protoErr("Encapsulated %q", v)
		}
		if len(r.encap) > 0 && strings.HasSuffix(r.encap[len(r.encap)-1][0], "body") {
			return protoErr("Encapsulated %q: entity after the body", v)
		}
		r.encap = append(r.encap, [2]string{name, off})
		r.offs = append(r.offs, n)
		last = n
	}
	if len(r.encap) == 0 || !strings.HasSuffix(r.encap[len(r.encap)-1][0], "body") {
		return protoErr("Encapsulated %q: no body entity", v)
	}
	return nil
}

// get returns the first value of a field.
func (r *response) get(name string) string {
	name = strings.ToLower(name)
	for _, f := range r.fields {
		if f[0] == name {
			return f[1]
		}
	}
	return ""
}

// all returns every value of a field.
func (r *response) all(name string) []string {
	name = strings.ToLower(name)
	var out []string
	for _, f := range r.fields {
		if f[0] == name {
			out = append(out, f[1])
		}
	}
	return out
}

// readEncapsulated reads the encapsulated HTTP header block (if any) and
// passes the chunked body (if any) to body, at most max bytes of it;
// truncated reports that there was more (the connection is then unusable).
func (r *response) readEncapsulated(br *bufio.Reader, body io.Writer, max int64) (httpHead string, truncated bool, err error) {
	if len(r.encap) == 0 {
		return "", false, nil
	}
	last := len(r.encap) - 1
	if last > 0 {
		n := r.offs[last] - r.offs[0]
		head := make([]byte, n) // n <= maxHeaders
		if _, err := io.ReadFull(br, head); err != nil {
			return "", false, fmt.Errorf("icap: reading encapsulated header: %w", err)
		}
		httpHead = string(head)
	}
	if r.encap[last][0] == "null-body" {
		return httpHead, false, nil
	}
	truncated, err = readChunked(br, body, max)
	return httpHead, truncated, err
}

// discardBody reads and drops the encapsulated entities.
func (r *response) discardBody(br *bufio.Reader) error {
	_, truncated, err := r.readEncapsulated(br, io.Discard, maxExtraBody)
	if truncated {
		r.close = true
	}
	return err
}

// encapsulated is what a 200 response carries: the HTTP status (200 when
// there is no HTTP header), the HTTP header fields, whether there was a
// body at all and whether it is the one sent.
type encapsulated struct {
	status int
	fields [][2]string
	body   bool
	same   bool
}

// compareBody reads the encapsulated response and compares its body with
// the bytes sent (sum, n bytes).
func (r *response) compareBody(br *bufio.Reader, sum []byte, n int64) (encapsulated, error) {
	e := encapsulated{status: 200}
	if len(r.encap) == 0 {
		return e, protoErr("%d without Encapsulated", r.status)
	}
	h := sha256.New()
	head, truncated, err := r.readEncapsulated(br, h, n+maxExtraBody)
	if err != nil {
		return e, err
	}
	if truncated {
		r.close = true
	}
	if head != "" {
		lines := strings.Split(strings.ReplaceAll(head, "\r\n", "\n"), "\n")
		f := strings.Fields(lines[0])
		if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
			return e, protoErr("encapsulated status line %q", lines[0])
		}
		if e.status, err = strconv.Atoi(f[1]); err != nil {
			return e, protoErr("encapsulated status line %q", lines[0])
		}
		for _, l := range lines[1:] {
			if l == "" {
				break
			}
			if (l[0] == ' ' || l[0] == '\t') && len(e.fields) > 0 {
				e.fields[len(e.fields)-1][1] += "\n" + strings.TrimSpace(l)
				continue
			}
			if name, value, ok := strings.Cut(l, ":"); ok && len(e.fields) < maxFields {
				e.fields = append(e.fields, [2]string{strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)})
			}
		}
	}
	e.body = r.encap[len(r.encap)-1][0] != "null-body"
	e.same = e.body && !truncated && bytes.Equal(h.Sum(nil), sum)
	return e, nil
}

// readChunked copies a chunked body to w, at most max bytes; truncated
// reports that it stopped there.
func readChunked(br *bufio.Reader, w io.Writer, max int64) (truncated bool, err error) {
	var total int64
	for {
		line, err := readLine(br)
		if err != nil {
			return false, err
		}
		size, _, _ := strings.Cut(line, ";")
		size = strings.TrimSpace(size)
		n, err := strconv.ParseInt(size, 16, 64)
		if err != nil || n < 0 || len(size) > 15 {
			return false, protoErr("chunk size %q", line)
		}
		if n == 0 {
			for range maxFields {
				l, err := readLine(br)
				if err != nil {
					return false, err
				}
				if l == "" {
					return false, nil
				}
			}
			return false, protoErr("too many trailer lines")
		}
		if total+n > max {
			return true, nil
		}
		if _, err := io.CopyN(w, br, n); err != nil {
			return false, fmt.Errorf("icap: reading chunk: %w", err)
		}
		total += n
		if l, err := readLine(br); err != nil || l != "" {
			if err == nil {
				err = protoErr("chunk not followed by CRLF")
			}
			return false, err
		}
	}
}
