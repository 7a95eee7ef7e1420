package rules

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
	"github.com/portcullis-mail/portcullis/rules/internal/dfa"
)

// groupCorpus returns the real mail and the speed tiers (but the 3 MB one).
func groupCorpus(t *testing.T) [][]byte {
	t.Helper()
	var msgs [][]byte
	for _, g := range []string{"default/corpus/*.eml", "../testdata/*.eml"} {
		files, _ := filepath.Glob(g)
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, raw)
		}
	}
	for _, tier := range benchcorpus.Tiers() {
		if len(tier.Raw) < 1<<20 {
			msgs = append(msgs, tier.Raw)
		}
	}
	if len(msgs) < 10 {
		t.Fatalf("only %d messages", len(msgs))
	}
	return msgs
}

// TestGroupsAgainstRegexp: the body and raw-body rules of the default
// pipeline (the embedded set and SpamAssassin's), keyed or not, grouped
// in Multis of maxGroup in set order, say of each line of the corpus
// which of them match as Go's regexp does, with and without members done.
func TestGroupsAgainstRegexp(t *testing.T) {
	t.Parallel()
	saFiles(t)
	s := mustBuild(t, Config{Default: true, SpamAssassin: "/usr/share/spamassassin"})
	type group struct {
		m     *dfa.Multi
		rules []*crule
	}
	var groups [nScopes][]group
	for _, scp := range []scope{scopeBody, scopeRawBody} {
		for _, bytes := range []bool{false, true} {
			var g group
			flush := func() {
				if len(g.rules) > 0 {
					var ds []*dfa.DFA
					for _, c := range g.rules {
						ds = append(ds, dfa.New(c.re))
					}
					g.m = dfa.NewMulti(ds)
					groups[scp] = append(groups[scp], g)
				}
				g = group{}
			}
			for _, c := range s.scans[scp].rules {
				if c.plainRegex() && c.bytes == bytes {
					if g.rules = append(g.rules, c); len(g.rules) == maxGroup {
						flush()
					}
				}
			}
			flush()
		}
	}
	rng := rand.New(rand.NewPCG(31, 32))
	lines, matched := 0, 0
	for i, raw := range groupCorpus(t) {
		if testing.Short() && i%4 != 0 {
			continue
		}
		v := &view{m: filter.NewMessageBytes(filter.Envelope{}, raw, filter.Limits{}), set: s}
		for scp, gs := range groups {
			if len(gs) == 0 {
				continue
			}
			text := v.text(scope(scp))
			starts := appendLineStarts(nil, text)
			for k, lo := range starts {
				hi := len(text)
				if k+1 < len(starts) {
					hi = starts[k+1] - 1
				}
				line := text[lo:hi]
				lines++
				for _, g := range gs {
					done := uint64(0)
					if rng.IntN(4) == 0 {
						done = rng.Uint64()
					}
					var got uint64
					if g.rules[0].bytes {
						got = g.m.MatchLatin1(line, done)
					} else {
						got = g.m.Match(line, done)
					}
					for b, c := range g.rules {
						want := done&(1<<b) != 0 || regexMatch(nil, c.re, line, c.bytes)
						if want && done&(1<<b) == 0 {
							matched++
						}
						if got&(1<<b) != 0 != want {
							t.Fatalf("message %d line %d: %s %q: group %v, regexp %v on %q", i, k, c.Name, c.re, !want, want, line)
						}
					}
				}
			}
		}
		v.releaseSAVals()
		v.releaseRendered()
	}
	full := 0
	for _, gs := range groups {
		for _, g := range gs {
			if g.m.Full() {
				full++
			}
		}
	}
	t.Logf("%d lines, %d matches, %d of the groups full", lines, matched, full)
	// A short run reads a quarter of the corpus (66 matches in it).
	if least := map[bool]int{false: 100, true: 25}[testing.Short()]; matched < least {
		t.Errorf("only %d matches: the test says little", matched)
	}
}

// TestGroupsKeepStats: a set whose always rules run in groups gives every
// rule the same evaluations and hits as one that runs them one by one, on
// the corpus, with the prefilter and without it (then every body rule is
// an always rule, and the groups many).
func TestGroupsKeepStats(t *testing.T) {
	// Not parallel: Build hands tests building the same files the same
	// set (lastCompiled), statistics included, and this test counts them.
	saFiles(t)
	msgs := groupCorpus(t)
	for _, pre := range []bool{true, false} {
		cfg := Config{Default: true, SpamAssassin: "/usr/share/spamassassin", NoPrefilter: !pre}
		grouped := mustBuild(t, cfg)
		cfg.noGroups = true
		alone := mustBuild(t, cfg)
		if len(grouped.scans[scopeBody].groups) == 0 || len(alone.scans[scopeBody].groups) != 0 {
			t.Fatalf("prefilter %v: %d groups, %d without", pre, len(grouped.scans[scopeBody].groups), len(alone.scans[scopeBody].groups))
		}
		for i, raw := range msgs {
			if testing.Short() && i%3 != 0 {
				continue
			}
			for _, s := range []*Set{grouped, alone} {
				if _, err := s.Evaluate(context.Background(), filter.NewMessageBytes(filter.Envelope{}, raw, filter.Limits{})); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := map[string]RuleStat{}
		for _, st := range alone.Stats() {
			want[st.Name] = st
		}
		hits := 0
		for _, st := range grouped.Stats() {
			w := want[st.Name]
			if st.Evaluations != w.Evaluations || st.Hits != w.Hits {
				t.Errorf("prefilter %v: %s: grouped %d evaluations %d hits, alone %d %d", pre, st.Name, st.Evaluations, st.Hits, w.Evaluations, w.Hits)
			}
			hits += int(st.Hits)
		}
		if hits < 100 {
			t.Errorf("prefilter %v: only %d hits", pre, hits)
		}
	}
}
