package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"hash/crc32"
	"io"
	"testing"

	kzip "github.com/klauspost/compress/zip"
	"github.com/mholt/archives"
)

func compressWith(t testing.TB, c archives.Compressor, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := c.OpenWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func tarOf(t testing.TB, name string, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
	tw.Write(b)
	tw.Close()
	return out.Bytes()
}

// zipMethod zips one file with a zip compression method (mholt/archives
// registers bzip2, zstd and xz with klauspost's zip).
func zipMethod(t testing.TB, method uint16, name string, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := kzip.NewWriter(&out)
	w, err := zw.CreateHeader(&kzip.FileHeader{Name: name, Method: method})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	zw.Close()
	return out.Bytes()
}

// clam.exe is banned inside every format the inspector opens, and Leaves
// hands it over unpacked.
func TestEveryFormat(t *testing.T) {
	exe := clamFile(t, "clam.exe")
	tr := tarOf(t, "clam.exe", exe)
	cases := map[string][]byte{
		"clam.exe.gz":  compressWith(t, archives.Gz{}, exe),
		"clam.exe.bz2": compressWith(t, archives.Bz2{}, exe),
		"clam.exe.xz":  compressWith(t, archives.Xz{}, exe),
		"clam.exe.zst": compressWith(t, archives.Zstd{}, exe),
		"clam.exe.lz4": compressWith(t, archives.Lz4{}, exe),
		"clam.tar.lz4": compressWith(t, archives.Lz4{}, tr),
		"clam.tar":     tr,
		"clam.tgz":     compressWith(t, archives.Gz{}, tr),
		"clam.tar.bz2": compressWith(t, archives.Bz2{}, tr),
		"clam.tar.xz":  compressWith(t, archives.Xz{}, tr),
		"clam.tar.zst": compressWith(t, archives.Zstd{}, tr),
		"store.zip":    zipMethod(t, 0, "clam.exe", exe),
		"deflate.zip":  zipMethod(t, 8, "clam.exe", exe),
		"bzip2.zip":    zipMethod(t, 12, "clam.exe", exe),
		"zstd.zip":     zipMethod(t, 93, "clam.exe", exe),
		// mholt/archives' xz writer for zip entries writes the xz header in
		// front of the zip; write the entry by hand.
		"xz.zip": rawZip(0, rawEntry{name: "clam.exe", method: 95, data: compressWith(t, archives.Xz{}, exe),
			size: uint32(len(exe)), crc: crc32.ChecksumIEEE(exe), offset: -1}),
		"clam.7z": clamFile(t, "clam.7z"),
	}
	in := New(Config{})
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, fs := inspect(t, Config{}, att{name: name, data: data})
			requireFinding(t, fs, KindBannedType, "clam.exe (pe)")
			if hasFinding(fs, KindUninspectable, "") {
				t.Fatalf("%v", fs)
			}
			found := false
			err := in.Leaves(context.Background(), newMsg(message(att{name: name, data: data})), func(l Leaf, r io.Reader) error {
				b, err := io.ReadAll(r)
				found = found || (bytes.Equal(b, exe) && l.Type == TypePE && l.Name == "clam.exe")
				return err
			})
			if err != nil || !found {
				t.Fatalf("leaves: %v, found %v", err, found)
			}
		})
	}
}

// TestLZ4Limit: an lz4 stream that inflates past MaxEntryBytes is a bomb.
func TestLZ4Limit(t *testing.T) {
	big := compressWith(t, archives.Lz4{}, make([]byte, 4<<20))
	_, fs := inspect(t, Config{Limits: Limits{MaxEntryBytes: 1 << 20}}, att{name: "zeros.lz4", data: big})
	requireFinding(t, fs, KindBomb, "entry-bytes")
}

func TestContainsFold(t *testing.T) {
	for _, c := range []struct {
		b    string
		want bool
	}{
		{"<HTML>", true}, {"x <HtMl", true}, {"<htm", false}, {"", false},
		{"<<html", true}, {"<h<html", true}, {"html", false}, {"<hTml\xff", true},
	} {
		if got := containsFold([]byte(c.b), "<html"); got != c.want {
			t.Errorf("containsFold(%q) = %v", c.b, got)
		}
	}
	if DetectType([]byte("hello\r\n<!DOCTYPE HTML>\r\n"), "") != TypeHTML {
		t.Error("an upper-case doctype is not HTML")
	}
	if DetectType([]byte("x <HTA:APPLICATION id=a>\r\n"), "") != TypeHTA {
		t.Error("an upper-case HTA tag is not an HTA")
	}
}
