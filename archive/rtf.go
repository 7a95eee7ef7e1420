package archive

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
)

// An RTF document carries embedded objects as hex in \objdata groups:
// an OLE1 object whose class is "Package" holds a file with its name (the
// Packager again), any other class an OLE2 compound file or raw native
// data. Each \objdata group is decoded (hex digits only; control words
// and nested groups that obfuscators put inside are skipped, as Word
// skips them) and its payload judged like an attachment. At most
// maxRTFObjects objects are read, each within the entry limit.

const maxRTFObjects = 16

var objdataWord = []byte(`\objdata`)

// rtfObjects walks the embedded objects of a spooled RTF document.
func (w *walker) rtfObjects(n node, sp held) error {
	offs := findAll(sp, sp.Size(), objdataWord, maxRTFObjects)
	for i, off := range offs {
		if err := w.countEntry(n.path); err != nil {
			return err
		}
		data, err := rtfHex(io.NewSectionReader(sp, off+int64(len(objdataWord)), sp.Size()), w.lim.MaxEntryBytes)
		if err != nil {
			if errLimit(err) {
				return w.hitLimit("entry-bytes", strconv.FormatInt(w.lim.MaxEntryBytes, 10), n.path)
			}
			continue
		}
		obj := n.child("object "+strconv.Itoa(i+1), false, int64(len(data)))
		obj.names = nil
		names, payload := ole1Payload(data)
		if len(names) > 0 {
			obj = n.child(names[0], false, int64(len(payload)))
			obj.names = names
		}
		w.find(KindEmbeddedObject, obj.path, "rtf")
		if err := w.file(obj, w.meter(bytes.NewReader(payload), nil, obj.path)); err != nil {
			return err
		}
	}
	return nil
}

// findAll returns the offsets of sep in r, at most max of them.
func findAll(r io.ReaderAt, size int64, sep []byte, max int) []int64 {
	var out []int64
	const window = 64 << 10
	buf := make([]byte, window+len(sep))
	for base := int64(0); base < size && len(out) < max; base += window {
		n, _ := r.ReadAt(buf, base)
		if n <= 0 {
			break
		}
		chunk := buf[:n]
		for i := 0; len(out) < max; {
			j := bytes.Index(chunk[i:], sep)
			if j < 0 || i+j >= window {
				break
			}
			out = append(out, base+int64(i+j))
			i += j + 1
		}
	}
	return out
}

// rtfHex decodes the hex digits of one group, up to the brace that
// closes it, skipping control words and nested groups' braces.
func rtfHex(r io.Reader, max int64) ([]byte, error) {
	br := bufio.NewReaderSize(r, 32<<10)
	var out []byte
	depth := 0
	var hi byte
	half := false
	for {
		c, err := br.ReadByte()
		if err != nil {
			return out, nil // an unclosed group ends with the file
		}
		switch {
		case c == '{':
			depth++
		case c == '}':
			if depth == 0 {
				return out, nil
			}
			depth--
		case c == '\\':
			// A control word: letters, an optional number, one space.
			for {
				d, err := br.ReadByte()
				if err != nil {
					return out, nil
				}
				if !(d >= 'a' && d <= 'z' || d >= 'A' && d <= 'Z' || d >= '0' && d <= '9' || d == '-') {
					if d != ' ' {
						br.UnreadByte() //nolint:errcheck // just read
					}
					break
				}
			}
		default:
			v, ok := hexVal(c)
			if !ok {
				continue
			}
			if !half {
				hi, half = v, true
				continue
			}
			half = false
			if int64(len(out)) >= max {
				return nil, fmt.Errorf("%w: rtf object over %d bytes", ErrLimit, max)
			}
			out = append(out, hi<<4|v)
		}
	}
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// ole1Payload reads an OLE1 object header (MS-OLEDS ObjectHeader: version,
// format, class, topic and item names, native data size) and returns the
// embedded file: for class Package the file inside the Packager data with
// its names, else the native data (often an OLE2 compound file). Data it
// cannot read as OLE1 is returned whole.
func ole1Payload(b []byte) (names []string, payload []byte) {
	p := 8
	u32 := func() (int, bool) {
		if p+4 > len(b) {
			return 0, false
		}
		v := binary.LittleEndian.Uint32(b[p:])
		p += 4
		return int(min(v, 1<<30)), true
	}
	str := func() (string, bool) {
		n, ok := u32()
		if !ok || n > 4096 || p+n > len(b) {
			return "", false
		}
		s := string(bytes.TrimRight(b[p:p+n], "\x00"))
		p += n
		return s, true
	}
	if len(b) < 8 || binary.LittleEndian.Uint32(b[4:]) != 2 {
		return nil, b
	}
	class, ok := str()
	if !ok {
		return nil, b
	}
	if _, ok := str(); !ok { // topic
		return nil, b
	}
	if _, ok := str(); !ok { // item
		return nil, b
	}
	start := p
	size, ok := u32()
	if !ok || p+size > len(b) {
		return nil, b
	}
	native := b[p : p+size]
	if class == "Package" {
		names, r, n, err := ole10Native(bytes.NewReader(b[start:p+size]), int64(size))
		if err == nil {
			data, _ := io.ReadAll(io.LimitReader(r, n))
			return names, data
		}
	}
	return nil, native
}
