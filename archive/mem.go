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

// maxPooled is the largest buffer kept for the next file: a message
// with a bigger archive allocates its own rather than keep one that big
// alive for every message after it.
const maxPooled = 8 << 20

// memBufs are the buffers files are held in. Each lives while one file
// is walked, never longer: a message's files take one after another
// (nested ones one per level), and the next message reuses them.
var memBufs = sync.Pool{New: func() any { return new([]byte) }}

// hold reads r to its end for random access: into a pooled buffer when it
// fits in Limits.MemoryBytes, else into a filter.Spool (which goes to an
// unlinked temporary file past that). hint is the file's size when known
// from bytes at hand (a part's raw size), else 0; never a size a header
// declares. release gives the memory back; the file must not be read
// after. Like filter.NewSpool, hold checks ctx between reads, stops a
// reader that makes no progress, and returns a panic in r as an error.
func (w *walker) hold(r io.Reader, hint int64) (f held, release func(), err error) {
	limit := w.lim.MemoryBytes
	bp := memBufs.Get().(*[]byte)
	pooled := (*bp)[:0]
	buf := pooled
	if int64(cap(buf)) > limit {
		buf = buf[:0:limit] // a bigger buffer from a walk with other limits
	}
	if want := min(hint, limit); want > int64(cap(buf)) {
		buf = make([]byte, 0, want)
	}
	given := false
	put := func() {
		keep := buf
		if cap(pooled) > cap(keep) {
			keep = pooled
		}
		if !given && cap(keep) <= maxPooled {
			given = true
			*bp = keep[:0]
			memBufs.Put(bp)
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
			grown := make([]byte, len(buf), min(max(2*int64(cap(buf)), 64<<10), limit))
			copy(grown, buf)
			buf = grown
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
