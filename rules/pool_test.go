package rules

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// The view's pooled buffers (texts, renderings, line indexes, rune
// buffers) live for one Evaluate: messages evaluated at once give the
// answers they give one at a time, and under the race detector no buffer
// is shared between two evaluations. The embedded set and the test
// SpamAssassin files (SpamAssassin's own take 20 s to build under the race
// detector): their texts, HTML, evals and backtracking rules use every
// pool.
func TestConcurrentEvaluateSameAnswers(t *testing.T) {
	s, err := Build(Config{Default: true, Files: []string{"testdata/sa-engines.cf", "testdata/sa-evals.cf", "testdata/sa-mini.cf"}})
	if err != nil {
		t.Fatal(err)
	}
	// SpamAssassin's samples, a generated message and the smaller tiers:
	// enough kinds (plain, HTML, multipart, zip) to use every buffer.
	if !slices.ContainsFunc(s.rules, func(c *crule) bool { return c.bt != nil }) {
		t.Fatal("no backtracking rule in the set: the rune buffers go untested")
	}
	corpus := mixedCorpus(t)
	corpus = append(corpus[:2], corpus[len(corpus)-1])
	for _, tier := range benchcorpus.Tiers() {
		if len(tier.Raw) < 1<<20 {
			corpus = append(corpus, tier.Raw)
		}
	}
	eval := func(raw []byte) []string {
		ev, err := s.Evaluate(context.Background(), filter.NewMessageBytes(filter.Envelope{}, raw, filter.Limits{}))
		if err != nil {
			t.Error(err)
			return nil
		}
		var names []string
		for _, sym := range ev.Symbols {
			names = append(names, sym.Name)
		}
		return names
	}
	want := make([][]string, len(corpus))
	for i, raw := range corpus {
		want[i] = eval(raw)
	}
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			for k := range corpus {
				i := (k + g*len(corpus)/3) % len(corpus) // each goroutine from its own start
				if got := eval(corpus[i]); !slices.Equal(got, want[i]) {
					t.Errorf("message %d evaluated alongside others: %v, alone: %v", i, got, want[i])
				}
			}
		})
	}
	wg.Wait()
}
