package rules

import (
	"strings"
	"testing"
)

func TestLFValue(t *testing.T) {
	for _, v := range []string{"", " a", " a\r\n", " a\r\n\tb\r\n", " a\n", " a\r", " a\r\r\n", "\r\n\r\n", " a\r\n b"} {
		want := strings.ReplaceAll(v, "\r\n", "\n")
		if !strings.HasSuffix(want, "\n") {
			want += "\n"
		}
		if got := lfValue([]byte(v)); got != want {
			t.Errorf("lfValue(%q) = %q, want %q", v, got, want)
		}
	}
}
