package rules

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// BenchmarkGenerated10k: 10,000 generated rules over a 100 KB message, with
// and without the literal prefilter (MB/s is per core: one goroutine).
// "literal" rules all carry a literal, as campaign rules do; "mixed" has
// one rule in 100 without any, which must run on every line.
//
// The message draws one word in 25 ("dense": about 7 rules share each rule
// word, so a few thousand regexes run) or one in 400 ("sparse") from the
// rules' vocabulary.
func BenchmarkGenerated10k(b *testing.B) {
	for _, set := range []struct {
		name  string
		every int
		share int
	}{{"literal/dense", 0, 25}, {"literal/sparse", 0, 400}, {"mixed/dense", 100, 25}} {
		raw := []byte(generatedMessageShare(100<<10, 5, set.share))
		yaml, _ := generatedRules(10000, 11, set.every)
		file := writeRules(b, "gen.yaml", yaml)
		for _, tc := range []struct {
			name string
			pre  bool
		}{{"prefilter", true}, {"noprefilter", false}} {
			b.Run(set.name+"/"+tc.name, func(b *testing.B) {
				s, err := Build(Config{Files: []string{file}, NoPrefilter: !tc.pre})
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(raw)))
				hits := 0
				for b.Loop() {
					ev, err := s.Evaluate(context.Background(), filter.NewMessageBytes(filter.Envelope{}, raw, filter.Limits{}))
					if err != nil {
						b.Fatal(err)
					}
					hits = len(ev.Symbols)
				}
				b.ReportMetric(float64(hits), "hits")
			})
		}
	}
}

// mixedCorpus is SpamAssassin's samples, the default corpus, and generated
// plain messages of a few KB: small mail, as a gateway sees most.
func mixedCorpus(b testing.TB) [][]byte {
	var out [][]byte
	for _, f := range []string{"sa-sample-spam.eml", "sa-sample-nonspam.eml"} {
		out = append(out, []byte(readTestdata(b, f)))
	}
	entries, _ := fs.ReadDir(defaultFS, "default/corpus")
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".eml") {
			data, _ := fs.ReadFile(defaultFS, "default/corpus/"+e.Name())
			out = append(out, data)
		}
	}
	for i := range 4 {
		out = append(out, []byte(generatedMessage(2<<10+i<<10, uint64(i))))
	}
	return out
}

func benchCorpus(b *testing.B, s *Set) {
	corpus := mixedCorpus(b)
	n := 0
	for b.Loop() {
		for _, raw := range corpus {
			if _, err := s.Evaluate(context.Background(), filter.NewMessageBytes(filter.Envelope{}, raw, filter.Limits{})); err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSpamAssassin: the imported SpamAssassin rules over the mixed
// corpus, messages per second on one core.
func BenchmarkSpamAssassin(b *testing.B) {
	for _, tc := range []struct {
		name string
		pre  bool
	}{{"prefilter", true}, {"noprefilter", false}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := Build(Config{Files: saFiles(b), NoPrefilter: !tc.pre})
			if err != nil {
				b.Fatal(err)
			}
			benchCorpus(b, s)
		})
	}
}

// BenchmarkDefault: the embedded default set over the mixed corpus.
func BenchmarkDefault(b *testing.B) {
	benchCorpus(b, Default().Current())
}

// BenchmarkBuildSpamAssassin: how long a reload of the SpamAssassin rules takes.
func BenchmarkBuildSpamAssassin(b *testing.B) {
	files := saFiles(b)
	for b.Loop() {
		if _, err := Build(Config{Files: files}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTiers: the default pipeline's rules (the embedded set and
// SpamAssassin's) over the speed tiers of internal/benchcorpus, parsing
// included: the rule engine's share of the side-by-side benchmark.
func BenchmarkTiers(b *testing.B) {
	saFiles(b)
	s, err := Build(Config{Default: true, SpamAssassin: "/usr/share/spamassassin"})
	if err != nil {
		b.Fatal(err)
	}
	for _, tier := range benchcorpus.Tiers() {
		b.Run(tier.Name, func(b *testing.B) {
			b.SetBytes(int64(len(tier.Raw)))
			for b.Loop() {
				if _, err := s.Evaluate(context.Background(), filter.NewMessageBytes(filter.Envelope{}, tier.Raw, filter.Limits{})); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// The side-by-side benchmark's real-mail tier: the default set's
	// corpus and the repository's sample messages, in turn.
	var real [][]byte
	for _, g := range []string{"default/corpus/*.eml", "../testdata/*.eml"} {
		files, _ := filepath.Glob(g)
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			real = append(real, raw)
		}
	}
	b.Run("real-mail", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := s.Evaluate(context.Background(), filter.NewMessageBytes(filter.Envelope{}, real[i%len(real)], filter.Limits{})); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
