package rules

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

// randomMeta writes a random expression over names, with every operator
// the grammar has.
func randomMeta(rng *rand.Rand, names []string, depth int) string {
	if depth == 0 || rng.IntN(4) == 0 {
		if rng.IntN(5) == 0 {
			return []string{"0", "1", "2", "0.5", "3"}[rng.IntN(5)]
		}
		return names[rng.IntN(len(names))]
	}
	switch rng.IntN(4) {
	case 0:
		return []string{"!", "-"}[rng.IntN(2)] + randomMeta(rng, names, depth-1)
	case 1:
		return "(" + randomMeta(rng, names, depth-1) + ")"
	}
	ops := []string{"&&", "||", "+", "-", "*", "/", "==", "!=", "<", "<=", ">", ">="}
	return randomMeta(rng, names, depth-1) + " " + ops[rng.IntN(len(ops))] + " " + randomMeta(rng, names, depth-1)
}

// TestMetaProgMatchesTree: the compiled program computes what the tree
// computes, for random expressions over random values.
func TestMetaProgMatchesTree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"A", "B", "C", "D"}
	ids := map[string]int{"A": 0, "B": 1, "C": 2, "D": 3}
	for range 3000 {
		expr := randomMeta(rng, names, 6)
		n, err := parseMeta(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		n.names(func(m *metaNode) { m.id = ids[m.name] })
		p := compileMeta(n)
		stack := make([]float64, p.depth)
		for range 8 {
			v := []float64{float64(rng.IntN(2)), float64(rng.IntN(2)), float64(rng.IntN(3)), float64(rng.IntN(2))}
			want, got := n.eval(v), p.eval(v, stack)
			if want != got && !(want != want && got != got) {
				t.Fatalf("%s over %v: program %v, tree %v", expr, v, got, want)
			}
		}
	}
}

// TestMetaShortcut: a set of random metas over random metas and body
// rules hits the same with the shortcuts (only metas whose inputs changed;
// helpers tested only when a meta reaches them) as with every rule tested
// and every meta evaluated (NoPrefilter), on messages with random words;
// and metas that hit when nothing else does (!X) hit. The second set makes
// the word rules header helpers and two metas in three helpers, which the
// shortcut leaves pending or dirty until an emitted meta needs them.
func TestMetaShortcut(t *testing.T) {
	for _, helpers := range []bool{false, true} {
		t.Run(fmt.Sprintf("helpers=%v", helpers), func(t *testing.T) {
			testMetaShortcut(t, helpers)
		})
	}
}

func testMetaShortcut(t *testing.T, helpers bool) {
	rng := rand.New(rand.NewPCG(3, 4))
	var b strings.Builder
	b.WriteString("rules:\n")
	var ruleNames []string
	const words = 12
	for i := range words {
		name := fmt.Sprintf("W%d", i)
		if helpers {
			name = "__" + name
			fmt.Fprintf(&b, "  - {name: %s, kind: header, field: Subject, regex: 'word%dx', score: 0}\n", name, i)
		} else {
			fmt.Fprintf(&b, "  - {name: %s, kind: body, literal: word%dx, score: 1}\n", name, i)
		}
		ruleNames = append(ruleNames, name)
	}
	for i := range 300 {
		name := fmt.Sprintf("M%d", i)
		if helpers && rng.IntN(3) != 0 {
			name = "__" + name
		}
		fmt.Fprintf(&b, "  - {name: %s, kind: meta, expr: '%s', score: 1}\n", name, randomMeta(rng, ruleNames, 4))
		ruleNames = append(ruleNames, name)
	}
	fmt.Fprintf(&b, "  - {name: NOT_W0, kind: meta, expr: '!%s', score: 1}\n", ruleNames[0])
	file := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	fast := mustBuild(t, Config{Files: []string{file}})
	full := mustBuild(t, Config{Files: []string{file}, NoPrefilter: true})
	hits := 0
	for i := range 200 {
		var ws strings.Builder
		for w := range words {
			if rng.IntN(3) == 0 {
				fmt.Fprintf(&ws, "word%dx ", w)
			}
		}
		msg := "Subject: x " + ws.String() + "\r\n\r\n" + ws.String() + "\r\n"
		if i == 0 {
			msg = "Subject: x\r\n\r\nnothing\r\n"
		}
		a := eval(t, fast, filter.Envelope{}, msg)
		z := eval(t, full, filter.Envelope{}, msg)
		if !slices.Equal(names(a), names(z)) {
			t.Fatalf("message %q: shortcut %v, every meta %v", msg, names(a), names(z))
		}
		if i == 0 && !a.Has("NOT_W0") {
			t.Fatalf("NOT_W0 missing on a message without words: %v", names(a))
		}
		hits += len(a.Symbols)
	}
	if hits == 0 {
		t.Fatal("no rule hit on any message")
	}
}

// TestLazyHelpers: a helper that a meta's && skips is never tested, and
// one it reaches is; a helper meta is evaluated only when an emitted meta
// reaches it. Without the prefilter every rule is tested.
func TestLazyHelpers(t *testing.T) {
	file := writeRules(t, "l.yaml", `rules:
  - {name: __GUARD, kind: header, field: Subject, regex: 'offer.*\bme\b', score: 0}
  - {name: __SKIPPED, kind: header, field: From, regex: 'example', score: 0}
  - {name: __REACHED, kind: header, field: To, regex: 'example', score: 0}
  - {name: __INNER, kind: meta, expr: '__REACHED && __SKIPPED', score: 0}
  - {name: GUARDED, kind: meta, expr: '__GUARD && __INNER', score: 1}
  - {name: REACHES, kind: meta, expr: '!__GUARD && __REACHED', score: 1}
`)
	const msg = "From: a@example.com\r\nTo: b@example.com\r\nSubject: an offer, meh\r\n\r\nhi\r\n"
	for _, pre := range []bool{true, false} {
		s := mustBuild(t, Config{Files: []string{file}, NoPrefilter: !pre})
		ev := eval(t, s, filter.Envelope{}, msg)
		if got := names(ev); !slices.Equal(got, []string{"REACHES"}) {
			t.Errorf("prefilter %v: symbols %v, want [REACHES]", pre, got)
		}
		want := map[string]uint64{"__GUARD": 1, "__SKIPPED": 0, "__REACHED": 1, "__INNER": 0, "GUARDED": 1, "REACHES": 1}
		if !pre {
			want["__SKIPPED"], want["__INNER"] = 1, 1
		}
		for _, st := range s.Stats() {
			if st.Evaluations != want[st.Name] {
				t.Errorf("prefilter %v: %s: %d evaluations %d hits, want %d", pre, st.Name, st.Evaluations, st.Hits, want[st.Name])
			}
		}
	}
}

// TestUnusedRules: helpers that no reported rule reads are never tested,
// and the report counts them; the helpers a reported meta reads, through
// other helpers, are.
func TestUnusedRules(t *testing.T) {
	file := writeRules(t, "u.yaml", `rules:
  - {name: __USED, kind: header, field: Subject, regex: 'offer', score: 0}
  - {name: __USED_META, kind: meta, expr: '__USED', score: 0}
  - {name: REPORTED, kind: meta, expr: '__USED_META', score: 1}
  - {name: __ALONE, kind: header, field: Subject, regex: 'offer', score: 0}
  - {name: __FEEDS_UNUSED, kind: body, regex: 'offer', score: 0}
  - {name: __UNUSED_META, kind: meta, expr: '__FEEDS_UNUSED && __ALONE', score: 0}
`)
	e := New(Config{Files: []string{file}})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.Current().Report().Unused; got != 3 {
		t.Errorf("Report().Unused = %d, want 3 (__ALONE, __FEEDS_UNUSED, __UNUSED_META)", got)
	}
	res, err := e.Check(context.Background(), filter.NewMessageBytes(filter.Envelope{}, []byte("Subject: an offer\r\n\r\nan offer\r\n"), filter.Limits{}))
	if err != nil || len(res.Symbols) != 1 || res.Symbols[0].Name != "REPORTED" {
		t.Fatalf("symbols %v, err %v; want REPORTED", res.Symbols, err)
	}
	for _, st := range e.Stats() {
		tested := st.Evaluations > 0
		if want := !strings.Contains(st.Name, "UNUSED") && st.Name != "__ALONE"; tested != want {
			t.Errorf("%s: %d evaluations, %d hits", st.Name, st.Evaluations, st.Hits)
		}
	}
}
