package archive

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/portcullis-mail/portcullis/filter"
)

// held is a file read to its end so that it can be read at any offset: a
// zip's directory comes last, a polyglot's hidden archive anywhere.
// *filter.Spool is one; memFile, the usual one, is another.
type held interface {
	io.ReaderAt
	Size() int64
	Reader() *io.SectionReader
}

// memFile is a file held in one contiguous pooled buffer. Decoders get
// its entries as byte slices (klauspost's inflater reads a *bytes.Reader
// without a buffer of its own), and nothing is copied but what fills it.
type memFile []byte

func (m memFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset", ErrUninspectable)
	}
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m memFile) Size() int64 { return int64(len(m)) }

func (m memFile) Reader() *io.SectionReader { return io.NewSectionReader(m, 0, int64(len(m))) }

// section returns the bytes [off, off+n) of m, cut at its end.
func (m memFile) section(off, n int64) []byte {
	size := int64(len(m))
	off = min(max(off, 0), size)
	return m[off:min(off+max(n, 0), size):min(off+max(n, 0), size)]
}

// Held files are kept in buffers of a few size classes, 64 KiB to
// 8 MiB by powers of two, one pool per class: a pool of mixed sizes
// hands a small buffer to a large file as readily as a large one, and
// the large file then allocates anyway. A file larger than 8 MiB (with
// Limits.MemoryBytes raised that far) gets a buffer of its own, not kept
// for the next message.
const (
	minHeld     = 64 << 10
	heldClasses = 8
)

// memBufs are the buffers files are held in, by class. Each lives while
// one file is walked, never longer: a message's files take one after
// another (nested ones one per level), and the next message reuses them.
var memBufs [heldClasses]sync.Pool

// heldClass is the smallest class that holds n bytes, or -1.
func heldClass(n int64) int {
	for i := range heldClasses {
		if n <= minHeld<<i {
			return i
		}
	}
	return -1
}

// getHeld returns an empty buffer of at least n bytes (a class's size,
// or n itself past the largest class).
func getHeld(n int64) []byte {
	i := heldClass(max(n, 1))
	if i < 0 {
		return make([]byte, 0, n)
	}
	if bp, ok := memBufs[i].Get().(*[]byte); ok {
		return (*bp)[:0]
	}
	return make([]byte, 0, minHeld<<i)
}

// putHeld gives a buffer from getHeld back to its class.
func putHeld(b []byte) {
	if i := heldClass(int64(cap(b))); i >= 0 && cap(b) == minHeld<<i {
		b = b[:0]
		memBufs[i].Put(&b)
	}
}

// hold reads r to its end for random access: into a pooled buffer when it
// fits in Limits.MemoryBytes, else into a filter.Spool (which goes to an
// unlinked temporary file past that). hint is a first guess at the
// file's size (a part's raw size, a member's declared size), else 0: a
// buffer that large is taken at once instead of grown to it. A guess
// never allocates past Limits.MemoryBytes, which bounds what is held
// whatever a header declares, and from the pool a lie costs no more
// than a file of that size would. release gives the memory back; the
// file must not be read after. Like filter.NewSpool, hold checks ctx between reads, stops a
// reader that makes no progress, and returns a panic in r as an error.
func (w *walker) hold(r io.Reader, hint int64) (f held, release func(), err error) {
	limit := w.lim.MemoryBytes
	if hint > limit {
		// It will not fit (or says it will not): spooled from the start,
		// not first into a buffer it would outgrow.
		return w.holdSpool(r, func() {})
	}
	// full is the class buffer, given back on release; buf the part of
	// it the limit allows.
	full := getHeld(min(max(hint, 1), limit))
	buf := full[:0:min(int64(cap(full)), limit)]
	given := false
	put := func() {
		if !given {
			given = true
			putHeld(full)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("archive: panic while reading: %v", p)
		}
		if err != nil {
			put()
		}
	}()
	for empty := 0; ; {
		if err := w.ctx.Err(); err != nil {
			return nil, nil, err
		}
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= limit {
				return w.holdSpool(io.MultiReader(bytes.NewReader(buf), r), put)
			}
			next := getHeld(min(2*int64(cap(buf)), limit))
			grown := append(next[:0:min(int64(cap(next)), limit)], buf...)
			putHeld(full)
			full, buf = next, grown
		}
		k, rerr := r.Read(buf[len(buf):cap(buf)])
		if k < 0 || k > cap(buf)-len(buf) {
			return nil, nil, fmt.Errorf("archive: reader returned %d bytes for a %d-byte buffer", k, cap(buf)-len(buf))
		}
		buf = buf[:len(buf)+k]
		switch {
		case rerr == io.EOF:
			return memFile(buf), put, nil
		case rerr != nil:
			return nil, nil, rerr
		case k == 0:
			if empty++; empty >= 100 {
				return nil, nil, io.ErrNoProgress
			}
		default:
			empty = 0
		}
	}
}

// holdSpool spools what did not fit in memory; put gives back the buffer
// that held the first part, once the spool has copied it.
func (w *walker) holdSpool(r io.Reader, put func()) (held, func(), error) {
	sp, err := filter.NewSpool(w.ctx, r, filter.SpoolConfig{MemoryBytes: w.lim.MemoryBytes, MaxBytes: -1})
	put()
	if err != nil {
		return nil, nil, err
	}
	return sp, func() { sp.Close() }, nil
}
