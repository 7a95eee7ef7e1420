package filter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// SpoolConfig configures NewSpool. The zero value holds up to 1 MiB in
// memory, spills larger messages to os.TempDir and refuses messages over
// DefaultMaxMessageBytes.
type SpoolConfig struct {
	// Dir is where messages larger than MemoryBytes go; "" is os.TempDir.
	Dir string
	// MemoryBytes is how much is held in memory before spilling to a
	// file. 0 means DefaultSpoolMemoryBytes; negative means always a file.
	MemoryBytes int64
	// Shared, when set, lets a message larger than MemoryBytes stay in
	// memory as long as the spools sharing it hold less than its total
	// past their own MemoryBytes; the message spills to a file when it
	// would not fit. nil: MemoryBytes alone decides.
	Shared *SpoolBudget
	// MaxBytes bounds the message: reading stops one byte past it with a
	// *LimitError (552 5.3.4). 0 means the pipeline's
	// Limits.MaxMessageBytes (DefaultMaxMessageBytes for NewSpool on its
	// own); negative means no limit, for input you trust.
	MaxBytes int64
}

// DefaultSpoolMemoryBytes is SpoolConfig.MemoryBytes when zero.
const DefaultSpoolMemoryBytes = 1 << 20

// SpoolBudget is memory that spools share past their own
// SpoolConfig.MemoryBytes: a gateway keeps its large messages in memory
// (no temporary file written and read back by every filter) while few
// of them are in flight, and spills them when many are. It is safe for
// concurrent use.
type SpoolBudget struct {
	max  int64
	held atomic.Int64
}

// DefaultSpoolBudgetBytes is a good SpoolBudget size for a gateway: 64
// messages of 4 MiB in memory at once.
const DefaultSpoolBudgetBytes = 256 << 20

// NewSpoolBudget returns a budget of max bytes.
func NewSpoolBudget(max int64) *SpoolBudget { return &SpoolBudget{max: max} }

// Held returns the bytes the spools hold under the budget now.
func (b *SpoolBudget) Held() int64 { return b.held.Load() }

func (b *SpoolBudget) take(n int64) bool {
	if b.held.Add(n) > b.max {
		b.held.Add(-n)
		return false
	}
	return true
}

// spoolChunk is the unit of a spool's memory. Chunks are pooled: a gateway
// spools one message after another, and a fresh megabyte per message would
// be allocated and zeroed each time.
const spoolChunk = 32 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, spoolChunk); return &b }}

// Spool holds one message so that it can be read at any offset, as many
// times as the filters need: in memory up to SpoolConfig.MemoryBytes, else
// in a temporary file. The file is unlinked as soon as it is created (where
// the system allows), so nothing is left behind even if the process dies;
// Close releases it. The file's name is random: nothing from the message
// ever names a file.
//
// A Spool is safe for concurrent use. Close waits for reads in progress,
// and a read after Close fails with ErrSpoolClosed: a filter that outlived
// its deadline can never read the pooled memory of the next message.
type Spool struct {
	mu     sync.RWMutex // Close against ReadAt
	chunks []*[]byte    // memory, each spoolChunk long; nil once in a file
	f      *os.File
	name   string // set when the file could not be unlinked at once
	size   int64
	closed bool
	budget *SpoolBudget
	lent   int64  // bytes of memory held under budget
	mem    []byte // the memory in one slice, once Bytes made it (chunks nil then)
}

var _ io.ReaderAt = (*Spool)(nil)

// ErrSpoolClosed is returned when a closed Spool is read.
var ErrSpoolClosed = errors.New("filter: spool closed")

// NewSpool reads r to its end into a new Spool. The size limit is
// enforced while reading: a message one byte over MaxBytes stops there
// with a *LimitError, having spooled no more. An error of r is returned as
// it is, as io.Copy does. On any error — the limit, a read or write error,
// ctx done, a panic in r — whatever was spooled is released before
// NewSpool returns; a panic is returned as an error, never passed on and
// never a pass.
func NewSpool(ctx context.Context, r io.Reader, cfg SpoolConfig) (sp *Spool, err error) {
	maxBytes := pick(cfg.MaxBytes, DefaultMaxMessageBytes)
	memory := cfg.MemoryBytes
	if memory == 0 {
		memory = DefaultSpoolMemoryBytes
	}
	s := &Spool{budget: cfg.Shared}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("filter: spool: panic while reading the message: %v", p)
		}
		if err != nil {
			s.Close()
			sp = nil
		}
	}()
	if memory < 0 {
		if err := s.spill(cfg.Dir); err != nil {
			return nil, err
		}
	}
	empty := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		buf := s.tail()
		n, rerr := r.Read(buf)
		if n < 0 || n > len(buf) {
			return nil, fmt.Errorf("filter: spool: reader returned %d bytes for a %d-byte buffer", n, len(buf))
		}
		if n == 0 && rerr == nil {
			if empty++; empty >= 100 {
				return nil, fmt.Errorf("filter: spool: %w", io.ErrNoProgress)
			}
			continue
		}
		empty = 0
		if s.size+int64(n) > maxBytes {
			return nil, &LimitError{Limit: LimitMessageBytes, Max: maxBytes}
		}
		if err := s.commit(buf[:n], memory, cfg.Dir); err != nil {
			return nil, err
		}
		if rerr == io.EOF {
			return s, nil
		}
		if rerr != nil {
			return nil, rerr // as io.Copy does: the caller knows what it read
		}
	}
}

// tail returns the buffer the next read goes into: the free end of the
// last memory chunk (a new chunk when it is full), or the copy buffer of a
// file spool (the first chunk, kept for that).
func (s *Spool) tail() []byte {
	if s.f != nil {
		return *s.chunks[0]
	}
	off := int(s.size % spoolChunk)
	if off == 0 && int64(len(s.chunks))*spoolChunk == s.size {
		s.chunks = append(s.chunks, chunkPool.Get().(*[]byte))
	}
	return (*s.chunks[len(s.chunks)-1])[off:]
}

// commit accounts for b, just read into tail(), spilling to a file when
// the memory budget is spent.
func (s *Spool) commit(b []byte, memory int64, dir string) error {
	if s.f != nil {
		if _, err := s.f.Write(b); err != nil {
			return fmt.Errorf("filter: spool: %w", err)
		}
		s.size += int64(len(b))
		return nil
	}
	s.size += int64(len(b))
	if s.size > memory && !s.borrow(memory) {
		return s.spill(dir)
	}
	return nil
}

// borrow reports whether the memory chunks past memory are held under
// the budget, taking what they need more of it.
func (s *Spool) borrow(memory int64) bool {
	if s.budget == nil {
		return false
	}
	need := (s.size+spoolChunk-1)/spoolChunk*spoolChunk - memory // the chunks the bytes fill
	if need <= s.lent {
		return true
	}
	if !s.budget.take(need - s.lent) {
		return false
	}
	s.lent = need
	return true
}

// repay gives back what the spool holds under the budget.
func (s *Spool) repay() {
	if s.lent > 0 {
		s.budget.held.Add(-s.lent)
		s.lent = 0
	}
}

// spill moves the memory held so far into a new temporary file; the first
// chunk stays as the copy buffer.
func (s *Spool) spill(dir string) error {
	f, err := os.CreateTemp(dir, "portcullis-spool-*")
	if err != nil {
		return fmt.Errorf("filter: spool: %w", err)
	}
	if os.Remove(f.Name()) != nil {
		s.name = f.Name() // removed on Close instead
	}
	s.f = f
	rest := s.size
	for _, c := range s.chunks {
		n := min(rest, spoolChunk)
		if _, err := f.Write((*c)[:n]); err != nil {
			return fmt.Errorf("filter: spool: %w", err)
		}
		rest -= n
	}
	if len(s.chunks) == 0 {
		s.chunks = append(s.chunks, chunkPool.Get().(*[]byte))
	}
	for _, c := range s.chunks[1:] {
		chunkPool.Put(c)
	}
	s.chunks = s.chunks[:1]
	s.repay()
	return nil
}

// Bytes returns the message in one slice when it is held in memory; ok is
// false when it is in a file or the spool is closed. The first call
// copies the memory into one new slice, which is the spool's memory from
// then on. That slice is never pooled or reused: it stays valid after
// Close, so a filter that outlived its deadline reads this message, never
// the next one's. A front-end gives it to NewMessageBytes, so that the
// filters read the message in place (Message.Bytes) as they do a message
// they were handed in memory, instead of copying out what they read.
func (s *Spool) Bytes() (raw []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.f != nil {
		return nil, false
	}
	if s.mem == nil {
		b := make([]byte, s.size)
		for i, c := range s.chunks {
			copy(b[int64(i)*spoolChunk:], *c)
			chunkPool.Put(c)
		}
		s.chunks, s.mem = nil, b
	}
	return s.mem, true
}

// Size is the message size in bytes.
func (s *Spool) Size() int64 { return s.size }

// InMemory reports whether the message is held in memory, not in a file.
func (s *Spool) InMemory() bool { return s.f == nil }

// ReadAt implements io.ReaderAt.
func (s *Spool) ReadAt(p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrSpoolClosed
	}
	if off < 0 {
		return 0, errors.New("filter: spool: negative offset")
	}
	if s.f != nil {
		if off >= s.size {
			return 0, io.EOF
		}
		if int64(len(p)) > s.size-off {
			n, err := s.f.ReadAt(p[:s.size-off], off)
			if err == nil {
				err = io.EOF
			}
			return n, err
		}
		return s.f.ReadAt(p, off)
	}
	if s.mem != nil {
		if off >= s.size {
			return 0, io.EOF
		}
		n := copy(p, s.mem[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	n := 0
	for len(p) > 0 && off < s.size {
		c := *s.chunks[off/spoolChunk]
		end := min(int64(spoolChunk), s.size-off/spoolChunk*spoolChunk)
		m := copy(p, c[off%spoolChunk:end])
		n += m
		p = p[m:]
		off += int64(m)
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

// Reader returns a new reader over the whole message; it seeks and reads
// at offsets too.
func (s *Spool) Reader() *io.SectionReader { return io.NewSectionReader(s, 0, s.size) }

// Close releases the memory and the file. It is idempotent.
func (s *Spool) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for _, c := range s.chunks {
		chunkPool.Put(c)
	}
	s.chunks, s.mem = nil, nil
	s.repay()
	var err error
	if s.f != nil {
		err = s.f.Close()
		if s.name != "" {
			if rerr := os.Remove(s.name); err == nil {
				err = rerr
			}
		}
	}
	return err
}
