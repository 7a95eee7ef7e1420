package rules

import (
	"strings"
	"testing"
)

func TestSLD(t *testing.T) {
	for _, d := range []string{"", ".", "..", "a", "a.", ".a", "a.b", "a.b.c", ".b.c", "a..c", "a.b.", "x.mail.example.co.uk"} {
		want := d
		if labels := strings.Split(d, "."); len(labels) > 2 && labels[0] != "" {
			want = strings.Join(labels[len(labels)-2:], ".")
		}
		if got := sld(d); got != want {
			t.Errorf("sld(%q) = %q, want %q", d, got, want)
		}
	}
}
