package queue

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// SpoolConfig configures the local spool. The zero value is usable.
type SpoolConfig struct {
	// MaxMessageBytes bounds one body; 0 means 64 MiB. Recovery never
	// allocates or trusts a record larger than this.
	MaxMessageBytes int64
	// SegmentBytes is the size at which the spool starts a new segment
	// file; 0 means 64 MiB.
	SegmentBytes int64
	// MaxBatchBytes bounds the bytes written under one fsync; 0 means 8 MiB.
	MaxBatchBytes int
	// SweepInterval is how often the spool directory is checked for files
	// that do not belong (moved to corrupt/); 0 means one minute, a
	// negative value disables the sweep.
	SweepInterval time.Duration
	Logger        *slog.Logger   // nil discards
	Metrics       filter.Metrics // nil is a no-op

	fs fileSystem // tests inject faults here; nil is the OS
	// syncDelay is how long records written by UpdateWritten may wait
	// for their fsync when nothing else comes; 0 means
	// DefaultWrittenSyncDelay (tests shorten it).
	syncDelay time.Duration
}

// DefaultWrittenSyncDelay bounds how long a record written by
// UpdateWritten waits for its fsync when no other write comes to carry it.
const DefaultWrittenSyncDelay = 200 * time.Millisecond

func (c SpoolConfig) withDefaults() SpoolConfig {
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Metrics = filter.OrNop(c.Metrics)
	if c.fs == nil {
		c.fs = osFS{}
	}
	if c.syncDelay <= 0 {
		c.syncDelay = DefaultWrittenSyncDelay
	}
	return c
}

// Spool is the local Store: append-only segment files with group commit.
// See the package comment for its discipline.
type Spool struct {
	cfg        SpoolConfig
	dir        string // segments
	corruptDir string
	maxPayload int64

	mu     sync.Mutex // guards index, segs, closed
	index  map[ID]*loc
	segs   []*segment // ascending seq; the last may be the active one
	closed bool
	unlock func()

	reqs      chan *writeReq
	quit      chan struct{}
	writerRan chan struct{}
	sweepRan  chan struct{}

	// owned by the writer goroutine
	active     *segment
	activeFile file
	nextSeq    uint64
	relocating *segment
	wbuf       []byte
	// dirty: the active segment holds records written and not yet
	// fsynced (UpdateWritten's); the next fsync, a segment change, Close
	// or syncDelay of quiet fsyncs them.
	dirty bool
}

type segment struct {
	seq       uint64
	size      int64 // bytes durable in it (or written, for the active one)
	live      int   // entries whose put is in this segment
	liveBytes int64 // the length of those puts' records
}

func (g *segment) name() string { return fmt.Sprintf("seg-%016x.log", g.seq) }

// loc is where an entry lives.
type loc struct {
	e       Entry
	seg     *segment
	recOff  int64
	recLen  int64
	bodyOff int64
	bodyCRC uint32
}

type writeReq struct {
	kind    byte
	buf     []byte // the record, or for a put its head: body and trailer follow
	body    []byte
	trailer []byte
	entry   Entry  // put, update
	id      ID     // remove
	metaLen int64  // put: to locate the body
	bodyCRC uint32 // put
	written bool   // acknowledged once written, before its fsync (UpdateWritten)
	done    chan error
}

func (r *writeReq) size() int { return len(r.buf) + len(r.body) + len(r.trailer) }

var _ Store = (*Spool)(nil)
var _ SpaceReporter = (*Spool)(nil)

// OpenSpool opens (creating if needed) the spool in dir and recovers it:
// every complete entry is found again, damaged records and foreign files
// are moved to dir/corrupt with a log line and the
// portcullis_queue_corrupt_total metric. Nothing is ever deleted from
// corrupt/.
func OpenSpool(dir string, cfg SpoolConfig) (*Spool, error) {
	cfg = cfg.withDefaults()
	s := &Spool{
		cfg:        cfg,
		dir:        filepath.Join(dir, "spool"),
		corruptDir: filepath.Join(dir, "corrupt"),
		maxPayload: cfg.MaxMessageBytes + maxMetaBytes + 4,
		index:      make(map[ID]*loc),
		reqs:       make(chan *writeReq, 1024),
		quit:       make(chan struct{}),
		writerRan:  make(chan struct{}),
		sweepRan:   make(chan struct{}),
	}
	for _, d := range []string{s.dir, s.corruptDir} {
		if err := cfg.fs.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("queue: spool: %w", err)
		}
	}
	if err := syncDir(cfg.fs, dir); err != nil {
		return nil, fmt.Errorf("queue: spool: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s.unlock = unlock
	if err := s.recover(); err != nil {
		s.closeFile()
		unlock()
		return nil, err
	}
	go s.writer()
	if cfg.SweepInterval > 0 {
		go s.sweeper()
	} else {
		close(s.sweepRan)
	}
	return s, nil
}

// recover replays the segments in order.
func (s *Spool) recover() error {
	ents, err := s.cfg.fs.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("queue: spool: %w", err)
	}
	var seqs []uint64
	for _, de := range ents {
		if seq, ok := parseSegName(de.Name()); ok && de.Type().IsRegular() {
			seqs = append(seqs, seq)
			continue
		}
		if err := s.moveAside(de.Name(), "foreign"); err != nil {
			return err
		}
	}
	slices.Sort(seqs)
	damaged := -1 // index in s.segs of the last segment with damage before its end
	for _, seq := range seqs {
		g := &segment{seq: seq}
		s.segs = append(s.segs, g)
		bad, size, err := s.scan(g)
		if err != nil {
			return err
		}
		g.size = size
		for _, b := range bad {
			if !b.torn {
				damaged = len(s.segs) - 1
			}
		}
		if len(bad) > 0 && damaged != len(s.segs)-1 {
			// Only a torn tail: a write cut short by a crash. Keep its
			// bytes in corrupt/ and cut it off so it is seen once.
			if err := s.cutTail(g, bad[len(bad)-1]); err != nil {
				return err
			}
		}
	}
	if len(s.segs) > 0 {
		s.nextSeq = s.segs[len(s.segs)-1].seq + 1
	}
	if damaged >= 0 {
		return s.evacuate(damaged)
	}
	return nil
}

// scan replays one segment into the index.
func (s *Spool) scan(g *segment) ([]badRange, int64, error) {
	f, err := s.cfg.fs.OpenFile(filepath.Join(s.dir, g.name()), os.O_RDONLY, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("queue: spool: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("queue: spool: %w", err)
	}
	bad, err := scanSegment(f, st.Size(), s.maxPayload, func(r record) { s.apply(g, r) })
	if err != nil {
		return nil, 0, fmt.Errorf("queue: spool: reading %s: %w", g.name(), err)
	}
	for _, b := range bad {
		s.corrupt(g.name(), b.reason, "offset", b.off, "bytes", b.length, "torn", b.torn)
	}
	return bad, st.Size(), nil
}

// apply makes a durable record visible. Called with s.mu held, or during
// recovery.
func (s *Spool) apply(g *segment, r record) {
	switch r.kind {
	case kindPut:
		if old := s.index[r.id]; old != nil {
			old.seg.live--
			old.seg.liveBytes -= old.recLen
		}
		s.index[r.id] = &loc{e: r.entry, seg: g, recOff: r.off, recLen: r.length, bodyOff: r.bodyOff, bodyCRC: r.bodyCRC}
		g.live++
		g.liveBytes += r.length
	case kindUpdate:
		if l := s.index[r.id]; l != nil {
			size := l.e.Size
			l.e = r.entry
			l.e.Size = size
		}
	case kindRemove:
		if l := s.index[r.id]; l != nil {
			l.seg.live--
			l.seg.liveBytes -= l.recLen
			delete(s.index, r.id)
		}
	}
}

// corrupt logs and counts one thing moved aside.
func (s *Spool) corrupt(what, reason string, attrs ...any) {
	s.cfg.Logger.Warn("queue: corrupt spool data moved aside", append([]any{"file", what, "reason", reason}, attrs...)...)
	s.cfg.Metrics.Add("portcullis_queue_corrupt_total", 1, "reason", reasonLabel(reason))
}

func reasonLabel(reason string) string {
	switch {
	case reason == "foreign":
		return "foreign"
	case strings.Contains(reason, "short"):
		return "truncated"
	case strings.Contains(reason, "checksum"):
		return "checksum"
	}
	return "undecodable"
}

// moveAside renames a file of the spool directory into corrupt/.
func (s *Spool) moveAside(name, reason string) error {
	to := filepath.Join(s.corruptDir, time.Now().UTC().Format("20060102T150405.000000000")+"-"+name)
	if err := s.cfg.fs.Rename(filepath.Join(s.dir, name), to); err != nil {
		return fmt.Errorf("queue: spool: moving %s aside: %w", name, err)
	}
	if err := syncDir(s.cfg.fs, s.corruptDir); err != nil {
		return fmt.Errorf("queue: spool: %w", err)
	}
	if err := syncDir(s.cfg.fs, s.dir); err != nil {
		return fmt.Errorf("queue: spool: %w", err)
	}
	if reason == "foreign" {
		s.corrupt(name, reason)
	}
	return nil
}

// copyAside writes a stretch of a segment to a new file in corrupt/,
// durably.
func (s *Spool) copyAside(g *segment, off, n int64, tag string) error {
	src, err := s.cfg.fs.OpenFile(filepath.Join(s.dir, g.name()), os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("queue: spool: %w", err)
	}
	defer src.Close()
	name := filepath.Join(s.corruptDir, fmt.Sprintf("%s-%s-%d", g.name(), tag, off))
	dst, err := s.cfg.fs.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("queue: spool: %w", err)
	}
	_, err = io.Copy(dst, io.NewSectionReader(src, off, n))
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(s.cfg.fs, s.corruptDir)
	}
	if err != nil {
		return fmt.Errorf("queue: spool: copying aside: %w", err)
	}
	return nil
}

// cutTail moves a torn tail aside and truncates the segment before it.
func (s *Spool) cutTail(g *segment, b badRange) error {
	if err := s.copyAside(g, b.off, b.length, "tail"); err != nil {
		return err
	}
	f, err := s.cfg.fs.OpenFile(filepath.Join(s.dir, g.name()), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("queue: spool: %w", err)
	}
	err = f.Truncate(b.off)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("queue: spool: truncating %s: %w", g.name(), err)
	}
	g.size = b.off
	return nil
}

// evacuate handles a segment damaged before its end: every live entry in
// it and in older segments is rewritten to a fresh segment, then the
// damaged segment moves to corrupt/ whole and the older ones, now empty,
// are deleted. Rewriting the older entries too keeps the updates and
// removals the damaged segment recorded for them.
func (s *Spool) evacuate(upto int) error {
	bad := s.segs[upto]
	old := s.segs[:upto+1]
	var batch []*writeReq
	for _, l := range s.index {
		if l.seg.seq <= bad.seq {
			r, err := s.relocation(l)
			if err != nil {
				return err
			}
			batch = append(batch, r)
		}
	}
	s.segs = slices.Clone(s.segs[upto+1:])
	if err := s.writeBatch(batch); err != nil {
		return err
	}
	if err := s.moveAside(bad.name(), "damaged"); err != nil {
		return err
	}
	for _, g := range old {
		if g != bad {
			if err := s.cfg.fs.Remove(filepath.Join(s.dir, g.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("queue: spool: %w", err)
			}
		}
	}
	return syncDir(s.cfg.fs, s.dir)
}

// relocation builds a put that copies an entry, with its current metadata,
// from its segment.
func (s *Spool) relocation(l *loc) (*writeReq, error) {
	f, err := s.cfg.fs.OpenFile(filepath.Join(s.dir, l.seg.name()), os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("queue: spool: %w", err)
	}
	defer f.Close()
	body := make([]byte, l.e.Size)
	if _, err := f.ReadAt(body, l.bodyOff); err != nil {
		return nil, fmt.Errorf("queue: spool: relocating %s: %w", l.e.ID, err)
	}
	return s.putReq(l.e, body), nil
}

func (s *Spool) putReq(e Entry, body []byte) *writeReq {
	bodyCRC := crc(body)
	return s.putReqMeta(e, encodeMeta(e, bodyCRC), body, bodyCRC)
}

func (s *Spool) putReqMeta(e Entry, m, body []byte, bodyCRC uint32) *writeReq {
	head, trailer := putParts(m, body)
	metaLen := int64(len(head)) - recHeaderLen - 4
	return &writeReq{kind: kindPut, buf: head, body: body, trailer: trailer[:], entry: e, id: e.ID, metaLen: metaLen, bodyCRC: bodyCRC}
}

func parseSegName(name string) (uint64, bool) {
	hex, ok := strings.CutPrefix(name, "seg-")
	if !ok {
		return 0, false
	}
	hex, ok = strings.CutSuffix(hex, ".log")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil
}

// Put implements Store.
func (s *Spool) Put(ctx context.Context, e Entry, body []byte) error {
	if int64(len(body)) > s.cfg.MaxMessageBytes {
		return &filter.LimitError{Limit: filter.LimitMessageBytes, Max: s.cfg.MaxMessageBytes}
	}
	if !validID(string(e.ID)) {
		return fmt.Errorf("queue: spool: invalid id %q", e.ID)
	}
	if len(e.Envelope.RcptTo) == 0 {
		return ErrNoRecipients
	}
	e = e.clone()
	e.Size = int64(len(body))
	bodyCRC := crc(body)
	m := encodeMeta(e, bodyCRC)
	if err := checkMeta(e, m); err != nil {
		return err
	}
	return s.submit(ctx, s.putReqMeta(e, m, body, bodyCRC))
}

// Update implements Store.
func (s *Spool) Update(ctx context.Context, e Entry) error { return s.update(ctx, e, false) }

// UpdateWritten implements WrittenUpdater: the record is acknowledged once
// the kernel has it, and fsynced with the next batch that needs an fsync,
// when its segment is retired or closed, or after DefaultWrittenSyncDelay
// of quiet, whichever comes first.
func (s *Spool) UpdateWritten(ctx context.Context, e Entry) error { return s.update(ctx, e, true) }

var _ WrittenUpdater = (*Spool)(nil)

func (s *Spool) update(ctx context.Context, e Entry, written bool) error {
	s.mu.Lock()
	l := s.index[e.ID]
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, e.ID)
	}
	e = e.clone()
	e.Size = l.e.Size
	m := encodeMeta(e, l.bodyCRC)
	if err := checkMeta(e, m); err != nil {
		return err
	}
	return s.submit(ctx, &writeReq{kind: kindUpdate, buf: appendRecord(nil, kindUpdate, m), entry: e, id: e.ID, written: written})
}

// Remove implements Store.
func (s *Spool) Remove(ctx context.Context, id ID) error {
	s.mu.Lock()
	l := s.index[id]
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return s.submit(ctx, &writeReq{kind: kindRemove, buf: appendRecord(nil, kindRemove, []byte(id)), id: id})
}

// submit hands a record to the writer and waits until it is durable. A
// caller whose ctx ends stops waiting; the record may still become
// durable (at-least-once).
func (s *Spool) submit(ctx context.Context, r *writeReq) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ErrClosed
	}
	r.done = make(chan error, 1)
	select {
	case s.reqs <- r:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-s.writerRan:
		select {
		case err := <-r.done:
			return err
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writer is the group commit: it takes every request waiting, writes them
// all, fsyncs once and then acknowledges each.
func (s *Spool) writer() {
	defer close(s.writerRan)
	for {
		var first *writeReq
		var quiet <-chan time.Time
		if s.dirty {
			quiet = time.After(s.cfg.syncDelay)
		}
		select {
		case first = <-s.reqs:
		case <-quiet:
			s.syncWritten()
			continue
		case <-s.quit:
			// Fail whatever raced with Close.
			for {
				select {
				case r := <-s.reqs:
					r.done <- ErrClosed
				default:
					s.retire()
					return
				}
			}
		}
		batch := []*writeReq{first}
		n := first.size()
	drain:
		for n < s.cfg.MaxBatchBytes {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				n += r.size()
			default:
				break drain
			}
		}
		if s.relocating != nil {
			batch = append(s.relocations(), batch...)
		}
		err := s.writeBatch(batch)
		for _, r := range batch {
			if r.done != nil {
				if err != nil {
					r.done <- err
				} else {
					r.done <- nil
				}
			}
		}
	}
}

// writeBatch appends a batch to the active segment, fsyncs it and applies
// it to the index. On a write or fsync error the segment is abandoned: a
// failed fsync leaves the page cache in an unknown state, so nothing is
// ever written to that file again and the error is final for the batch.
func (s *Spool) writeBatch(batch []*writeReq) error {
	if len(batch) == 0 {
		return nil
	}
	if err := s.ensureActive(); err != nil {
		return err
	}
	g := s.active
	offs := make([]int64, len(batch))
	off := g.size
	buf := s.wbuf[:0]
	for i, r := range batch {
		offs[i] = off
		off += int64(r.size())
		buf = append(buf, r.buf...)
		buf = append(buf, r.body...)
		buf = append(buf, r.trailer...)
	}
	if cap(buf) <= 4*s.cfg.MaxBatchBytes {
		s.wbuf = buf // reused by the next batch; a giant message's buffer is not kept
	}
	needSync := false
	for _, r := range batch {
		needSync = needSync || !r.written
	}
	_, err := s.activeFile.Write(buf)
	if err == nil && needSync {
		err = s.fsync(g)
	} else if err == nil {
		s.dirty = true
	} else {
		err = fmt.Errorf("queue: spool: write %s: %w", g.name(), err)
	}
	if err != nil {
		s.cfg.Logger.Error("queue: spool write failed; segment abandoned", "segment", g.name(), "err", err, "records", len(batch))
		s.cfg.Metrics.Add("portcullis_queue_write_errors_total", 1)
		s.closeFile()
		return err
	}
	g.size = off
	s.mu.Lock()
	for i, r := range batch {
		rec := record{kind: r.kind, off: offs[i], length: int64(r.size()), entry: r.entry, id: r.id, bodyCRC: r.bodyCRC}
		rec.bodyOff = offs[i] + recHeaderLen + 4 + r.metaLen
		if r.kind == kindUpdate && s.index[r.id] == nil && r.done != nil {
			r.done <- fmt.Errorf("%w: %s", ErrNotFound, r.id)
			r.done = nil
		}
		s.apply(g, rec)
	}
	s.collect()
	s.mu.Unlock()
	if g.size >= s.cfg.SegmentBytes {
		s.retire()
	}
	return nil
}

// fsync syncs the active segment g; everything written to it before is
// durable after a nil error.
func (s *Spool) fsync(g *segment) error {
	start := time.Now()
	err := s.activeFile.Sync()
	s.cfg.Metrics.Observe("portcullis_queue_fsync_seconds", time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("queue: spool: fsync %s: %w", g.name(), err)
	}
	s.dirty = false
	return nil
}

// syncWritten fsyncs the records UpdateWritten acknowledged before their
// fsync. Their callers are gone: a failure is logged and counted, and the
// segment abandoned as after any failed fsync. What those records said
// (an attempt started, an attempt deferred) may then be lost to a machine
// crash, which costs an early retry, never a message.
func (s *Spool) syncWritten() {
	if !s.dirty || s.activeFile == nil {
		return
	}
	if err := s.fsync(s.active); err != nil {
		s.cfg.Logger.Error("queue: spool fsync failed; segment abandoned", "segment", s.active.name(), "err", err)
		s.cfg.Metrics.Add("portcullis_queue_write_errors_total", 1)
		s.closeFile()
	}
}

// retire closes the active segment once whatever was only written to it
// is fsynced.
func (s *Spool) retire() {
	s.syncWritten()
	s.closeFile()
}

// ensureActive opens a new segment when there is none: created, then the
// directory fsynced, before any record in it is acknowledged.
func (s *Spool) ensureActive() error {
	if s.activeFile != nil {
		return nil
	}
	g := &segment{seq: s.nextSeq}
	f, err := s.cfg.fs.OpenFile(filepath.Join(s.dir, g.name()), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("queue: spool: new segment: %w", err)
	}
	s.nextSeq++
	if err := syncDir(s.cfg.fs, s.dir); err != nil {
		f.Close()
		return fmt.Errorf("queue: spool: new segment: %w", err)
	}
	s.active, s.activeFile = g, f
	s.mu.Lock()
	s.segs = append(s.segs, g)
	s.mu.Unlock()
	return nil
}

func (s *Spool) closeFile() {
	if s.activeFile != nil {
		s.activeFile.Close()
	}
	s.active, s.activeFile = nil, nil
	s.dirty = false
}

// relocateBehind is how many segments may sit behind the active one before
// the oldest one's live entries are copied forward so it can be deleted: a
// message that retries for days must not pin every segment after it. That
// copy is only made while at least half of what sits behind the active
// segment is dead: copying a backlog that is all live (a next hop down
// for hours) would free nothing and rewrite every message once per
// relocateBehind segments of new mail (in the bench's store-only run of
// 3 MB messages the spool's writes and relocations were a fifth of the
// gateway's CPU). Disk use stays within
// twice the live bytes and relocateBehind segments, and every byte copied
// frees at least as many.
const relocateBehind = 4

// collect deletes the oldest segments once nothing lives in them, and
// starts relocating the oldest when too many pile up. Called with s.mu
// held, from the writer.
func (s *Spool) collect() {
	removed := false
	for len(s.segs) > 0 && s.segs[0] != s.active && s.segs[0].live == 0 {
		g := s.segs[0]
		if err := s.cfg.fs.Remove(filepath.Join(s.dir, g.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.cfg.Logger.Error("queue: spool: removing segment", "segment", g.name(), "err", err)
			break
		}
		if s.relocating == g {
			s.relocating = nil
		}
		s.segs = s.segs[1:]
		removed = true
	}
	if removed {
		// Older segments go first, so a removal that is lost in a crash
		// brings back only entries whose removal records went with it:
		// duplicates, never losses. The fsync makes even that rare.
		if err := syncDir(s.cfg.fs, s.dir); err != nil {
			s.cfg.Logger.Error("queue: spool: fsync dir", "err", err)
		}
	}
	if s.relocating == nil && len(s.segs) > relocateBehind && s.segs[0] != s.active && s.mostlyDead() {
		s.relocating = s.segs[0]
	}
}

// mostlyDead reports whether at least half of the bytes in the segments
// behind the active one belong to entries no longer there.
func (s *Spool) mostlyDead() bool {
	var size, live int64
	for _, g := range s.segs {
		if g != s.active {
			size += g.size
			live += g.liveBytes
		}
	}
	return 2*live <= size
}

// relocations returns puts that copy up to a batch's worth of entries out
// of the segment being relocated. Built by the writer between batches, so
// the metadata copied is the latest durable one.
func (s *Spool) relocations() []*writeReq {
	s.mu.Lock()
	g := s.relocating
	var ls []*loc
	for _, l := range s.index {
		if l.seg == g {
			ls = append(ls, l)
		}
	}
	s.mu.Unlock()
	var out []*writeReq
	n := 0
	for _, l := range ls {
		if n >= s.cfg.MaxBatchBytes {
			break
		}
		r, err := s.relocation(l)
		if err != nil {
			s.cfg.Logger.Error("queue: spool: relocation", "err", err)
			s.relocating = nil
			break
		}
		n += r.size()
		out = append(out, r)
	}
	return out
}

// Body implements Store. The body is checked against its checksum first;
// one that fails is moved aside and its entry removed.
func (s *Spool) Body(ctx context.Context, id ID) (Body, error) {
	s.mu.Lock()
	l := s.index[id]
	var cp loc
	if l != nil {
		cp = *l
	}
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if l == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	f, err := s.cfg.fs.OpenFile(filepath.Join(s.dir, cp.seg.name()), os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("queue: spool: %w", err)
	}
	sr := io.NewSectionReader(f, cp.bodyOff, cp.e.Size)
	h := crc32.New(castagnoli)
	if _, err := io.Copy(h, sr); err != nil {
		f.Close()
		return nil, fmt.Errorf("queue: spool: reading %s: %w", id, err)
	}
	if h.Sum32() != cp.bodyCRC {
		f.Close()
		s.corrupt(cp.seg.name(), "checksum", "id", id, "offset", cp.recOff)
		if err := s.copyAside(cp.seg, cp.recOff, cp.recLen, "rec"); err != nil {
			return nil, err
		}
		if err := s.Remove(ctx, id); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s: body checksum mismatch (moved to corrupt/)", ErrCorrupt, id)
	}
	return &spoolBody{SectionReader: sr, f: f}, nil
}

type spoolBody struct {
	*io.SectionReader
	f file
}

func (b *spoolBody) Close() error { return b.f.Close() }

// Entries implements Store.
func (s *Spool) Entries(ctx context.Context) ([]Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	out := make([]Entry, 0, len(s.index))
	for _, l := range s.index {
		out = append(out, l.e.clone())
	}
	sortEntries(out)
	return out, nil
}

// FreeBytes implements SpaceReporter.
func (s *Spool) FreeBytes() (uint64, error) { return freeBytes(s.dir) }

// Close implements Store. Requests in flight fail with ErrClosed or
// complete; none is left half done.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.writerRan
	<-s.sweepRan
	s.unlock()
	return nil
}

// sweeper moves files that do not belong out of the live spool directory.
func (s *Spool) sweeper() {
	defer close(s.sweepRan)
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

func (s *Spool) sweep() {
	ents, err := s.cfg.fs.ReadDir(s.dir)
	if err != nil {
		s.cfg.Logger.Error("queue: spool: sweep", "err", err)
		return
	}
	for _, de := range ents {
		if _, ok := parseSegName(de.Name()); ok && de.Type().IsRegular() {
			continue
		}
		if err := s.moveAside(de.Name(), "foreign"); err != nil {
			s.cfg.Logger.Error("queue: spool: sweep", "err", err)
		}
	}
}
