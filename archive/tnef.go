package archive

import (
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf16"
)

// TNEF (winmail.dat, application/ms-tnef) is how Outlook sends a message
// with its attachments to clients that are not Outlook; Outlook opens the
// attachments inside. This is a reader of its own rather than
// github.com/teamwork/tnef because that library reads every attribute
// into memory at the size the attribute declares and decodes the whole
// file before returning; this one walks the attribute stream from a
// ReaderAt and hands each attachment on as a section reader, so nothing
// is allocated by a declared size and an attachment is read only once.
//
// It knows the attributes that carry attachments: attAttachRendData
// starts one, attAttachTitle names it, attAttachData holds its bytes, and
// in attAttachment (MAPI properties) PR_ATTACH_LONG_FILENAME names it and
// PR_ATTACH_DATA_OBJ / PR_ATTACH_DATA_BIN may hold it.

const (
	tnefSignature      = 0x223e9f78
	attAttachRendData  = 0x00069002
	attAttachTitle     = 0x00018010
	attAttachData      = 0x0006800f
	attAttachment      = 0x00069005
	prAttachLongName   = 0x3707
	prAttachFilename   = 0x3704
	prAttachDataBinObj = 0x3701
)

type tnefAttachment struct {
	names    []string
	off, len int64 // the attachment's bytes in the file; len < 0 when none
}

// readTNEF lists the attachments of a TNEF stream.
func readTNEF(r io.ReaderAt, size int64, maxAttachments int) ([]tnefAttachment, error) {
	var head [6]byte
	if _, err := r.ReadAt(head[:], 0); err != nil || binary.LittleEndian.Uint32(head[:]) != tnefSignature {
		return nil, fmt.Errorf("%w: tnef signature", ErrUninspectable)
	}
	var out []tnefAttachment
	cur := -1
	for off := int64(6); off < size; {
		var ah [9]byte
		if _, err := r.ReadAt(ah[:], off); err != nil {
			return out, fmt.Errorf("%w: tnef attribute at %d: %v", ErrUninspectable, off, err)
		}
		id := binary.LittleEndian.Uint32(ah[1:])
		n := int64(binary.LittleEndian.Uint32(ah[5:]))
		data := off + 9
		if n < 0 || data+n+2 > size {
			return out, fmt.Errorf("%w: tnef attribute of %d bytes at %d beyond the end", ErrUninspectable, n, off)
		}
		off = data + n + 2 // and the checksum
		if ah[0] != 2 {
			continue // message-level attributes carry no files
		}
		switch id {
		case attAttachRendData:
			if len(out) >= maxAttachments {
				return out, fmt.Errorf("%w: more than %d tnef attachments", ErrLimit, maxAttachments)
			}
			out = append(out, tnefAttachment{len: -1})
			cur = len(out) - 1
			continue
		}
		if cur < 0 {
			out = append(out, tnefAttachment{len: -1})
			cur = 0
		}
		a := &out[cur]
		switch id {
		case attAttachTitle:
			if name := cString(r, data, min(n, 1024)); name != "" {
				a.names = append(a.names, name)
			}
		case attAttachData:
			a.off, a.len = data, n
		case attAttachment:
			tnefProps(r, data, n, a)
		}
	}
	return out, nil
}

func cString(r io.ReaderAt, off, n int64) string {
	b := make([]byte, n)
	k, _ := r.ReadAt(b, off)
	b = b[:k]
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// tnefProps reads the MAPI properties of an attAttachment attribute for
// the attachment's long name and data. It stops at the first property it
// cannot size: what came before stays.
func tnefProps(r io.ReaderAt, off, n int64, a *tnefAttachment) {
	end := off + n
	u32 := func(at int64) (uint32, bool) {
		var b [4]byte
		if at+4 > end {
			return 0, false
		}
		if _, err := r.ReadAt(b[:], at); err != nil {
			return 0, false
		}
		return binary.LittleEndian.Uint32(b[:]), true
	}
	count, ok := u32(off)
	if !ok || count > 10000 {
		return
	}
	p := off + 4
	for range count {
		tag, ok := u32(p)
		if !ok {
			return
		}
		p += 4
		typ, pid := tag&0xffff, tag>>16
		if pid >= 0x8000 {
			// A named property: GUID, kind, then an id or a name.
			kind, ok := u32(p + 16)
			if !ok {
				return
			}
			p += 20
			if kind == 0 {
				p += 4
			} else {
				l, ok := u32(p)
				if !ok {
					return
				}
				p += 4 + int64(l+3)&^3
			}
		}
		multi := typ&0x1000 != 0
		typ &^= 0x1000
		values := uint32(1)
		if multi || typ == 0x1e || typ == 0x1f || typ == 0x102 || typ == 0x0d {
			if values, ok = u32(p); !ok || values > 10000 {
				return
			}
			p += 4
		}
		for range values {
			var size int64
			switch typ {
			case 0x02, 0x03, 0x04, 0x0a, 0x0b:
				size = 4
			case 0x05, 0x06, 0x07, 0x14, 0x40:
				size = 8
			case 0x48:
				size = 16
			case 0x1e, 0x1f, 0x102, 0x0d:
				l, ok := u32(p)
				if !ok {
					return
				}
				p += 4
				size = int64(l)
				if p+size > end {
					return
				}
				switch {
				case (pid == prAttachLongName || pid == prAttachFilename) && typ == 0x1e:
					if s := cString(r, p, min(size, 1024)); s != "" {
						a.names = append([]string{s}, a.names...)
					}
				case (pid == prAttachLongName || pid == prAttachFilename) && typ == 0x1f:
					if s := utf16String(r, p, min(size, 2048)); s != "" {
						a.names = append([]string{s}, a.names...)
					}
				case pid == prAttachDataBinObj && a.len < 0:
					a.off, a.len = p, size
					if typ == 0x0d && size >= 16 {
						a.off, a.len = p+16, size-16 // an object starts with its interface GUID
					}
				}
				size = (size + 3) &^ 3
			default:
				return
			}
			p += size
			if p > end {
				return
			}
		}
	}
}

func utf16String(r io.ReaderAt, off, n int64) string {
	b := make([]byte, n&^1)
	k, _ := r.ReadAt(b, off)
	u := make([]uint16, 0, k/2)
	for i := 0; i+1 < k; i += 2 {
		v := binary.LittleEndian.Uint16(b[i:])
		if v == 0 {
			break
		}
		u = append(u, v)
	}
	return string(utf16.Decode(u))
}

// tnef walks the attachments of a TNEF file.
func (w *walker) tnef(n node, r io.Reader) error {
	w.archiveChecks(n, TypeTNEF)
	if err := w.tick(n.path); err != nil {
		return err
	}
	return w.spilled(n, TypeTNEF, r, func(sp held) error {
		atts, err := readTNEF(sp, sp.Size(), w.entryBudget())
		if err != nil {
			w.find(KindUninspectable, n.path, shortErr(err))
		}
		for i, a := range atts {
			if err := w.countEntry(n.path); err != nil {
				return err
			}
			name := fmt.Sprintf("attachment %d", i+1)
			if len(a.names) > 0 {
				name = a.names[0]
			}
			c := n.child(name, true, a.len)
			c.names = a.names
			if a.len < 0 {
				w.namesOnly(c)
				continue
			}
			if err := w.declared(c.path, a.len, -1); err != nil {
				return err
			}
			if err := w.file(c, w.meter(io.NewSectionReader(sp, a.off, a.len), nil, c.path)); err != nil {
				return err
			}
		}
		return nil
	})
}
