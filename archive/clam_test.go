package archive

import (
	"context"
	"io"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

// clam.exe is banned standalone and inside every format the inspector
// opens; the formats it cannot open are uninspectable.
func TestClamTestfiles(t *testing.T) {
	cases := []struct {
		file   string
		kind   Kind
		detail string
		action filter.Action
	}{
		{"clam.exe", KindBannedType, "clam.exe (pe)", filter.Reject},
		{"clam.zip", KindBannedType, "clam.zip/clam.exe (pe)", filter.Reject},
		{"clam.7z", KindBannedType, "clam.7z/clam.exe (pe)", filter.Reject},
		{"clam.tar.gz", KindBannedType, "clam.exe (pe)", filter.Reject},
		{"clam.exe.bz2", KindBannedType, "clam.exe.bz2/clam.exe (pe)", filter.Reject},
		{"clam.bz2.zip", KindBannedType, "clam.exe (pe)", filter.Reject},
		{"clam.impl.zip", KindUninspectable, "clam.impl.zip/CLAM.EXE (method 6)", filter.Reject},
		{"clam.d64.zip", KindUninspectable, "clam.d64.zip/clam.exe", filter.Reject},
		{"clam.arj", KindUninspectable, "clam.arj (arj)", filter.Quarantine},
		{"clam.cab", KindUninspectable, "clam.cab (cab)", filter.Quarantine},
		{"clam-upx.exe", KindBannedType, "(pe)", filter.Reject},
		{"clam.newc.cpio", KindUninspectable, "(cpio)", filter.Quarantine},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			res, fs := inspect(t, Config{}, att{name: c.file, data: clamFile(t, c.file)})
			requireFinding(t, fs, c.kind, c.detail)
			if res.Action != c.action {
				t.Fatalf("action %v, want %v; findings %v", res.Action, c.action, fs)
			}
		})
	}
}

// Leaves visits the unpacked clam.exe inside every format it opens.
func TestLeavesClam(t *testing.T) {
	in := New(Config{})
	for _, file := range []string{"clam.zip", "clam.7z", "clam.tar.gz", "clam.exe.bz2", "clam.bz2.zip"} {
		t.Run(file, func(t *testing.T) {
			want := clamFile(t, "clam.exe")
			m := newMsg(message(att{name: file, data: clamFile(t, file)}))
			found := false
			err := in.Leaves(context.Background(), m, func(l Leaf, r io.Reader) error {
				b, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				if l.Type == TypePE && string(b) == string(want) && l.Depth > 0 {
					found = true
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !found {
				t.Fatal("clam.exe not among the leaves")
			}
		})
	}
}
