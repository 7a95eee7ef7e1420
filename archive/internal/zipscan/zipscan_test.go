package zipscan

import (
	"archive/zip"
	"bytes"
	"errors"
	"testing"
)

func goZip(t testing.TB, names ...string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("content of " + n))
	}
	zw.Close()
	return b.Bytes()
}

func TestParse(t *testing.T) {
	z := goZip(t, "a.txt", "dir/b.txt")
	a, err := Parse(bytes.NewReader(z), int64(len(z)), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Entries) != 2 || a.Entries[1].Name != "dir/b.txt" || a.Entries[1].LocalName != "dir/b.txt" {
		t.Fatalf("%+v", a.Entries)
	}
	if len(a.Overlaps)+len(a.NameMismatch)+len(a.Hidden) != 0 || a.HiddenEnd != 0 || a.Base != 0 {
		t.Fatalf("clean zip flagged: %+v", a)
	}
	if _, err := Parse(bytes.NewReader(z), int64(len(z)), 1); !errors.Is(err, ErrTooManyEntries) {
		t.Fatalf("limit: %v", err)
	}
	// Prepended data moves every offset.
	pre := append(bytes.Repeat([]byte("x"), 100), z...)
	a, err = Parse(bytes.NewReader(pre), int64(len(pre)), 10)
	if err != nil || a.Base != 100 || a.Entries[0].LocalErr != nil {
		t.Fatalf("%v %+v", err, a)
	}
	// Two zips back to back.
	cat := append(goZip(t, "hidden.exe"), z...)
	a, err = Parse(bytes.NewReader(cat), int64(len(cat)), 10)
	if err != nil || a.HiddenEnd == 0 || len(a.Hidden) == 0 {
		t.Fatalf("%v %+v", err, a)
	}
	if _, err := Parse(bytes.NewReader([]byte("not a zip at all, no end record")), 31, 10); !errors.Is(err, ErrNotZip) {
		t.Fatal(err)
	}
}

// FuzzParse: any input, no panic, and what Parse returns is consistent.
func FuzzParse(f *testing.F) {
	f.Add(goZip(f, "a.txt", "b/c.txt"))
	f.Add(append(goZip(f, "x.exe"), goZip(f, "y.txt")...))
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Parse(bytes.NewReader(b), int64(len(b)), 50)
		if err != nil {
			if a != nil {
				t.Fatal("archive with an error")
			}
			return
		}
		if len(a.Entries) > 50 {
			t.Fatalf("%d entries over the limit", len(a.Entries))
		}
		if a.Base < 0 || a.CDStart > int64(len(b)) || a.HiddenEnd > int64(len(b)) {
			t.Fatalf("offsets outside the file: %+v", a)
		}
		for _, e := range a.Entries {
			if e.LocalErr == nil && (e.Data < 0 || e.Data+int64(e.CompSize) > int64(len(b))) {
				t.Fatalf("entry %q data [%d,+%d) outside %d bytes", e.Name, e.Data, e.CompSize, len(b))
			}
		}
	})
}
