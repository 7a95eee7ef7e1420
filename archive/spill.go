package archive

import (
	"errors"
	"io"
	"os"
	"sync"
)

// spill holds a stream that needs random access (zip and 7z keep their
// directory at the end): in memory up to Limits.MemoryBytes, else in an
// anonymous temporary file, removed as soon as it is created so that
// nothing is left behind even if the process dies. The file's name is
// random: nothing from the message ever names a file.
type spill struct {
	mem    []byte
	pooled []byte // mem's buffer, back to the pool on close
	f      *os.File
	size   int64
}

func (s *spill) ReadAt(p []byte, off int64) (int, error) {
	if s.f != nil {
		return s.f.ReadAt(p, off)
	}
	if off >= int64(len(s.mem)) {
		return 0, io.EOF
	}
	n := copy(p, s.mem[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// reader returns a new reader over the whole content.
func (s *spill) reader() *io.SectionReader { return io.NewSectionReader(s, 0, s.size) }

func (s *spill) close() {
	if s.f != nil {
		s.f.Close()
	}
	if s.pooled != nil {
		putMem(s.pooled)
	}
	s.mem, s.pooled = nil, nil
}

// newSpill reads r to its end. r enforces the byte limits (it is metered),
// so the file cannot grow past them.
func newSpill(r io.Reader, memory int64, buf []byte) (*spill, error) {
	mem := getMem(memory)
	n, err := io.ReadFull(r, mem[:memory+1])
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return &spill{mem: mem[:n], size: int64(n), pooled: mem}, nil
	case err != nil:
		putMem(mem)
		return nil, err
	}
	f, err := os.CreateTemp("", "portcullis-archive-*")
	if err != nil {
		putMem(mem)
		return nil, err
	}
	os.Remove(f.Name())
	s := &spill{f: f}
	_, err = f.Write(mem[:n])
	putMem(mem)
	if err != nil {
		s.close()
		return nil, err
	}
	m, err := io.CopyBuffer(struct{ io.Writer }{f}, r, buf)
	if err != nil {
		s.close()
		return nil, err
	}
	s.size = int64(n) + m
	return s, nil
}

// Spill buffers are reused: a gateway inspects one zip after another.
var memPool sync.Pool

func getMem(memory int64) []byte {
	if b, ok := memPool.Get().(*[]byte); ok && int64(cap(*b)) == memory+1 {
		return (*b)[:memory+1]
	}
	return make([]byte, memory+1)
}

func putMem(b []byte) { memPool.Put(&b) }
