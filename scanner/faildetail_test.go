package scanner_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/scanner"
)

// AV_FAIL's detail says "no engine available" once.
func TestFilterAllDownDetailOnce(t *testing.T) {
	down := scanner.EngineFunc("down", func(ctx context.Context, r io.Reader) (scanner.Result, error) {
		return scanner.Result{}, errors.New("connection refused")
	})
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{down}}, scanner.Config{})
	res, err := f.Check(t.Context(), msg(mail("a.txt", []byte("x"))))
	if err != nil || res.Action != filter.Tempfail {
		t.Fatalf("%v %v", res, err)
	}
	got := symbols(res, scanner.SymFail)
	if len(got) != 1 || strings.Count(got[0], "no engine available") != 1 || !strings.Contains(got[0], "connection refused") {
		t.Fatalf("AV_FAIL details %q: want one, saying \"no engine available\" once, with the cause", got)
	}
}
