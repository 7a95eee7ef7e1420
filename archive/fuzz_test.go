package archive

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzInspect feeds arbitrary bytes as one attachment to Check and Leaves:
// never a panic, never an error with a live context, only known kinds, and
// Leaves fails only with a *LimitError.
func FuzzInspect(f *testing.F) {
	f.Add([]byte("plain text"), "a.txt")
	f.Add(makeZip(f, zfile{name: "a.txt", data: text}, zfile{name: "x.exe", data: tinyPE()}), "a.zip")
	f.Add(makeTarGz(f, zfile{name: "a.txt", data: text}), "a.tgz")
	f.Add(makeTarGzRaw(makeZip(f, zfile{name: "in.zip", data: makeZip(f, zfile{name: "b", data: pdf})})), "n.gz")
	f.Add(ooxml(f, "word/document.xml", zfile{name: "word/vbaProject.bin", data: []byte("x")}), "r.docm")
	f.Add(rawZip(0, rawEntry{name: "a", localName: "b", flags: 1, data: []byte("xyz"), offset: -1}), "e.zip")
	f.Add(tinyPE(), "x.pdf")
	for _, name := range []string{"encrypted-headers.7z", "encrypted-content.7z", "first-volume.rar"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b, name)
		}
	}
	for _, name := range []string{"clam.7z", "clam.zip", "clam.exe.bz2", "clam.arj", "clam.cab"} {
		if b, err := os.ReadFile(filepath.Join(clamDir, name)); err == nil {
			f.Add(b, name)
		}
	}
	in := New(Config{Limits: Limits{MaxTotalBytes: 16 << 20, MaxEntries: 1000}, AllowNested: true})
	known := map[Kind]bool{}
	for _, k := range Kinds() {
		known[k] = true
	}
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		m := newMsg(message(att{name: name, data: data}))
		fs, err := in.Inspect(context.Background(), m)
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		for _, x := range fs {
			if !known[x.Kind] {
				t.Fatalf("unknown kind %q", x.Kind)
			}
		}
		err = in.Leaves(context.Background(), m, func(l Leaf, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			if errors.Is(err, ErrLimit) {
				return err
			}
			return nil
		})
		if err != nil && !errors.Is(err, ErrLimit) {
			t.Fatalf("Leaves: %v", err)
		}
		if n, stack := in.Panics(); n > 0 && ownPanic(stack) {
			t.Fatalf("panic in the inspector itself:\n%s", stack)
		}
	})
}
