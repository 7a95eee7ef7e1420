// Package zipscan reads the structure of a zip file — end of central
// directory, central directory, local headers — without decoding any entry,
// and reports what the usual readers skip: entries whose data overlap (the
// non-recursive zip bomb), local names that differ from central names, data
// hidden before the central directory (a concatenated zip), and encryption
// flags, which archive/zip reports only as a corrupt entry.
//
// Everything it allocates is bounded: the number of entries by the caller's
// limit, names by the 16-bit length fields, scans by a fixed buffer.
package zipscan

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Errors. ErrNotZip and ErrCorrupt wrap details; ErrTooManyEntries is
// returned as soon as the central directory holds more entries than the
// caller allows, before they are read.
var (
	ErrNotZip         = errors.New("zipscan: no end of central directory")
	ErrCorrupt        = errors.New("zipscan: corrupt zip structure")
	ErrTooManyEntries = errors.New("zipscan: too many entries")
)

// Compression methods the caller may meet.
const (
	Store   = 0
	Deflate = 8
	Bzip2   = 12
	LZMA    = 14
	Zstd    = 93
	XZ      = 95
	AES     = 99 // WinZip AES: the real method is in the 0x9901 extra field
)

// Entry is one central directory record with what its local header says.
type Entry struct {
	Name        string // central directory name, decoded (UTF-8 flag or CP437)
	UnicodeName string // Info-ZIP Unicode Path extra field (0x7075), when present
	LocalName   string // local header name, decoded the same way
	Flags       uint16
	Method      uint16
	CRC32       uint32
	CompSize    uint64
	Size        uint64
	Header      int64 // absolute offset of the local header
	Data        int64 // absolute offset of the entry data
	CreatorOS   uint8
	External    uint32
	LocalErr    error // the local header could not be read; Data is invalid
}

// Encrypted reports traditional (bit 0), strong (bit 6) or WinZip AES
// encryption.
func (e *Entry) Encrypted() bool { return e.Flags&0x41 != 0 || e.Method == AES }

// IsDir reports a directory entry.
func (e *Entry) IsDir() bool { return len(e.Name) > 0 && e.Name[len(e.Name)-1] == '/' }

// IsSymlink reports a Unix symbolic link (mode in the high external bits).
func (e *Entry) IsSymlink() bool {
	return e.CreatorOS == 3 && (e.External>>16)&0o170000 == 0o120000
}

// end is where the entry's data ends (without a data descriptor).
func (e *Entry) end() int64 { return e.Data + int64(e.CompSize) }

// Archive is the structure of one zip file.
type Archive struct {
	Entries []Entry
	Size    int64
	Base    int64 // bytes before the archive proper (an SFX stub, or a hidden zip)
	CDStart int64 // absolute offset of the central directory
	EOCD    int64 // offset of the end of central directory record

	// Overlaps names pairs of entries whose data overlap, or overlap the
	// central directory: "a.txt/b.txt".
	Overlaps []string
	// NameMismatch lists entries whose local and central names differ.
	NameMismatch []string
	// SizeMismatch lists entries whose local header states other sizes
	// than the central directory (neither using a data descriptor).
	SizeMismatch []string
	// Hidden lists offsets of zip signatures (local headers, end records)
	// that the central directory does not account for.
	Hidden []int64
	// HiddenEnd, when > 0, is the end of an earlier, complete zip (its own
	// end of central directory record) in the bytes before this one: the
	// caller can parse io.NewSectionReader(r, 0, HiddenEnd) as a zip of its own.
	HiddenEnd int64
}

const (
	sigLocal   = 0x04034b50
	sigCentral = 0x02014b50
	sigEnd     = 0x06054b50
	sigEnd64   = 0x06064b50
	sigLoc64   = 0x07064b50
	endLen     = 22
	maxComment = 65535
)

// scanBufs are the buffers the end record is searched in and the gaps
// are scanned through, and dirReaders the readers of central
// directories: each lives for one call, never longer, and a gateway
// parses one zip after another.
var (
	scanBufs   = sync.Pool{New: func() any { b := make([]byte, endLen+maxComment+endLen); return &b }}
	dirReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}
)

// Parse reads the structure of the zip in r (size bytes). maxEntries bounds
// the central directory (<= 0: no bound other than the file size).
func Parse(r io.ReaderAt, size int64, maxEntries int) (*Archive, error) {
	a := &Archive{Size: size}
	eocd, rec, err := findEnd(r, size, size)
	if err != nil {
		return nil, err
	}
	a.EOCD = eocd
	count := uint64(binary.LittleEndian.Uint16(rec[10:]))
	cdSize := uint64(binary.LittleEndian.Uint32(rec[12:]))
	cdOff := uint64(binary.LittleEndian.Uint32(rec[16:]))
	endPos := eocd // where the central directory (or zip64 record) ends
	if count == 0xffff || cdSize == 0xffffffff || cdOff == 0xffffffff {
		if c, s, o, pos, ok := readEnd64(r, eocd); ok {
			count, cdSize, cdOff, endPos = c, s, o, pos
		}
	}
	if cdSize > uint64(endPos) {
		return nil, fmt.Errorf("%w: central directory size %d beyond its end record", ErrCorrupt, cdSize)
	}
	// The directory ends where the end record starts; when its stated
	// offset disagrees, everything before was prepended (an SFX stub, or
	// another archive), as archive/zip also assumes.
	start := endPos - int64(cdSize)
	a.Base = start - int64(min(cdOff, uint64(1)<<62))
	if a.Base < 0 {
		return nil, fmt.Errorf("%w: central directory offset %d beyond its end", ErrCorrupt, cdOff)
	}
	a.CDStart = start
	if maxEntries > 0 && count > uint64(maxEntries) {
		return nil, fmt.Errorf("%w: %d in the end record, limit %d", ErrTooManyEntries, count, maxEntries)
	}
	if err := a.readCentral(r, start, int64(cdSize), maxEntries); err != nil {
		return nil, err
	}
	for i := range a.Entries {
		a.readLocal(r, &a.Entries[i])
	}
	a.findOverlaps()
	a.findHidden(r)
	return a, nil
}

// findEnd locates the last end-of-central-directory record that starts in
// [0, limit) and whose comment fits in the file.
func findEnd(r io.ReaderAt, size, limit int64) (int64, []byte, error) {
	if size < endLen {
		return 0, nil, ErrNotZip
	}
	from := max(0, limit-endLen-maxComment)
	bp := scanBufs.Get().(*[]byte)
	defer scanBufs.Put(bp)
	buf := (*bp)[:min(size, limit+endLen)-from]
	if _, err := r.ReadAt(buf, from); err != nil && !errors.Is(err, io.EOF) {
		return 0, nil, err
	}
	for i := len(buf) - endLen; i >= 0; i-- {
		if from+int64(i) >= limit || binary.LittleEndian.Uint32(buf[i:]) != sigEnd {
			continue
		}
		rec := buf[i : i+endLen]
		clen := int64(binary.LittleEndian.Uint16(rec[20:]))
		if from+int64(i)+endLen+clen > size {
			continue
		}
		return from + int64(i), append([]byte(nil), rec...), nil
	}
	return 0, nil, ErrNotZip
}

func readEnd64(r io.ReaderAt, eocd int64) (count, cdSize, cdOff uint64, pos int64, ok bool) {
	if eocd < 20 {
		return
	}
	var loc [20]byte
	if _, err := r.ReadAt(loc[:], eocd-20); err != nil || binary.LittleEndian.Uint32(loc[:]) != sigLoc64 {
		return
	}
	// The record normally sits just before the locator; trust that place
	// over the stated offset, which moves with prepended data.
	pos = eocd - 20 - 56
	if pos < 0 {
		return
	}
	var rec [56]byte
	if _, err := r.ReadAt(rec[:], pos); err != nil || binary.LittleEndian.Uint32(rec[:]) != sigEnd64 {
		return
	}
	return binary.LittleEndian.Uint64(rec[32:]), binary.LittleEndian.Uint64(rec[40:]), binary.LittleEndian.Uint64(rec[48:]), pos, true
}

func (a *Archive) readCentral(r io.ReaderAt, start, size int64, maxEntries int) error {
	br := dirReaders.Get().(*bufio.Reader)
	br.Reset(io.NewSectionReader(r, start, size))
	defer func() { br.Reset(nil); dirReaders.Put(br) }()
	var fixed [46]byte
	var names []byte // name, extra and comment of one record, reused
	for {
		if _, err := io.ReadFull(br, fixed[:4]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%w: central directory truncated", ErrCorrupt)
		}
		if binary.LittleEndian.Uint32(fixed[:]) != sigCentral {
			// Digital signature or garbage after the records: stop here.
			return nil
		}
		if _, err := io.ReadFull(br, fixed[4:]); err != nil {
			return fmt.Errorf("%w: central directory truncated", ErrCorrupt)
		}
		if maxEntries > 0 && len(a.Entries) >= maxEntries {
			return fmt.Errorf("%w: more than %d", ErrTooManyEntries, maxEntries)
		}
		b := fixed[:]
		e := Entry{
			CreatorOS: b[5],
			Flags:     binary.LittleEndian.Uint16(b[8:]),
			Method:    binary.LittleEndian.Uint16(b[10:]),
			CRC32:     binary.LittleEndian.Uint32(b[16:]),
			CompSize:  uint64(binary.LittleEndian.Uint32(b[20:])),
			Size:      uint64(binary.LittleEndian.Uint32(b[24:])),
			External:  binary.LittleEndian.Uint32(b[38:]),
		}
		n, m, k := int(binary.LittleEndian.Uint16(b[28:])), int(binary.LittleEndian.Uint16(b[30:])), int(binary.LittleEndian.Uint16(b[32:]))
		off := uint64(binary.LittleEndian.Uint32(b[42:]))
		if cap(names) < n+m+k {
			names = make([]byte, max(n+m+k, 512))
		}
		v := names[:n+m+k]
		if _, err := io.ReadFull(br, v); err != nil {
			return fmt.Errorf("%w: central directory truncated", ErrCorrupt)
		}
		utf := e.Flags&0x800 != 0
		e.Name = decodeName(v[:n], utf)
		extra := v[n : n+m]
		e.UnicodeName = unicodePath(extra)
		if e.Size == 0xffffffff || e.CompSize == 0xffffffff || off == 0xffffffff {
			zip64(extra, &e.Size, &e.CompSize, &off)
		}
		if off > uint64(1)<<62 {
			off = uint64(1) << 62
		}
		e.Header = a.Base + int64(off)
		a.Entries = append(a.Entries, e)
	}
}

func zip64(extra []byte, size, comp, off *uint64) {
	for len(extra) >= 4 {
		tag, l := binary.LittleEndian.Uint16(extra), int(binary.LittleEndian.Uint16(extra[2:]))
		extra = extra[4:]
		if l > len(extra) {
			return
		}
		f := extra[:l]
		extra = extra[l:]
		if tag != 0x0001 {
			continue
		}
		for _, p := range []*uint64{size, comp, off} {
			if *p != 0xffffffff {
				continue
			}
			if len(f) < 8 {
				return
			}
			*p = binary.LittleEndian.Uint64(f)
			f = f[8:]
		}
		return
	}
}

func unicodePath(extra []byte) string {
	for len(extra) >= 4 {
		tag, l := binary.LittleEndian.Uint16(extra), int(binary.LittleEndian.Uint16(extra[2:]))
		extra = extra[4:]
		if l > len(extra) {
			return ""
		}
		if tag == 0x7075 && l > 5 {
			return decodeName(extra[5:l], true)
		}
		extra = extra[l:]
	}
	return ""
}

func decodeName(b []byte, utf bool) string {
	if utf8.Valid(b) {
		return string(b)
	}
	if utf {
		return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
	}
	s, err := charmap.CodePage437.NewDecoder().Bytes(b)
	if err != nil {
		return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
	}
	return string(s)
}

func (a *Archive) readLocal(r io.ReaderAt, e *Entry) {
	var h [30]byte
	if e.Header < 0 || e.Header+30 > a.Size {
		e.LocalErr = fmt.Errorf("%w: local header of %q outside the file", ErrCorrupt, e.Name)
		return
	}
	if _, err := r.ReadAt(h[:], e.Header); err != nil || binary.LittleEndian.Uint32(h[:]) != sigLocal {
		e.LocalErr = fmt.Errorf("%w: no local header for %q", ErrCorrupt, e.Name)
		return
	}
	n, m := int64(binary.LittleEndian.Uint16(h[26:])), int64(binary.LittleEndian.Uint16(h[28:]))
	name := make([]byte, n)
	if _, err := r.ReadAt(name, e.Header+30); err != nil {
		e.LocalErr = fmt.Errorf("%w: local header of %q truncated", ErrCorrupt, e.Name)
		return
	}
	lflags := binary.LittleEndian.Uint16(h[6:])
	e.LocalName = decodeName(name, lflags&0x800 != 0)
	// Encryption set in either header counts: readers differ in which they trust.
	e.Flags |= lflags & 0x41
	if m := binary.LittleEndian.Uint16(h[8:]); m == AES {
		e.Method = AES
	}
	e.Data = e.Header + 30 + n + m
	// Sizes in both headers (no data descriptor, no zip64 marker) must
	// agree: a reader that trusts the local header reads other bytes.
	lcomp, lsize := binary.LittleEndian.Uint32(h[18:]), binary.LittleEndian.Uint32(h[22:])
	if lflags&0x8 == 0 && e.Flags&0x8 == 0 && lcomp != 0xffffffff && lsize != 0xffffffff &&
		(uint64(lcomp) != e.CompSize || uint64(lsize) != e.Size) {
		a.SizeMismatch = append(a.SizeMismatch, e.Name)
	}
	if e.end() > a.Size || e.end() < e.Data {
		e.LocalErr = fmt.Errorf("%w: data of %q beyond the end of the file", ErrCorrupt, e.Name)
	}
	if e.LocalName != e.Name {
		a.NameMismatch = append(a.NameMismatch, e.Name)
	}
}

// span is the byte range of one entry: local header and data, and room
// for a data descriptor after it.
type span struct {
	start, data, end int64 // end includes the descriptor allowance
	name             string
}

func (a *Archive) spans() []span {
	s := make([]span, 0, len(a.Entries))
	for i := range a.Entries {
		e := &a.Entries[i]
		if e.LocalErr != nil {
			continue
		}
		x := span{start: e.Header, data: e.end(), end: e.end(), name: e.Name}
		if e.Flags&0x8 != 0 {
			x.end += 24 // the longest data descriptor (zip64, with signature)
		}
		s = append(s, x)
	}
	sort.Slice(s, func(i, j int) bool { return s[i].start < s[j].start })
	return s
}

// findOverlaps compares each entry with the one reaching furthest before
// it: in a well-formed zip, an entry starts after the previous one's data.
func (a *Archive) findOverlaps() {
	var far span
	for i, x := range a.spans() {
		if len(a.Overlaps) >= 16 {
			return
		}
		if i > 0 && x.start < far.data {
			a.Overlaps = append(a.Overlaps, far.name+"/"+x.name)
		}
		if x.data > a.CDStart {
			a.Overlaps = append(a.Overlaps, x.name+"/central directory")
		}
		if i == 0 || x.data > far.data {
			far = x
		}
	}
}

// findHidden scans the bytes the central directory does not account for
// (before the first entry and between entries) for zip signatures, and
// looks for an earlier complete end record.
func (a *Archive) findHidden(r io.ReaderAt) {
	var gaps [][2]int64
	pos := int64(0)
	for _, x := range a.spans() {
		if x.start > pos {
			gaps = append(gaps, [2]int64{pos, x.start})
		}
		pos = max(pos, x.end)
	}
	if a.CDStart > pos {
		gaps = append(gaps, [2]int64{pos, a.CDStart})
	}
	if len(gaps) == 0 {
		return
	}
	bp := scanBufs.Get().(*[]byte)
	defer scanBufs.Put(bp)
	buf := (*bp)[:64<<10]
	for _, g := range gaps {
		for off := g[0]; off < g[1] && len(a.Hidden) < 16; {
			n := int64(len(buf))
			if g[1]-off < n {
				n = g[1] - off
			}
			k, _ := r.ReadAt(buf[:n], off)
			for i := 0; i+4 <= k; i++ {
				j := bytes.Index(buf[i:k], []byte("PK"))
				if j < 0 {
					break
				}
				i += j
				if i+4 > k {
					break
				}
				at := off + int64(i)
				switch sig := binary.LittleEndian.Uint32(buf[i:]); {
				case sig == sigLocal && validLocal(r, at, a.Size):
					a.Hidden = append(a.Hidden, at)
				case sig == sigEnd && validEnd(r, at, a.Size):
					a.Hidden = append(a.Hidden, at)
					if end := endOfEnd(r, at); end <= a.CDStart && end > a.HiddenEnd {
						a.HiddenEnd = end
					}
				}
			}
			if off+n >= g[1] {
				break
			}
			off += n - 3 // a signature may straddle two reads
		}
	}
}

// endOfEnd is where the end record at off ends, comment included.
func endOfEnd(r io.ReaderAt, off int64) int64 {
	var rec [endLen]byte
	if _, err := r.ReadAt(rec[:], off); err != nil {
		return off + endLen
	}
	return off + endLen + int64(binary.LittleEndian.Uint16(rec[20:]))
}

// validLocal tells a real local header from four bytes that look like one:
// a plausible version, a known method and a name that fits.
func validLocal(r io.ReaderAt, off, size int64) bool {
	var h [30]byte
	if _, err := r.ReadAt(h[:], off); err != nil {
		return false
	}
	ver := binary.LittleEndian.Uint16(h[4:])
	method := binary.LittleEndian.Uint16(h[8:])
	n := int64(binary.LittleEndian.Uint16(h[26:]))
	switch method {
	case Store, Deflate, 9, Bzip2, LZMA, Zstd, XZ, AES:
	default:
		return false
	}
	return ver&0xff <= 63 && n > 0 && off+30+n <= size
}

// validEnd accepts an end record whose central directory starts with a
// central header where the record says.
func validEnd(r io.ReaderAt, off, size int64) bool {
	var rec [endLen]byte
	if _, err := r.ReadAt(rec[:], off); err != nil {
		return false
	}
	cdSize := int64(binary.LittleEndian.Uint32(rec[12:]))
	if binary.LittleEndian.Uint16(rec[10:]) == 0 {
		return cdSize == 0
	}
	start := off - cdSize
	if start < 0 || start+4 > size {
		return false
	}
	var sig [4]byte
	if _, err := r.ReadAt(sig[:], start); err != nil {
		return false
	}
	return binary.LittleEndian.Uint32(sig[:]) == sigCentral
}
