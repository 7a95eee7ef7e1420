package jetstream

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/portcullis-mail/portcullis/queue"
)

// An entry is stored in the entries bucket as one record: a magic prefix,
// the CRC-32C of the JSON that follows in 8 hex digits, and the JSON. The
// body's SHA-256 and its chunking travel in the record, so a body chunk that
// was lost or damaged is detected when the body is read.
const entryMagic = "PJE1"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errRecord is matched by every record that cannot be decoded; it also
// matches queue.ErrCorrupt.
var errRecord = fmt.Errorf("%w: bad record", queue.ErrCorrupt)

// entryRecord is the queue's EntryRecord (the one Entry codec) with the
// body's chunking and SHA-256.
type entryRecord struct {
	V int `json:"v"`
	queue.EntryRecord

	ChunkSize int    `json:"chunk"`
	Chunks    int    `json:"chunks"`
	Sum       string `json:"sha256"`
}

// bodyInfo is how a body was stored.
type bodyInfo struct {
	chunkSize, chunks int
	sum               string
}

func encodeEntry(e queue.Entry, b bodyInfo) []byte {
	return seal(entryMagic, entryRecord{V: 1, EntryRecord: queue.NewEntryRecord(e), ChunkSize: b.chunkSize, Chunks: b.chunks, Sum: b.sum})
}

// seal marshals v behind a magic prefix and a CRC-32C.
func seal(magic string, v any) []byte {
	js, err := json.Marshal(v)
	if err != nil {
		panic("jetstream: marshalling a record: " + err.Error()) // plain structs always marshal
	}
	out := make([]byte, 0, len(magic)+8+len(js))
	out = append(out, magic...)
	out = fmt.Appendf(out, "%08x", crc32.Checksum(js, crcTable))
	return append(out, js...)
}

// unseal checks the prefix and CRC of a record and unmarshals it into v.
func unseal(magic string, b []byte, v any) error {
	if len(b) < len(magic)+8 || string(b[:len(magic)]) != magic {
		return fmt.Errorf("%w: no %s header", errRecord, magic)
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], b[len(magic):len(magic)+8]); err != nil {
		return fmt.Errorf("%w: checksum: %v", errRecord, err)
	}
	js := b[len(magic)+8:]
	want := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
	if crc32.Checksum(js, crcTable) != want {
		return fmt.Errorf("%w: checksum mismatch", errRecord)
	}
	if err := json.Unmarshal(js, v); err != nil {
		return fmt.Errorf("%w: %v", errRecord, err)
	}
	return nil
}

// decodeEntry decodes and validates a record; maxBody bounds the size it
// may claim.
func decodeEntry(b []byte, maxBody int64) (queue.Entry, bodyInfo, error) {
	var r entryRecord
	if err := unseal(entryMagic, b, &r); err != nil {
		return queue.Entry{}, bodyInfo{}, err
	}
	if err := r.check(maxBody); err != nil {
		return queue.Entry{}, bodyInfo{}, fmt.Errorf("%w: %v", errRecord, err)
	}
	e, err := r.Entry()
	if err != nil {
		return queue.Entry{}, bodyInfo{}, fmt.Errorf("%w: %v", errRecord, err)
	}
	return e, bodyInfo{chunkSize: r.ChunkSize, chunks: r.Chunks, sum: r.Sum}, nil
}

// check validates what this backend adds to the queue's record: the
// version, an ID that is safe as a subject token, and the body's layout.
func (r *entryRecord) check(maxBody int64) error {
	switch {
	case r.V != 1:
		return fmt.Errorf("version %d", r.V)
	case !validID(r.ID):
		return errors.New("invalid id")
	}
	return checkBody(r.Size, r.ChunkSize, r.Chunks, r.Sum, maxBody)
}

// checkBody validates the claimed layout of a body.
func checkBody(size int64, chunkSize, chunks int, sum string, maxBody int64) error {
	switch {
	case size < 0 || size > maxBody:
		return fmt.Errorf("size %d outside [0, %d]", size, maxBody)
	case chunkSize <= 0 || chunkSize > maxChunk:
		return fmt.Errorf("chunk size %d", chunkSize)
	case int64(chunks) != (size+int64(chunkSize)-1)/int64(chunkSize):
		return fmt.Errorf("%d chunks for %d bytes of %d", chunks, size, chunkSize)
	case len(sum) != 64:
		return errors.New("bad body checksum")
	}
	_, err := hex.DecodeString(sum)
	return err
}

// validID mirrors the queue's rule for IDs: 1 to 64 bytes of
// [0-9A-Za-z._-], which are also safe as subject tokens and KV keys
// (a dot splits tokens but never forms a wildcard).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i > 0 && c == '.' && s[i-1] == '.' {
			return false
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
