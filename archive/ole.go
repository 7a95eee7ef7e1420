package archive

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf16"
)

// oleScan looks through the bytes of an OLE compound file (or an object
// embedded in a document) for a VBA project — Office stores its macros in
// a storage named _VBA_PROJECT — and for a PE executable carried inside,
// the way "packager" objects hide programs in documents. It is a scan of
// the raw stream, not an OLE parser: bounded state, no allocation by input.
type oleScan struct {
	tail    []byte // the end of the previous write: a marker may straddle two
	scratch []byte
	macro   bool
	pe      bool
}

const oleOverlap = 4096 // PE headers sit well within 4 KiB of their MZ

var vbaMarker = func() []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune("_VBA_PROJECT")) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}()

func (s *oleScan) write(p []byte) {
	if (s.macro && s.pe) || len(p) == 0 {
		return
	}
	buf := append(append(s.scratch[:0], s.tail...), p...)
	s.scratch = buf
	if !s.macro && bytes.Contains(buf, vbaMarker) {
		s.macro = true
	}
	for i := 0; !s.pe; {
		j := bytes.Index(buf[i:], []byte("MZ"))
		if j < 0 {
			break
		}
		s.pe = isPE(buf, i+j)
		i += j + 1
	}
	keep := min(len(buf), oleOverlap)
	s.tail = append(s.tail[:0], buf[len(buf)-keep:]...)
}

// ole walks an OLE compound file: the raw scan (macros, a PE anywhere),
// and the files that embedded objects carry — an OLE1 "\x01Ole10Native"
// stream (the Packager object that puts a .bat, .js or .exe into a
// document, with its original name) and "Package" and "CONTENTS" streams
// (an embedded document or PDF as it is), and the attachments of an
// Outlook item (.msg). Each is judged like an attachment. A compound file
// whose structure cannot be read is uninspectable.
func (w *walker) ole(n node, t string, r io.Reader) error {
	sp, release, err := w.hold(r, n.hint)
	if err != nil {
		return w.unreadable(n, t, err)
	}
	defer release()
	if n.size < 0 {
		n.size = sp.Size()
	}
	c, err := openCFB(sp, sp.Size(), w.entryBudget())
	if err != nil {
		w.find(KindUninspectable, n.path, shortErr(err))
	} else if err := w.oleStreams(n, c); err != nil {
		return err
	}
	if err := w.tick(n.path); err != nil {
		return err
	}
	return w.leaf(n, t, sp.Reader())
}

func (w *walker) oleStreams(n node, c *cfb) error {
	for i, e := range c.entries {
		if e.typ == 1 && strings.HasPrefix(e.name, "__attach_version1.0_#") {
			if err := w.msgAttachment(n, c, i); err != nil {
				return err
			}
			continue
		}
		if e.typ != 2 {
			continue
		}
		switch e.name {
		case "\x01Ole10Native", "Package", "CONTENTS":
		default:
			continue
		}
		if err := w.countEntry(n.path); err != nil {
			return err
		}
		if err := w.declared(n.path+"/"+printable(e.name), int64(e.size), -1); err != nil {
			return err
		}
		var child node
		var data io.Reader
		if e.name == "\x01Ole10Native" {
			names, rd, size, err := ole10Native(c.open(e), int64(e.size))
			if err != nil {
				w.find(KindUninspectable, n.path+"/Ole10Native", shortErr(err))
				continue
			}
			name := "object"
			if len(names) > 0 {
				name = names[0]
			}
			child = n.child(name, false, size)
			child.names = names
			data = rd
		} else {
			child = n.child(e.name, false, int64(e.size))
			child.names = nil // the stream's name is no file name
			data = c.open(e)
		}
		w.find(KindEmbeddedObject, child.path, "")
		if err := w.file(child, w.meter(data, nil, child.path)); err != nil {
			return err
		}
	}
	return nil
}

// ole10Native reads the header of an OLE1 native data stream (what the
// Packager writes): size, flags, label, original path, temporary path,
// then the file's bytes. It returns the candidate names (the base names
// of label and paths) and a reader of the data.
func ole10Native(r io.Reader, max int64) (names []string, data io.Reader, size int64, err error) {
	br := bufio.NewReaderSize(r, 4096)
	var hdr [6]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, nil, 0, fmt.Errorf("%w: ole10native header: %v", ErrUninspectable, err)
	}
	cstr := func() (string, error) {
		b, err := br.ReadSlice(0)
		if err != nil {
			return "", fmt.Errorf("%w: ole10native name: %v", ErrUninspectable, err)
		}
		return string(b[:len(b)-1]), nil
	}
	label, err := cstr()
	if err != nil {
		return nil, nil, 0, err
	}
	orig, err := cstr()
	if err != nil {
		return nil, nil, 0, err
	}
	var u [8]byte
	if _, err := io.ReadFull(br, u[:]); err != nil {
		return nil, nil, 0, fmt.Errorf("%w: ole10native: %v", ErrUninspectable, err)
	}
	tlen := int64(binary.LittleEndian.Uint32(u[4:]))
	if tlen > 4096 {
		return nil, nil, 0, fmt.Errorf("%w: ole10native path of %d bytes", ErrUninspectable, tlen)
	}
	tmp := make([]byte, tlen)
	if _, err := io.ReadFull(br, tmp); err != nil {
		return nil, nil, 0, fmt.Errorf("%w: ole10native: %v", ErrUninspectable, err)
	}
	if _, err := io.ReadFull(br, u[:4]); err != nil {
		return nil, nil, 0, fmt.Errorf("%w: ole10native: %v", ErrUninspectable, err)
	}
	size = int64(binary.LittleEndian.Uint32(u[:4]))
	if size > max {
		return nil, nil, 0, fmt.Errorf("%w: ole10native data of %d bytes in a stream of %d", ErrUninspectable, size, max)
	}
	for _, s := range []string{label, orig, strings.TrimRight(string(tmp), "\x00")} {
		if b := baseName(s); b != "" && !slices.Contains(names, b) {
			names = append(names, b)
		}
	}
	return names, io.LimitReader(br, size), size, nil
}

// msgAttachment walks one attachment of an Outlook item (.msg): the
// storage __attach_version1.0_#N holds its data (PR_ATTACH_DATA_BIN,
// stream __substg1.0_37010102) and its names (PR_ATTACH_LONG_FILENAME
// 3707, PR_ATTACH_FILENAME 3704, in UTF-16 or 8-bit). An attached item
// (PR_ATTACH_DATA_OBJ, a storage) is not opened: it is named and scored.
func (w *walker) msgAttachment(n node, c *cfb, storage int) error {
	if err := w.countEntry(n.path); err != nil {
		return err
	}
	var data *cfbEntry
	var names []string
	embedded := false
	for _, k := range c.children(storage) {
		e := &c.entries[k]
		switch {
		case e.typ == 2 && e.name == "__substg1.0_37010102":
			data = e
		case e.typ == 2 && (strings.HasPrefix(e.name, "__substg1.0_3707") || strings.HasPrefix(e.name, "__substg1.0_3704")):
			b, _ := io.ReadAll(io.LimitReader(c.open(*e), 2048))
			name := string(bytes.TrimRight(b, "\x00"))
			if strings.HasSuffix(e.name, "001F") {
				u := make([]uint16, 0, len(b)/2)
				for j := 0; j+1 < len(b); j += 2 {
					if v := binary.LittleEndian.Uint16(b[j:]); v != 0 {
						u = append(u, v)
					} else {
						break
					}
				}
				name = string(utf16.Decode(u))
			}
			if name != "" && !slices.Contains(names, name) {
				if strings.HasPrefix(e.name, "__substg1.0_3707") {
					names = append([]string{name}, names...)
				} else {
					names = append(names, name)
				}
			}
		case e.typ == 1 && e.name == "__substg1.0_3701000D":
			embedded = true
		}
	}
	name := "attachment"
	if len(names) > 0 {
		name = names[0]
	}
	child := n.child(name, false, -1)
	child.names = names
	if data == nil {
		w.namesOnly(child)
		if embedded {
			w.find(KindEmbeddedObject, child.path, "attached Outlook item")
		}
		return w.tick(child.path)
	}
	child.size = int64(data.size)
	if err := w.declared(child.path, int64(data.size), -1); err != nil {
		return err
	}
	return w.file(child, w.meter(c.open(*data), nil, child.path))
}
