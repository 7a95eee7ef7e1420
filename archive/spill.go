package archive

import (
	"bytes"
	"io"
	"os"
)

// spill holds a stream that needs random access (zip and 7z keep their
// directory at the end): in memory up to Limits.MemoryBytes, else in an
// anonymous temporary file, removed as soon as it is created so that
// nothing is left behind even if the process dies. The file's name is
// random: nothing from the message ever names a file.
type spill struct {
	mem  []byte
	f    *os.File
	size int64
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
	s.mem = nil
}

// newSpill reads r to its end. r enforces the byte limits (it is metered),
// so the file cannot grow past them.
func newSpill(r io.Reader, memory int64, buf []byte) (*spill, error) {
	head, err := readUpTo(r, memory+1)
	if err != nil {
		return nil, err
	}
	if int64(len(head)) <= memory {
		return &spill{mem: head, size: int64(len(head))}, nil
	}
	f, err := os.CreateTemp("", "portcullis-archive-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	s := &spill{f: f}
	if _, err := f.Write(head); err != nil {
		s.close()
		return nil, err
	}
	n := int64(len(head))
	// head is dead from here on: the collector may take it while the rest streams.
	m, err := io.CopyBuffer(struct{ io.Writer }{f}, r, buf)
	if err != nil {
		s.close()
		return nil, err
	}
	s.size = n + m
	return s, nil
}

func readUpTo(r io.Reader, n int64) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(io.LimitReader(r, n))
	return b.Bytes(), err
}
