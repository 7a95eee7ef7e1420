package benchcorpus

import (
	"bytes"
	"testing"
)

func TestTiersSizeAndShape(t *testing.T) {
	want := map[string][2]int{"text-2k": {2 << 10, 3 << 10}, "html-30k": {28 << 10, 34 << 10},
		"zip-160k": {140 << 10, 180 << 10}, "text-3m": {3 << 20, 3<<20 + 4096},
		"text-10m": {10 << 20, 10<<20 + 4096}}
	for _, tier := range append(Tiers(), Large()...) {
		r := want[tier.Name]
		if n := len(tier.Raw); n < r[0] || n > r[1] {
			t.Errorf("%s: %d bytes, want %d..%d", tier.Name, n, r[0], r[1])
		}
		if bytes.Contains(bytes.ReplaceAll(tier.Raw, []byte("\r\n"), nil), []byte("\n")) {
			t.Errorf("%s: bare LF", tier.Name)
		}
	}
	if n := bytes.Count(HTML(30<<10, 30), []byte("href=3D")); n != 31 {
		t.Errorf("html: %d links, want 31", n)
	}
	if !bytes.Equal(Text(2<<10), Text(2<<10)) {
		t.Error("Text is not deterministic")
	}
}
