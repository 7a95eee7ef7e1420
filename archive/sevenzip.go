package archive

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// check7z verifies a 7z file's signature header and the checksum of its
// header before bodgit/sevenzip parses it. That parser allocates by the
// counts the header declares; a corrupt header would make it ask for
// gigabytes. The CRCs keep corrupt and truncated files (and fuzzed ones)
// away; a deliberately forged header with valid CRCs is not stopped here.
func check7z(r io.ReaderAt, size int64) error {
	var sh [32]byte
	if _, err := r.ReadAt(sh[:], 0); err != nil {
		return fmt.Errorf("%w: 7z signature header: %v", ErrUninspectable, err)
	}
	if crc32.ChecksumIEEE(sh[12:32]) != binary.LittleEndian.Uint32(sh[8:]) {
		return fmt.Errorf("%w: 7z start header checksum", ErrUninspectable)
	}
	off := binary.LittleEndian.Uint64(sh[12:])
	n := binary.LittleEndian.Uint64(sh[20:])
	if off > uint64(size) || n > uint64(size) || 32+off+n > uint64(size) {
		return fmt.Errorf("%w: 7z header beyond the end of the file", ErrUninspectable)
	}
	if n > maxHeader7z {
		return fmt.Errorf("%w: 7z header of %d bytes", ErrUninspectable, n)
	}
	crc := crc32.NewIEEE()
	if _, err := io.Copy(crc, io.NewSectionReader(r, int64(32+off), int64(n))); err != nil {
		return fmt.Errorf("%w: 7z header: %v", ErrUninspectable, err)
	}
	if crc.Sum32() != binary.LittleEndian.Uint32(sh[28:]) {
		return fmt.Errorf("%w: 7z header checksum", ErrUninspectable)
	}
	return nil
}

// maxHeader7z bounds the (packed) 7z header: a million files' names fit.
const maxHeader7z = 64 << 20
