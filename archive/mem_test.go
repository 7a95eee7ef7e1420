package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/portcullis-mail/portcullis/filter"
)

type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("decoder bug") }

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

// TestHold checks where hold keeps a file (memory up to MemoryBytes,
// else a spool), that it reads the same bytes back either way, and that
// it fails as filter.NewSpool does: a panic, a reader that makes no
// progress, a context ended.
func TestHold(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	for _, c := range []struct {
		name   string
		memory int64
		hint   int64
		mem    bool
	}{
		{"fits, no hint", 1 << 20, 0, true},
		{"fits, hint exact", 1 << 20, int64(len(data)), true},
		{"fits, hint too small", 1 << 20, 100, true},
		{"hint over the limit: spooled at once", 1 << 20, 1 << 30, false},
		{"exactly the limit", int64(len(data)), 0, false},
		{"over the limit", 1000, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := New(Config{Limits: Limits{MemoryBytes: c.memory}}).newWalker(context.Background(), nil)
			f, release, err := w.hold(iotest.HalfReader(bytes.NewReader(data)), c.hint)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			if _, ok := f.(memFile); ok != c.mem {
				t.Errorf("in memory = %v, want %v", ok, c.mem)
			}
			if mf, ok := f.(memFile); ok && int64(cap(mf)) > c.memory {
				t.Errorf("buffer of %d bytes for a limit of %d", cap(mf), c.memory)
			}
			got, err := io.ReadAll(f.Reader())
			if err != nil || !bytes.Equal(got, data) || f.Size() != int64(len(data)) {
				t.Fatalf("read back %d bytes (size %d), %v; want %d", len(got), f.Size(), err, len(data))
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, c := range map[string]struct {
		ctx context.Context
		r   io.Reader
	}{
		"panic":       {context.Background(), panicReader{}},
		"no progress": {context.Background(), stuckReader{}},
		"ctx done":    {ctx, bytes.NewReader(data)},
		"read error":  {context.Background(), iotest.ErrReader(errors.New("disk on fire"))},
	} {
		w := New(Config{}).newWalker(c.ctx, nil)
		if f, _, err := w.hold(c.r, 0); err == nil {
			t.Errorf("%s: held %d bytes, want an error", name, f.Size())
		}
	}
}

// TestMemFileSection checks that entry bounds from a hostile directory are
// cut at the file's end, as a section reader of a spool would be.
func TestMemFileSection(t *testing.T) {
	m := memFile("0123456789")
	for _, c := range []struct {
		off, n int64
		want   string
	}{{2, 3, "234"}, {8, 5, "89"}, {12, 3, ""}, {-4, 3, "012"}, {3, -1, ""}, {0, 1 << 62, "0123456789"}} {
		if got := string(m.section(c.off, c.n)); got != c.want {
			t.Errorf("section(%d, %d) = %q, want %q", c.off, c.n, got, c.want)
		}
	}
	if n, err := m.ReadAt(make([]byte, 4), 8); n != 2 || err != io.EOF {
		t.Errorf("ReadAt past the end = %d, %v", n, err)
	}
}

// TestHeldOnceHidesNothing: Check reads a file that is neither text nor
// a container once, while holding it (heldLeaf), not again as a leaf. A
// corrupt stream and an entry larger than it declares must still show
// from that one read.
func TestHeldOnceHidesNothing(t *testing.T) {
	data := make([]byte, 2<<20)
	for i := range data {
		data[i] = byte(i * i >> 7) // binary (NULs and high bytes), compressible
	}
	require.Equal(t, TypeBinary, DetectType(data[:HeadSize], "scan.bin"))
	var packed bytes.Buffer
	fw, _ := flate.NewWriter(&packed, flate.BestSpeed)
	fw.Write(data)
	fw.Close()
	raw := func(comp []byte, size uint64) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		w, err := zw.CreateRaw(&zip.FileHeader{Name: "scan.bin", Method: zip.Deflate,
			CompressedSize64: uint64(len(comp)), UncompressedSize64: size, CRC32: crc32.ChecksumIEEE(data)})
		require.NoError(t, err)
		w.Write(comp)
		require.NoError(t, zw.Close())
		return b.Bytes()
	}
	t.Run("corrupt stream", func(t *testing.T) {
		_, fs := inspect(t, Config{}, att{name: "a.zip", data: raw(packed.Bytes()[:packed.Len()/2], uint64(len(data)))})
		requireFinding(t, fs, KindUninspectable, "a.zip/scan.bin")
	})
	t.Run("larger than declared", func(t *testing.T) {
		res, fs := inspect(t, Config{Limits: Limits{MaxEntryBytes: 1 << 20}}, att{name: "a.zip", data: raw(packed.Bytes(), 1000)})
		requireFinding(t, fs, KindBomb, "")
		assert.Equal(t, filter.Reject, res.Action)
	})
}
