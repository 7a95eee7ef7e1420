package queue

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf8"
)

// Spool records. A segment file is a sequence of records:
//
//	"PQR" kind:1 | payload length:4 | crc32c(first 8 bytes):4 | payload | crc32c(payload):4
//
// Kinds: 'P' puts an entry (payload: meta length:4, meta JSON, body),
// 'U' updates an entry's metadata (payload: meta JSON), 'R' removes an entry
// (payload: the ID). The header checksum lets the scanner resynchronise
// after damage without trusting a corrupted length; the payload checksum
// marks a record complete: a record whose checksum fails was never
// acknowledged or has rotted, and is moved aside.

const (
	recHeaderLen  = 12
	recTrailerLen = 4
	recOverhead   = recHeaderLen + recTrailerLen
	maxMetaBytes  = 1 << 20 // metadata of one entry; bounds what recovery allocates

	kindPut    = 'P'
	kindUpdate = 'U'
	kindRemove = 'R'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// meta is the spool's form of an Entry: the shared EntryRecord and the
// body's CRC-32C.
type meta struct {
	EntryRecord
	BodyCRC uint32 `json:"crc"`
}

func encodeMeta(e Entry, bodyCRC uint32) []byte {
	b, err := json.Marshal(meta{EntryRecord: NewEntryRecord(e), BodyCRC: bodyCRC})
	if err != nil {
		panic("queue: encoding metadata: " + err.Error()) // only plain types: cannot happen
	}
	return b
}

// decodeMeta parses and validates metadata; anything unexpected is
// ErrCorrupt, so a foreign or damaged record is moved aside, not trusted.
func decodeMeta(b []byte) (Entry, uint32, error) {
	var m meta
	if len(b) > maxMetaBytes {
		return Entry{}, 0, fmt.Errorf("%w: metadata of %d bytes", ErrCorrupt, len(b))
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Entry{}, 0, fmt.Errorf("%w: metadata: %v", ErrCorrupt, err)
	}
	e, err := m.Entry()
	if err != nil {
		return Entry{}, 0, err
	}
	return e, m.BodyCRC, nil
}

// checkMeta makes sure encoded metadata decodes back to the entry it came
// from, so that nothing the spool acknowledges is found corrupt at
// recovery: too many or too long addresses, bytes that are not UTF-8 (JSON
// would change them), metadata over its size limit. It checks what a
// decode would without decoding (three records a message made it a tenth
// of the gateway's own cost per small message): encoding/json gives valid
// UTF-8 back byte for byte and changes nothing else an Entry holds, so the
// decoded entry is the one EntryRecord.Entry validates here. A
// differential fuzz target (FuzzCheckMeta) holds it to the round trip.
func checkMeta(e Entry, m []byte) error {
	if len(m) > maxMetaBytes {
		return fmt.Errorf("%w: metadata of %d bytes", ErrInvalidEnvelope, len(m))
	}
	if _, err := NewEntryRecord(e).Entry(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidEnvelope, err)
	}
	env := e.Envelope
	if !utf8.ValidString(env.MailFrom) || !utf8.ValidString(env.Helo) || !utf8.ValidString(env.AuthUser) ||
		!utf8.ValidString(e.LastError) || !allUTF8(env.RcptTo) || !allUTF8(e.Done) {
		return fmt.Errorf("%w: addresses must be valid UTF-8", ErrInvalidEnvelope)
	}
	return nil
}

func allUTF8(ss []string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// appendRecord appends one record of the given kind to dst.
func appendRecord(dst []byte, kind byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	start := len(dst)
	dst = append(dst, 'P', 'Q', 'R', kind)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = binary.BigEndian.AppendUint32(dst, crc(dst[start:start+8]))
	pstart := len(dst)
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return binary.BigEndian.AppendUint32(dst, crc(dst[pstart:]))
}

// putRecord encodes a put: meta length, meta, body.
func putRecord(dst []byte, e Entry, body []byte) []byte {
	head, trailer := putParts(encodeMeta(e, crc(body)), body)
	dst = append(dst, head...)
	dst = append(dst, body...)
	return append(dst, trailer[:]...)
}

// putParts encodes a put without copying the body: the record is head,
// then body, then trailer.
func putParts(m, body []byte) (head []byte, trailer [4]byte) {
	head = make([]byte, 0, recHeaderLen+4+len(m))
	head = append(head, 'P', 'Q', 'R', kindPut)
	head = binary.BigEndian.AppendUint32(head, uint32(4+len(m)+len(body)))
	head = binary.BigEndian.AppendUint32(head, crc(head[:8]))
	head = binary.BigEndian.AppendUint32(head, uint32(len(m)))
	head = append(head, m...)
	c := crc32.Update(0, castagnoli, head[recHeaderLen:])
	c = crc32.Update(c, castagnoli, body)
	binary.BigEndian.PutUint32(trailer[:], c)
	return head, trailer
}

// record is one decoded record.
type record struct {
	kind    byte
	off     int64 // where the record starts in the segment
	length  int64 // the whole record, header and trailer included
	entry   Entry // put, update
	bodyOff int64 // put: where the body starts in the segment
	bodyCRC uint32
	id      ID // remove
}

// badRange is a stretch of a segment that held no valid record.
type badRange struct {
	off, length int64
	reason      string
	torn        bool // reaches the end of the segment: a write cut short
}

// readRecHeader reads and checks a record header at off.
func readRecHeader(r io.ReaderAt, off, size, maxPayload int64) (kind byte, payload int64, ok bool) {
	if size-off < recOverhead {
		return 0, 0, false
	}
	var h [recHeaderLen]byte
	if _, err := r.ReadAt(h[:], off); err != nil {
		return 0, 0, false
	}
	if h[0] != 'P' || h[1] != 'Q' || h[2] != 'R' || binary.BigEndian.Uint32(h[8:]) != crc(h[:8]) {
		return 0, 0, false
	}
	kind = h[3]
	payload = int64(binary.BigEndian.Uint32(h[4:8]))
	if kind != kindPut && kind != kindUpdate && kind != kindRemove || payload > maxPayload {
		return 0, 0, false
	}
	return kind, payload, true
}

// decodeAt decodes the record at off, verifying its payload checksum. A
// nil error means a valid record; errShort means the header is good but
// the segment ends inside the record.
func decodeAt(r io.ReaderAt, off, size, maxPayload int64) (record, error) {
	kind, n, ok := readRecHeader(r, off, size, maxPayload)
	if !ok {
		return record{}, errBadHeader
	}
	rec := record{kind: kind, off: off, length: recOverhead + n}
	if off+rec.length > size {
		return rec, errShort
	}
	pstart := off + recHeaderLen
	h := crc32.New(castagnoli)
	var head []byte // the part of the payload decoded (metadata or ID)
	switch kind {
	case kindPut:
		var ml [4]byte
		if n < 4 {
			return rec, errBadPayload
		}
		if _, err := r.ReadAt(ml[:], pstart); err != nil {
			return rec, err
		}
		mlen := int64(binary.BigEndian.Uint32(ml[:]))
		if mlen > maxMetaBytes || mlen > n-4 {
			return rec, errBadPayload
		}
		head = make([]byte, mlen)
		if _, err := r.ReadAt(head, pstart+4); err != nil {
			return rec, err
		}
		h.Write(ml[:])
		h.Write(head)
		bh := crc32.New(castagnoli)
		rec.bodyOff = pstart + 4 + mlen
		if _, err := io.Copy(io.MultiWriter(h, bh), io.NewSectionReader(r, rec.bodyOff, n-4-mlen)); err != nil {
			return rec, err
		}
		rec.bodyCRC = bh.Sum32()
	default:
		if n > maxMetaBytes {
			return rec, errBadPayload
		}
		head = make([]byte, n)
		if _, err := r.ReadAt(head, pstart); err != nil {
			return rec, err
		}
		h.Write(head)
	}
	var tr [4]byte
	if _, err := r.ReadAt(tr[:], pstart+n); err != nil {
		return rec, err
	}
	if binary.BigEndian.Uint32(tr[:]) != h.Sum32() {
		return rec, errChecksum
	}
	switch kind {
	case kindRemove:
		if !validID(string(head)) {
			return rec, errBadPayload
		}
		rec.id = ID(head)
	default:
		e, bodyCRC, err := decodeMeta(head)
		if err != nil {
			return rec, err
		}
		if kind == kindPut && (e.Size != n-4-int64(len(head)) || bodyCRC != rec.bodyCRC) {
			return rec, errBadPayload
		}
		rec.entry, rec.id = e, e.ID
	}
	return rec, nil
}

var (
	errBadHeader  = errors.New("bad record header")
	errShort      = errors.New("record cut short")
	errChecksum   = errors.New("record checksum mismatch")
	errBadPayload = errors.New("bad record payload")
)

// scanSegment decodes every record of a segment in order, calling fn for
// each valid one, and returns the stretches that held no valid record.
// After a bad record it resynchronises at the next offset where a whole
// valid record starts, so one damaged record never hides the others.
func scanSegment(r io.ReaderAt, size, maxPayload int64, fn func(record)) ([]badRange, error) {
	var bad []badRange
	off := int64(0)
	for off < size {
		rec, err := decodeAt(r, off, size, maxPayload)
		if err == nil {
			fn(rec)
			off += rec.length
			continue
		}
		if isIOError(err) {
			return bad, err
		}
		reason := err.Error()
		next, ioErr := resync(r, off+1, size, maxPayload)
		if ioErr != nil {
			return bad, ioErr
		}
		bad = append(bad, badRange{off: off, length: next - off, reason: reason, torn: next == size})
		off = next
	}
	return bad, nil
}

func isIOError(err error) bool {
	return !errors.Is(err, errBadHeader) && !errors.Is(err, errShort) && !errors.Is(err, errChecksum) &&
		!errors.Is(err, errBadPayload) && !errors.Is(err, ErrCorrupt)
}

// resync returns the first offset at or after from where a valid record
// starts, or size.
func resync(r io.ReaderAt, from, size, maxPayload int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for base := from; base < size; {
		n, err := r.ReadAt(buf, base)
		if n == 0 {
			if err != nil && err != io.EOF {
				return 0, err
			}
			break
		}
		for i := 0; i+2 < n; i++ {
			if buf[i] != 'P' || buf[i+1] != 'Q' || buf[i+2] != 'R' {
				continue
			}
			if _, err := decodeAt(r, base+int64(i), size, maxPayload); err == nil {
				return base + int64(i), nil
			} else if isIOError(err) {
				return 0, err
			}
		}
		if n < 3 {
			break
		}
		base += int64(n - 2)
	}
	return size, nil
}
