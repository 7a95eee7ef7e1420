package archive

import (
	"bytes"
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
