// Package diskfs is the seam through which the local stores (the queue's
// spool, the quarantine directory) touch the disk: the file system
// interface tests replace to inject full disks, EIO and failing fsyncs,
// the directory fsync that makes renames durable, and the lock that keeps
// two processes out of one directory.
package diskfs

import (
	"io"
	"os"
	"sync/atomic"
)

// FS is the part of the file system a store uses.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Rename(from, to string) error
	Remove(name string) error
	MkdirAll(name string, perm os.FileMode) error
	ReadDir(name string) ([]os.DirEntry, error)
}

// File is the part of *os.File a store uses.
type File interface {
	io.ReaderAt
	io.Writer
	Sync() error
	Close() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
}

// OS is the operating system's file system.
type OS struct{}

// OpenFile opens a file with os.OpenFile.
func (OS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // a typed nil *os.File in the interface would not be nil
	}
	return f, nil
}

// Rename calls os.Rename.
func (OS) Rename(from, to string) error { return os.Rename(from, to) }

// Remove calls os.Remove.
func (OS) Remove(name string) error { return os.Remove(name) }

// MkdirAll calls os.MkdirAll.
func (OS) MkdirAll(name string, perm os.FileMode) error { return os.MkdirAll(name, perm) }

// ReadDir calls os.ReadDir.
func (OS) ReadDir(name string) ([]os.DirEntry, error) { return os.ReadDir(name) }

// SyncDir fsyncs a directory so that creations, renames and removals in it
// are durable.
func SyncDir(fs FS, dir string) error {
	d, err := fs.OpenFile(dir, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Fault is the OS file system with writes or fsyncs failing on demand: a
// full disk, a dying one. Tests use it; the zero value fails nothing.
type Fault struct {
	OS
	failWrite atomic.Pointer[error]
	failSync  atomic.Pointer[error]
}

// FailWrites makes every write write half its bytes and return err (nil
// stops it), as a full disk does.
func (f *Fault) FailWrites(err error) { set(&f.failWrite, err) }

// FailSyncs makes every fsync return err (nil stops it).
func (f *Fault) FailSyncs(err error) { set(&f.failSync, err) }

func set(p *atomic.Pointer[error], err error) {
	if err == nil {
		p.Store(nil)
		return
	}
	p.Store(&err)
}

// OpenFile opens a file whose writes and fsyncs fail on demand.
func (f *Fault) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	fl, err := f.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: fl, fs: f}, nil
}

type faultFile struct {
	File
	fs *Fault
}

func (f *faultFile) Write(b []byte) (int, error) {
	if e := f.fs.failWrite.Load(); e != nil {
		// Like a real full disk: part of it may land.
		n, _ := f.File.Write(b[:len(b)/2])
		return n, *e
	}
	return f.File.Write(b)
}

func (f *faultFile) Sync() error {
	if e := f.fs.failSync.Load(); e != nil {
		return *e
	}
	return f.File.Sync()
}
