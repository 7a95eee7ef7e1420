package icap

import (
	"bytes"
	"errors"
	"testing"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/scanner"
)

// c-icap passes objects over virus_scan.MaxObjectSize unscanned, echoed
// as if clean; Config.MaxSize turns that into a partial scan.
func TestRealMaxObjectSize(t *testing.T) {
	d := testsvc.SharedClamd(t)
	s := testsvc.StartICAP(t, d, testsvc.ICAPOptions{MaxObjectSize: "4K"})
	big := append(bytes.Repeat([]byte("A"), 64<<10), testsvc.Eicar()...)

	naive := newClient(t, Config{URL: s.URL})
	if res, err := naive.Scan(t.Context(), bytes.NewReader(big)); err != nil || res.Infected() {
		t.Fatalf("c-icap no longer passes big objects unscanned (%v %v): revisit MaxSize", res, err)
	}
	for _, preview := range []int{0, -1, 10} {
		c := newClient(t, Config{URL: s.URL, MaxSize: 4096, Preview: preview})
		if _, err := c.Scan(t.Context(), bytes.NewReader(big)); !errors.Is(err, scanner.ErrSizeLimit) {
			t.Fatalf("preview %d: over MaxSize: %v, want ErrSizeLimit", preview, err)
		}
		res, err := c.Scan(t.Context(), bytes.NewReader(testsvc.Eicar()))
		if err != nil || !res.Infected() {
			t.Fatalf("preview %d: small eicar: %v %v", preview, res, err)
		}
		if res, err := c.Scan(t.Context(), bytes.NewReader(make([]byte, 4096))); err != nil || res.Infected() {
			t.Fatalf("preview %d: at MaxSize: %v %v", preview, res, err)
		}
	}
}
