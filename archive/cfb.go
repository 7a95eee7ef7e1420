package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf16"
)

// A small reader of OLE compound files (MS-CFB): enough to list the
// streams of a .doc, .xls, .ppt or an embedded object and read them. It
// is this package's own because it must be bounded on hostile input: the
// sector allocation table it holds is four bytes per sector of the file,
// the directory is bounded by the caller's entry budget, and every chain
// it follows is cut at the number of sectors the file has, so a loop in
// a chain ends instead of spinning.

var errCFB = fmt.Errorf("%w: ole", ErrUninspectable)

const (
	cfbEndOfChain = 0xfffffffe
	cfbFree       = 0xffffffff
	cfbMaxRegSect = 0xfffffffa
)

type cfb struct {
	r        io.ReaderAt
	size     int64
	shift    uint
	fat      []uint32
	minifat  []uint32
	cutoff   uint64
	mini     *cfbStream // the mini stream (the root entry's data)
	entries  []cfbEntry
	nSectors int64
}

type cfbEntry struct {
	name               string
	typ                byte // 1 storage, 2 stream, 5 root
	start              uint32
	size               uint64
	left, right, child uint32 // the directory tree: siblings and first child
}

func (c *cfb) sectorOff(s uint32) int64 { return (int64(s) + 1) << c.shift }

// openCFB reads the header, the allocation tables and the directory.
func openCFB(r io.ReaderAt, size int64, maxEntries int) (*cfb, error) {
	var h [512]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("%w: header: %v", errCFB, err)
	}
	if string(h[:8]) != string(oleHeader) {
		return nil, fmt.Errorf("%w: signature", errCFB)
	}
	shift := uint(binary.LittleEndian.Uint16(h[0x1e:]))
	if shift != 9 && shift != 12 {
		return nil, fmt.Errorf("%w: sector shift %d", errCFB, shift)
	}
	c := &cfb{r: r, size: size, shift: shift, cutoff: uint64(binary.LittleEndian.Uint32(h[0x38:]))}
	c.nSectors = (size >> shift) + 1
	if err := c.readFAT(h[:]); err != nil {
		return nil, err
	}
	dir, err := c.chainBytes(binary.LittleEndian.Uint32(h[0x30:]), c.fat, int64(maxEntries)*128)
	if err != nil {
		return nil, err
	}
	for i := 0; i+128 <= len(dir); i += 128 {
		e := dir[i : i+128]
		n := int(binary.LittleEndian.Uint16(e[0x40:]))
		if n > 64 {
			n = 64
		}
		u := make([]uint16, 0, n/2)
		for j := 0; j+1 < n; j += 2 {
			if v := binary.LittleEndian.Uint16(e[j:]); v != 0 {
				u = append(u, v)
			}
		}
		c.entries = append(c.entries, cfbEntry{name: string(utf16.Decode(u)), typ: e[0x42],
			start: binary.LittleEndian.Uint32(e[0x74:]), size: binary.LittleEndian.Uint64(e[0x78:]),
			left: binary.LittleEndian.Uint32(e[0x44:]), right: binary.LittleEndian.Uint32(e[0x48:]),
			child: binary.LittleEndian.Uint32(e[0x4c:])})
	}
	if len(c.entries) == 0 || c.entries[0].typ != 5 {
		return nil, fmt.Errorf("%w: no root entry", errCFB)
	}
	if shift == 9 {
		// Version 3 files keep only 32 bits of size.
		for i := range c.entries {
			c.entries[i].size &= 0xffffffff
		}
	}
	root := c.entries[0]
	mf, err := c.chainBytes(binary.LittleEndian.Uint32(h[0x3c:]), c.fat, c.size)
	if err != nil {
		return nil, err
	}
	for i := 0; i+4 <= len(mf); i += 4 {
		c.minifat = append(c.minifat, binary.LittleEndian.Uint32(mf[i:]))
	}
	c.mini = &cfbStream{c: c, start: root.start, size: int64(min(root.size, uint64(size))), table: c.fat, shift: shift}
	return c, nil
}

// readFAT gathers the sector allocation table from the header's DIFAT
// array and the DIFAT chain.
func (c *cfb) readFAT(h []byte) error {
	nFAT := int64(binary.LittleEndian.Uint32(h[0x2c:]))
	per := int64(1) << c.shift / 4
	if nFAT > c.nSectors {
		return fmt.Errorf("%w: %d FAT sectors in a file of %d", errCFB, nFAT, c.nSectors)
	}
	var sects []uint32
	for i := 0; i < 109 && int64(len(sects)) < nFAT; i++ {
		sects = append(sects, binary.LittleEndian.Uint32(h[76+4*i:]))
	}
	next := binary.LittleEndian.Uint32(h[0x44:])
	buf := make([]byte, 1<<c.shift)
	for steps := int64(0); int64(len(sects)) < nFAT && next <= cfbMaxRegSect; steps++ {
		if steps > c.nSectors {
			return fmt.Errorf("%w: DIFAT loop", errCFB)
		}
		if _, err := c.r.ReadAt(buf, c.sectorOff(next)); err != nil {
			return fmt.Errorf("%w: DIFAT: %v", errCFB, err)
		}
		for i := int64(0); i < per-1 && int64(len(sects)) < nFAT; i++ {
			sects = append(sects, binary.LittleEndian.Uint32(buf[4*i:]))
		}
		next = binary.LittleEndian.Uint32(buf[len(buf)-4:])
	}
	c.fat = make([]uint32, 0, min(nFAT*per, c.nSectors+per))
	for _, s := range sects {
		if s > cfbMaxRegSect {
			continue
		}
		n, err := c.r.ReadAt(buf, c.sectorOff(s))
		if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return fmt.Errorf("%w: FAT sector %d: %v", errCFB, s, err)
		}
		for i := 0; i+4 <= n; i += 4 {
			c.fat = append(c.fat, binary.LittleEndian.Uint32(buf[i:]))
		}
	}
	return nil
}

// chainBytes reads a whole chain of regular sectors, at most max bytes.
func (c *cfb) chainBytes(start uint32, table []uint32, max int64) ([]byte, error) {
	s := &cfbStream{c: c, start: start, size: max, table: table, shift: c.shift, lenient: true}
	return io.ReadAll(s.reader())
}

// open returns a reader over a stream entry's data.
func (c *cfb) open(e cfbEntry) io.Reader {
	if e.size < c.cutoff {
		return (&cfbStream{c: c, start: e.start, size: int64(e.size), table: c.minifat, shift: 6, in: c.mini}).reader()
	}
	return (&cfbStream{c: c, start: e.start, size: int64(e.size), table: c.fat, shift: c.shift}).reader()
}

// cfbStream is a chain of sectors (regular, or mini sectors inside the
// mini stream).
type cfbStream struct {
	c       *cfb
	start   uint32
	size    int64
	table   []uint32
	shift   uint
	in      *cfbStream // mini sectors live in this stream; nil: in the file
	lenient bool       // end at the chain's end rather than at size
}

func (s *cfbStream) reader() io.Reader {
	return &cfbReader{s: s, sect: s.start}
}

type cfbReader struct {
	s    *cfbStream
	sect uint32
	off  int64    // bytes read so far
	seen []uint64 // sectors of the chain already read
	err  error
}

func (r *cfbReader) Read(p []byte) (int, error) {
	s := r.s
	if r.err != nil {
		return 0, r.err
	}
	if r.off >= s.size {
		return 0, io.EOF
	}
	if r.sect > cfbMaxRegSect {
		if s.lenient || r.sect == cfbEndOfChain && r.off >= s.size {
			return 0, io.EOF
		}
		r.err = fmt.Errorf("%w: chain ends at %d of %d bytes", errCFB, r.off, s.size)
		return 0, r.err
	}
	if int(r.sect) >= len(s.table) {
		r.err = fmt.Errorf("%w: sector %d beyond the allocation table", errCFB, r.sect)
		return 0, r.err
	}
	secSize := int64(1) << s.shift
	within := r.off & (secSize - 1)
	n := min(int64(len(p)), secSize-within, s.size-r.off)
	var k int
	var err error
	if s.in != nil {
		k, err = s.in.readAt(p[:n], int64(r.sect)<<s.shift+within)
	} else {
		k, err = s.c.r.ReadAt(p[:n], s.c.sectorOff(r.sect)+within)
	}
	r.off += int64(k)
	if r.off&(secSize-1) == 0 {
		// A sector met twice is a loop.
		if r.seen == nil {
			r.seen = make([]uint64, len(s.table)/64+1)
		}
		if r.seen[r.sect/64]&(1<<(r.sect%64)) != 0 {
			r.err = fmt.Errorf("%w: chain loops at sector %d", errCFB, r.sect)
			return k, r.err
		}
		r.seen[r.sect/64] |= 1 << (r.sect % 64)
		r.sect = s.table[r.sect]
	}
	if err != nil && k < int(n) {
		if errors.Is(err, io.EOF) && s.lenient {
			return k, io.EOF
		}
		r.err = fmt.Errorf("%w: %v", errCFB, err)
		return k, r.err
	}
	return k, nil
}

// readAt reads the mini stream at an offset, walking its chain from the
// start (mini streams are small: below the 4 KiB cutoff per stream, and
// the whole mini stream rarely past a few hundred KiB).
func (s *cfbStream) readAt(p []byte, off int64) (int, error) {
	secSize := int64(1) << s.shift
	sect := s.start
	for i := int64(0); i < off/secSize; i++ {
		if sect > cfbMaxRegSect || int(sect) >= len(s.table) || i > s.c.nSectors {
			return 0, fmt.Errorf("%w: mini stream chain", errCFB)
		}
		sect = s.table[sect]
	}
	if sect > cfbMaxRegSect {
		return 0, fmt.Errorf("%w: mini stream chain", errCFB)
	}
	within := off % secSize
	n := min(int64(len(p)), secSize-within)
	return s.c.r.ReadAt(p[:n], s.c.sectorOff(sect)+within)
}

// children lists the entries directly inside storage i: the tree of
// siblings under its child, walked with an explicit stack, each entry
// once, so a directory that loops ends.
func (c *cfb) children(i int) []int {
	var out []int
	seen := make(map[uint32]bool)
	stack := []uint32{c.entries[i].child}
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if int(k) >= len(c.entries) || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, int(k))
		stack = append(stack, c.entries[k].left, c.entries[k].right)
	}
	return out
}
