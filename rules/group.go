package rules

import (
	"math/bits"

	"github.com/portcullis-mail/portcullis/rules/internal/dfa"
)

// The body and raw-body rules without a literal key (a scan plan's
// always rules) run over every line of every message. Each one's DFA
// would make its own pass over the text; the plain ones (the answer is
// whether the regex matches a line: no negation, domains or CIDRs, no
// backtracking) instead run in groups, one dfa.Multi per group, one pass
// of its union automaton per line, which says which members match. A
// member that has matched a line is done: the later lines' passes no
// longer track it, and stop once every member is done. The answers are
// the members' own DFAs' (a Multi that reaches its cell cap answers with
// them), so grouping changes no value; a rule keeps its statistics (an
// evaluation a message, its hits, its share of the group's time) and its
// byte check (a member whose bytes the text lacks is done before the
// first line, and not evaluated, as it would not have run alone).

// maxGroup is the most rules in one group: the union of more patterns
// has more states, and more of them each text builds.
const maxGroup = 16

// ruleGroup is rules of one scope run by one Multi.
type ruleGroup struct {
	m         *dfa.Multi
	rules     []*crule // bit i of m's answers is rules[i]
	bytes     bool     // the rules read the text as Latin-1
	noSubject uint64   // the rules that do not see the Subject line
	all       uint64
}

// groupable reports whether always rule i of plan may run in a group.
func (plan *scanPlan) groupable(i int) bool {
	c := plan.always[i]
	return c.plainRegex() && c.Test == Match && c.reD != nil && plan.same[i] < 0
}

// buildGroups puts the groupable always rules of the body and raw-body
// scopes in groups, in set order, Latin-1 rules apart.
func (s *Set) buildGroups() {
	for _, scp := range []scope{scopeBody, scopeRawBody} {
		plan := &s.scans[scp]
		plan.grouped = make([]bool, len(plan.always))
		for _, bytes := range []bool{false, true} {
			var idx []int
			flush := func() {
				if len(idx) >= 2 {
					plan.groups = append(plan.groups, plan.newGroup(idx, bytes))
					for _, i := range idx {
						plan.grouped[i] = true
					}
				}
				idx = idx[:0]
			}
			for i, c := range plan.always {
				if c.bytes != bytes || !plan.groupable(i) {
					continue
				}
				if idx = append(idx, i); len(idx) == maxGroup {
					flush()
				}
			}
			flush()
		}
	}
}

func (plan *scanPlan) newGroup(idx []int, bytes bool) ruleGroup {
	g := ruleGroup{bytes: bytes}
	var ds []*dfa.DFA
	for k, i := range idx {
		c := plan.always[i]
		g.rules = append(g.rules, c)
		ds = append(ds, c.reD)
		if c.noSubject {
			g.noSubject |= 1 << k
		}
		g.all |= 1 << k
	}
	g.m = dfa.NewMulti(ds)
	return g
}

// run evaluates g's rules over the lines of a message's text (lines[0]
// the Subject when subject); present holds the text's bytes, for the byte
// checks, or nothing until one needs them.
func (g *ruleGroup) run(lines []string, subject bool, text string, present *byteSet, sc *scratch) {
	var skip uint64 // rules that would not have run: their bytes are absent
	for k, c := range g.rules {
		if c.need == nil {
			continue
		}
		if present.empty() {
			*present = textBytes(text)
		}
		if !c.need.set.intersects(present) {
			skip |= 1 << k
		}
	}
	if skip == g.all {
		return
	}
	var first *RuleStats
	for k, c := range g.rules {
		if skip&(1<<k) == 0 {
			first = c.stats
			break
		}
	}
	w, start := sc.startTimer(first)
	done := skip
	for k, x := range lines {
		d := done
		if k == 0 && subject {
			d |= g.noSubject
		}
		var got uint64
		if g.bytes {
			got = g.m.MatchLatin1(x, d)
		} else {
			got = g.m.Match(x, d)
		}
		if done |= got &^ d; done == g.all {
			break
		}
	}
	var share int64
	if w != 0 {
		share = w * (nanos() - start) / int64(len(g.rules)-bits.OnesCount64(skip))
	}
	for k, c := range g.rules {
		if skip&(1<<k) != 0 {
			continue
		}
		c.stats.Nanos.Add(share)
		c.stats.Evaluations.Add(1)
		if done&(1<<k) != 0 {
			c.stats.Hits.Add(1)
			sc.values[c.id] = 1
		}
	}
}
