package quarantine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/diskfs"
	"github.com/portcullis-mail/portcullis/queue"
)

// DirConfig configures a Dir.
type DirConfig struct {
	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil is a no-op
}

// Dir is a Store in a directory of the local disk,
// with the spool's discipline: every file is written under a temporary
// name, fsynced, renamed into place, and the directory fsynced before a
// change is acknowledged. A message is two files in dir/msg: ID.eml (the
// raw message, written first and never changed) and ID.rec (the record;
// its presence makes the message complete). A record that does not decode
// is moved to dir/corrupt with its message, never deleted. One process
// owns a directory at a time (a lock file).
type Dir struct {
	dir, msgs, tmp, corrupt string
	cfg                     DirConfig
	fs                      diskfs.FS
	unlock                  func()

	mu     sync.Mutex
	index  map[ID]Held
	closed bool
	seq    int
}

var _ Store = (*Dir)(nil)

// OpenDir opens (creating if needed) the quarantine in dir and
// loads its records.
func OpenDir(dir string, cfg DirConfig) (*Dir, error) {
	return openDir(dir, cfg, diskfs.OS{})
}

func openDir(dir string, cfg DirConfig, fs diskfs.FS) (*Dir, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Metrics = filter.OrNop(cfg.Metrics)
	d := &Dir{
		dir: dir, msgs: filepath.Join(dir, "msg"), tmp: filepath.Join(dir, "tmp"), corrupt: filepath.Join(dir, "corrupt"),
		cfg: cfg, fs: fs, index: map[ID]Held{},
	}
	for _, p := range []string{d.msgs, d.tmp, d.corrupt} {
		if err := fs.MkdirAll(p, 0o700); err != nil {
			return nil, fmt.Errorf("quarantine: %w", err)
		}
	}
	unlock, err := diskfs.Lock(dir, "quarantine: directory")
	if err != nil {
		return nil, err
	}
	d.unlock = unlock
	if err := d.load(); err != nil {
		unlock()
		return nil, err
	}
	return d, nil
}

// load reads every record. Leftover temporary files and messages without
// a record (a Put or Remove cut short) are removed: they were never
// acknowledged, or their removal was.
func (d *Dir) load() error {
	tmps, err := d.fs.ReadDir(d.tmp)
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	for _, t := range tmps {
		_ = d.fs.Remove(filepath.Join(d.tmp, t.Name()))
	}
	ents, err := d.fs.ReadDir(d.msgs)
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	emls := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".eml"):
			emls[strings.TrimSuffix(name, ".eml")] = true
		case strings.HasSuffix(name, ".rec"):
		default:
			d.moveAside(name, "foreign file")
		}
	}
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".rec")
		if !ok {
			continue
		}
		h, err := d.readRecord(e.Name())
		switch {
		case err != nil:
		case string(h.ID) != base:
			err = fmt.Errorf("record of %s stored as %s", h.ID, e.Name())
		case !emls[base]:
			err = errors.New("message file missing")
		}
		if err != nil {
			d.moveAside(e.Name(), err.Error())
			if emls[base] {
				d.moveAside(base+".eml", "its record is corrupt")
			}
			delete(emls, base)
			continue
		}
		delete(emls, base)
		d.index[h.ID] = h
	}
	for base := range emls {
		d.cfg.Logger.Info("quarantine: removing a message without record (an interrupted put or remove)", "file", base+".eml")
		_ = d.fs.Remove(filepath.Join(d.msgs, base+".eml"))
	}
	d.cfg.Metrics.Set("portcullis_quarantine_size", float64(len(d.index)))
	return nil
}

func (d *Dir) readRecord(name string) (Held, error) {
	f, err := d.fs.OpenFile(filepath.Join(d.msgs, name), os.O_RDONLY, 0)
	if err != nil {
		return Held{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, maxHeldRecord+1), maxHeldRecord+1))
	if err != nil {
		return Held{}, err
	}
	var h Held
	return h, h.UnmarshalBinary(b)
}

// moveAside moves a damaged file of dir/msg to dir/corrupt.
func (d *Dir) moveAside(name, reason string) {
	d.cfg.Logger.Error("quarantine: corrupt file moved aside", "file", name, "reason", reason, "to", d.corrupt)
	d.cfg.Metrics.Add("portcullis_quarantine_corrupt_total", 1)
	if err := d.fs.Rename(filepath.Join(d.msgs, name), filepath.Join(d.corrupt, name)); err != nil {
		d.cfg.Logger.Error("quarantine: moving a corrupt file aside failed; left in place", "file", name, "err", err)
	}
}

func (d *Dir) check(ctx context.Context) error {
	if d.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// writeFile writes data under a temporary name, fsyncs it and renames it to
// dir/msg/name, then fsyncs dir/msg. Any failure leaves the old file (if
// any) in place and is returned: the change did not happen.
func (d *Dir) writeFile(name string, data []byte) error {
	d.seq++
	tmp := filepath.Join(d.tmp, fmt.Sprintf("%s.%d.tmp", name, d.seq))
	f, err := d.fs.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.fs.Rename(tmp, filepath.Join(d.msgs, name))
	}
	if err != nil {
		_ = d.fs.Remove(tmp)
		return fmt.Errorf("quarantine: writing %s: %w", name, err)
	}
	if err := diskfs.SyncDir(d.fs, d.msgs); err != nil {
		return fmt.Errorf("quarantine: syncing directory: %w", err)
	}
	return nil
}

// Put implements Store: the message, then the record.
func (d *Dir) Put(ctx context.Context, h Held, raw []byte) error {
	rec, err := h.MarshalBinary()
	if err != nil {
		return err
	}
	if !h.ID.Valid() {
		return fmt.Errorf("quarantine: invalid id %q", h.ID)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(ctx); err != nil {
		return err
	}
	if _, dup := d.index[h.ID]; dup {
		return fmt.Errorf("quarantine: %s exists", h.ID)
	}
	if err := d.writeFile(string(h.ID)+".eml", raw); err != nil {
		return err
	}
	if err := d.writeFile(string(h.ID)+".rec", rec); err != nil {
		return err
	}
	d.index[h.ID] = h.clone()
	d.cfg.Metrics.Set("portcullis_quarantine_size", float64(len(d.index)))
	return nil
}

// Update implements Store.
func (d *Dir) Update(ctx context.Context, h Held) error {
	rec, err := h.MarshalBinary()
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(ctx); err != nil {
		return err
	}
	old, ok := d.index[h.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, h.ID)
	}
	if h.Size != old.Size || h.Checksum != old.Checksum {
		return fmt.Errorf("quarantine: update of %s changes its message", h.ID)
	}
	if err := d.writeFile(string(h.ID)+".rec", rec); err != nil {
		return err
	}
	d.index[h.ID] = h.clone()
	return nil
}

// Remove implements Store: the record, then the message.
func (d *Dir) Remove(ctx context.Context, id ID) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(ctx); err != nil {
		return err
	}
	if _, ok := d.index[id]; !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err := d.fs.Remove(filepath.Join(d.msgs, string(id)+".rec")); err != nil {
		return fmt.Errorf("quarantine: removing %s: %w", id, err)
	}
	delete(d.index, id) // gone from the directory even if the sync below fails
	if err := diskfs.SyncDir(d.fs, d.msgs); err != nil {
		return fmt.Errorf("quarantine: syncing directory: %w", err)
	}
	if err := d.fs.Remove(filepath.Join(d.msgs, string(id)+".eml")); err != nil {
		d.cfg.Logger.Warn("quarantine: removing a message file failed; removed at the next open", "id", id, "err", err)
	}
	d.cfg.Metrics.Set("portcullis_quarantine_size", float64(len(d.index)))
	return nil
}

// Body implements Store.
func (d *Dir) Body(ctx context.Context, id ID) (queue.Body, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(ctx); err != nil {
		return nil, err
	}
	h, ok := d.index[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	f, err := d.fs.OpenFile(filepath.Join(d.msgs, string(id)+".eml"), os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	if st.Size() != h.Size {
		f.Close()
		return nil, fmt.Errorf("%w: quarantined %s: %d bytes, record says %d", ErrCorrupt, id, st.Size(), h.Size)
	}
	return fileBody{f, st.Size()}, nil
}

type fileBody struct {
	diskfs.File
	size int64
}

func (b fileBody) Size() int64 { return b.size }

// All implements Store.
func (d *Dir) All(ctx context.Context) ([]Held, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.check(ctx); err != nil {
		return nil, err
	}
	out := make([]Held, 0, len(d.index))
	for _, h := range d.index {
		out = append(out, h.clone())
	}
	slices.SortFunc(out, func(a, b Held) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out, nil
}

// Close implements Store.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.unlock()
	return nil
}
