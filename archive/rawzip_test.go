package archive

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
)

// rawEntry is one entry of a zip written byte by byte, for structures no
// well-behaved writer makes.
type rawEntry struct {
	name      string
	localName string // "" = name
	method    uint16
	flags     uint16
	data      []byte // as stored (already compressed when method != 0)
	size      uint32 // uncompressed size; 0 = len(data)
	crc       uint32
	external  uint32
	creator   uint8
	offset    int // -1: where it was written; otherwise the central directory points here (always set it)
}

// rawZip writes entries as local header + data, then a central directory
// and an end record; base is added to every offset (for zips that are
// meant to sit after other data).
func rawZip(base int, entries ...rawEntry) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	offs := make([]int, len(entries))
	for i, e := range entries {
		offs[i] = b.Len()
		local := e.localName
		if local == "" {
			local = e.name
		}
		size := e.size
		if size == 0 {
			size = uint32(len(e.data))
		}
		crc := e.crc
		if crc == 0 && e.method == 0 {
			crc = crc32.ChecksumIEEE(e.data)
		}
		le(uint32(0x04034b50))
		le(uint16(20))
		le(e.flags)
		le(e.method)
		le(uint32(0)) // time, date
		le(crc)
		le(uint32(len(e.data)))
		le(size)
		le(uint16(len(local)))
		le(uint16(0))
		b.WriteString(local)
		b.Write(e.data)
	}
	cd := b.Len()
	for i, e := range entries {
		size := e.size
		if size == 0 {
			size = uint32(len(e.data))
		}
		crc := e.crc
		if crc == 0 && e.method == 0 {
			crc = crc32.ChecksumIEEE(e.data)
		}
		off := offs[i]
		if e.offset >= 0 {
			off = e.offset
		}
		le(uint32(0x02014b50))
		le(uint16(uint16(e.creator)<<8 | 20))
		le(uint16(20))
		le(e.flags)
		le(e.method)
		le(uint32(0))
		le(crc)
		le(uint32(len(e.data)))
		le(size)
		le(uint16(len(e.name)))
		le(uint16(0))
		le(uint16(0))
		le(uint16(0))
		le(uint16(0))
		le(e.external)
		le(uint32(off + base))
		b.WriteString(e.name)
	}
	end := b.Len()
	le(uint32(0x06054b50))
	le(uint16(0))
	le(uint16(0))
	le(uint16(len(entries)))
	le(uint16(len(entries)))
	le(uint32(end - cd))
	le(uint32(cd + base))
	le(uint16(0))
	return b.Bytes()
}

// entry is a stored rawEntry at its natural offset.
func entry(name string, data []byte) rawEntry { return rawEntry{name: name, data: data, offset: -1} }
