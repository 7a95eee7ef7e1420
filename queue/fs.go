package queue

import "github.com/portcullis-mail/portcullis/internal/diskfs"

// The spool touches the disk through internal/diskfs, so that tests can
// inject full disks, EIO and failing fsyncs.
type (
	fileSystem = diskfs.FS
	file       = diskfs.File
	osFS       = diskfs.OS
)

func syncDir(fs fileSystem, dir string) error { return diskfs.SyncDir(fs, dir) }

func lockDir(dir string) (func(), error) { return diskfs.Lock(dir, "queue: spool") }
