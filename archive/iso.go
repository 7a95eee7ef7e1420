package archive

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// Windows mounts an .iso (or an .img holding ISO 9660) with a double
// click, and the files inside escape the mark of the web: disk images are
// a favourite wrapper. This is a small ISO 9660 reader of its own
// (github.com/kdomanski/iso9660 reads the same structures but allocates
// each directory at the size it declares): the primary volume descriptor
// and a Joliet supplementary one, directories read sector by sector with
// the entry budget and a depth cap, each file handed on as a section of
// the spooled image under every name the two trees give it. UDF-only and
// other disk images (a partition table, a FAT boot sector, VHD, VHDX) are
// recognised and uninspectable.

const isoSector = 2048

type isoFile struct {
	names     []string
	off, size int64
}

// isISO reports an ISO 9660 volume descriptor at sector 16.
func isISO(r io.ReaderAt) bool {
	var b [6]byte
	_, err := r.ReadAt(b[:], 16*isoSector)
	return err == nil && string(b[1:6]) == "CD001"
}

// diskImage names other disk image formats by their structures, "" for none.
func diskImage(r io.ReaderAt, size int64) string {
	var b [512]byte
	if n, _ := r.ReadAt(b[:], 0); n == 512 {
		switch {
		case string(b[:8]) == "vhdxfile":
			return "vhdx"
		case b[510] == 0x55 && b[511] == 0xaa && (string(b[54:59]) == "FAT12" || string(b[54:59]) == "FAT16" ||
			string(b[82:87]) == "FAT32" || string(b[3:7]) == "NTFS" || string(b[3:8]) == "EXFAT"):
			return "fat/ntfs image"
		case b[510] == 0x55 && b[511] == 0xaa && b[446] <= 0x80 && b[446+4] != 0:
			return "partitioned disk image"
		}
	}
	var v [5]byte
	if _, err := r.ReadAt(v[:], 16*isoSector+1); err == nil && (string(v[:]) == "BEA01" || string(v[:]) == "NSR02" || string(v[:]) == "NSR03") {
		return "udf"
	}
	if size >= 512 {
		var f [8]byte
		if _, err := r.ReadAt(f[:], size-512); err == nil && string(f[:]) == "conectix" {
			return "vhd"
		}
	}
	return ""
}

// readISO lists the files of an ISO 9660 image, from the primary tree and
// a Joliet tree, merged by extent.
func readISO(r io.ReaderAt, size int64, maxEntries int) ([]isoFile, error) {
	byExtent := map[int64]int{}
	var files []isoFile
	entries := 0
	found := false
	for sect := int64(16); sect < 16+32; sect++ {
		var vd [isoSector]byte
		if _, err := r.ReadAt(vd[:], sect*isoSector); err != nil {
			break
		}
		if string(vd[1:6]) != "CD001" || vd[0] == 255 {
			break
		}
		joliet := vd[0] == 2 && vd[88] == '%' && vd[89] == '/' && (vd[90] == '@' || vd[90] == 'C' || vd[90] == 'E')
		if vd[0] != 1 && !joliet {
			continue
		}
		found = true
		root := vd[156 : 156+34]
		type dir struct {
			off, size int64
			path      string
			depth     int
		}
		queue := []dir{{off: int64(binary.LittleEndian.Uint32(root[2:])) * isoSector, size: int64(binary.LittleEndian.Uint32(root[10:]))}}
		seen := map[int64]bool{}
		for len(queue) > 0 {
			d := queue[0]
			queue = queue[1:]
			if seen[d.off] || d.depth > 16 {
				continue
			}
			seen[d.off] = true
			err := isoDir(r, size, d.off, min(d.size, size), joliet, func(name string, off, n int64, isDir bool) error {
				if entries++; entries > maxEntries {
					return fmt.Errorf("%w: more than %d iso entries", ErrLimit, maxEntries)
				}
				p := d.path + name
				if isDir {
					queue = append(queue, dir{off: off, size: n, path: p + "/", depth: d.depth + 1})
					return nil
				}
				if i, ok := byExtent[off]; ok {
					if !contains(files[i].names, p) {
						files[i].names = append(files[i].names, p)
					}
					return nil
				}
				byExtent[off] = len(files)
				files = append(files, isoFile{names: []string{p}, off: off, size: n})
				return nil
			})
			if err != nil {
				return files, err
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: no iso 9660 volume descriptor", ErrUninspectable)
	}
	return files, nil
}

// isoDir reads the records of one directory extent.
func isoDir(r io.ReaderAt, size, off, n int64, joliet bool, fn func(name string, off, n int64, isDir bool) error) error {
	if off+n > size {
		return fmt.Errorf("%w: iso directory beyond the image", ErrUninspectable)
	}
	var sec [isoSector]byte
	for s := int64(0); s < n; s += isoSector {
		k, err := r.ReadAt(sec[:min(isoSector, n-s)], off+s)
		if err != nil && k == 0 {
			return fmt.Errorf("%w: iso directory: %v", ErrUninspectable, err)
		}
		for i := 0; i < k; {
			l := int(sec[i])
			if l == 0 {
				break // the rest of the sector is padding
			}
			if l < 34 || i+l > k {
				return fmt.Errorf("%w: iso directory record", ErrUninspectable)
			}
			rec := sec[i : i+l]
			i += l
			nameLen := int(rec[32])
			if 33+nameLen > l {
				return fmt.Errorf("%w: iso directory name", ErrUninspectable)
			}
			raw := rec[33 : 33+nameLen]
			if nameLen == 1 && (raw[0] == 0 || raw[0] == 1) {
				continue // . and ..
			}
			name := isoName(raw, joliet)
			ext := int64(binary.LittleEndian.Uint32(rec[2:])) * isoSector
			dlen := int64(binary.LittleEndian.Uint32(rec[10:]))
			if ext+dlen > size {
				dlen = max(0, size-ext)
			}
			if err := fn(name, ext, dlen, rec[25]&2 != 0); err != nil {
				return err
			}
		}
	}
	return nil
}

func isoName(raw []byte, joliet bool) string {
	var s string
	if joliet {
		u := make([]uint16, 0, len(raw)/2)
		for i := 0; i+1 < len(raw); i += 2 {
			u = append(u, binary.BigEndian.Uint16(raw[i:]))
		}
		s = string(utf16.Decode(u))
	} else {
		s = string(raw)
	}
	if i := strings.LastIndexByte(s, ';'); i > 0 {
		s = s[:i] // the version: FILE.EXE;1
	}
	return strings.TrimSuffix(s, ".")
}

// iso walks the files of a disk image (a spooled file that isISO).
func (w *walker) iso(n node, sp held) error {
	w.find(KindDiskImage, n.path, "iso9660")
	w.archiveChecks(n, TypeISO)
	if err := w.tick(n.path); err != nil {
		return err
	}
	files, err := readISO(sp, sp.Size(), w.entryBudget())
	if err != nil {
		if errLimit(err) {
			return w.hitLimit("entries", fmt.Sprint(w.lim.MaxEntries), n.path)
		}
		w.find(KindUninspectable, n.path, shortErr(err))
	}
	for _, f := range files {
		if err := w.countEntry(n.path); err != nil {
			return err
		}
		c := n.child(f.names[0], true, f.size)
		c.names = f.names
		if err := w.declared(c.path, f.size, -1); err != nil {
			return err
		}
		if err := w.file(c, w.meter(io.NewSectionReader(sp, f.off, f.size), nil, c.path)); err != nil {
			return err
		}
	}
	return w.tick(n.path)
}
