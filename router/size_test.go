package router

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

// headersSize is an upper bound of what WithHeaders adds, however the
// values fold: words of every length, comma lists without spaces,
// control characters.
func TestHeadersSizeBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	body := "Subject: x\r\n\r\nbody\r\n"
	for i := range 500 {
		var hs []filter.Header
		for range 1 + rng.IntN(4) {
			var v strings.Builder
			for range rng.IntN(60) {
				w := strings.Repeat("s", rng.IntN(90))
				switch rng.IntN(4) {
				case 0:
					w = strings.Repeat("SYM_A=1.0,", rng.IntN(20))
				case 1:
					w += "\r\n"
				}
				v.WriteString(w)
				v.WriteString(" ,"[rng.IntN(2):][:1])
			}
			hs = append(hs, filter.Header{Name: fmt.Sprintf("X-Test-%d", i), Value: v.String()})
		}
		out, err := io.ReadAll(filter.WithHeaders(strings.NewReader(body), hs, nil))
		if err != nil {
			t.Fatal(err)
		}
		if got, bound := int64(len(out)), int64(len(body))+headersSize(hs); got > bound {
			t.Fatalf("headers %q: %d bytes written, bound %d", hs, got, bound)
		}
	}
}
