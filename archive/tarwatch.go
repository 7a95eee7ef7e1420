package archive

import (
	"bytes"
	"io"
	"strconv"
	"strings"
)

// A tar entry can carry three names: the ustar name (with its prefix), a
// GNU long name record ('L') and a PAX "path" record ('x'). archive/tar
// (and so mholt/archives) shows only the one that wins; extractors differ
// in which wins. tarWatch sees the raw stream as the extractor reads it,
// block by block with fixed memory, and records each entry whose names
// disagree (beyond a long name's truncation into the ustar field), so
// that every name is judged and the disagreement is a finding.

const maxTarRecord = 64 << 10 // longer long-name or PAX records are skipped

type tarWatch struct {
	r io.Reader

	block   [512]byte
	have    int
	skip    int64 // data bytes (padded) still to pass
	capture []byte
	capLeft int64 // record bytes still to capture
	capType byte
	long    string // pending GNU long name
	pax     string // pending PAX path

	mismatches [][]string
}

func (t *tarWatch) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.feed(p[:n])
	return n, err
}

func (t *tarWatch) feed(b []byte) {
	for len(b) > 0 {
		switch {
		case t.capLeft > 0:
			k := int(min(int64(len(b)), t.capLeft))
			if len(t.capture) < maxTarRecord {
				t.capture = append(t.capture, b[:min(k, maxTarRecord-len(t.capture))]...)
			}
			t.capLeft -= int64(k)
			b = b[k:]
			if t.capLeft == 0 {
				t.record()
			}
		case t.skip > 0:
			k := int(min(int64(len(b)), t.skip))
			t.skip -= int64(k)
			b = b[k:]
		default:
			k := copy(t.block[t.have:], b)
			t.have += k
			b = b[k:]
			if t.have == 512 {
				t.have = 0
				t.header()
			}
		}
	}
}

func tarString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func tarSize(b []byte) int64 {
	if b[0]&0x80 != 0 {
		var v int64
		for _, c := range b[1:] {
			if v > 1<<50 {
				return -1
			}
			v = v<<8 | int64(c)
		}
		return v
	}
	v, err := strconv.ParseInt(strings.Trim(string(b), " \x00"), 8, 64)
	if err != nil {
		return 0
	}
	return v
}

func (t *tarWatch) header() {
	h := t.block[:]
	if bytes.Count(h, []byte{0}) == 512 {
		return
	}
	name := tarString(h[0:100])
	if string(h[257:263]) == "ustar\x00" { // POSIX: a prefix field
		if prefix := tarString(h[345:500]); prefix != "" {
			name = prefix + "/" + name
		}
	}
	size := tarSize(h[124:136])
	if size < 0 {
		size = 0
	}
	padded := (size + 511) &^ 511
	switch typ := h[156]; typ {
	case 'L', 'x':
		t.capType, t.capture, t.capLeft = typ, t.capture[:0], size
		t.skip = padded - size
		if size == 0 {
			t.record()
		}
		return
	case 'g', 'K':
		t.skip = padded
		return
	default:
		t.entry(name)
		if typ == '1' || typ == '2' || typ == '5' {
			padded = 0 // links and directories carry no data
		}
		t.skip = padded
	}
}

// record finishes a captured GNU long name or PAX record set.
func (t *tarWatch) record() {
	switch t.capType {
	case 'L':
		t.long = tarString(t.capture)
	case 'x':
		rest := t.capture
		for len(rest) > 0 {
			sp := bytes.IndexByte(rest, ' ')
			if sp <= 0 {
				break
			}
			n, err := strconv.Atoi(string(rest[:sp]))
			if err != nil || n <= sp || n > len(rest) {
				break
			}
			kv := rest[sp+1 : n]
			rest = rest[n:]
			if k, v, ok := bytes.Cut(bytes.TrimSuffix(kv, []byte("\n")), []byte("=")); ok && string(k) == "path" {
				t.pax = string(v)
			}
		}
	}
	t.capType = 0
}

// entry compares the names one entry was given.
func (t *tarWatch) entry(ustar string) {
	names := []string{ustar}
	differs := false
	for _, alt := range []string{t.long, t.pax} {
		if alt == "" || contains(names, alt) {
			continue
		}
		// A long name truncated into the 100-byte field is not a
		// disagreement; another name is.
		if !(len(ustar) >= 99 && strings.HasPrefix(alt, ustar)) {
			differs = true
		}
		names = append(names, alt)
	}
	if t.long != "" && t.pax != "" && t.long != t.pax {
		differs = true
	}
	t.long, t.pax = "", ""
	if differs && len(t.mismatches) < maxFindings {
		t.mismatches = append(t.mismatches, names)
	}
}
