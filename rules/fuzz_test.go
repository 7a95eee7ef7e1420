package rules

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

func noRel(string) ([]byte, error) { return nil, os.ErrNotExist }

// FuzzYAML: any rule file is either compiled or refused with an error;
// never a panic. Compiled sets evaluate a message without failing.
func FuzzYAML(f *testing.F) {
	f.Add([]byte(kindRules))
	f.Add([]byte(goodRules))
	f.Add([]byte("rules:\n  - {name: A, kind: meta, expr: '(B + C) >= 2'}\n  - {name: B, kind: body, literal: b}\n  - {name: C, kind: header, field: 'From:addr', regex: x}\n"))
	f.Add([]byte("thresholds: {reject: 3}\nscores: {A: 1}\n"))
	if b, err := defaultFS.ReadFile("default/default.yaml"); err == nil {
		f.Add(b)
	}
	msg := filter.NewMessageBytes(filter.Envelope{Helo: "x", MailFrom: "a@b.c"}, []byte(kindMessage), filter.Limits{})
	f.Fuzz(func(t *testing.T, data []byte) {
		sp := &spec{}
		if err := parseYAML("fuzz.yaml", data, sp, noRel); err != nil {
			return
		}
		s, err := compile(sp, compileOptions{})
		if err != nil {
			return
		}
		if _, err := s.Evaluate(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzCF: any SpamAssassin file is imported or refused, never a panic;
// what is imported compiles (a translated regex that RE2 refuses must have
// been skipped at import).
func FuzzCF(f *testing.F) {
	f.Add([]byte(readTestdata(f, "sa-mini.cf")))
	f.Add([]byte("body A /a(?=b)/\nmeta B A || C\nbody C m{x}i\nscore C 2\n"))
	f.Add([]byte("header A From:addr =~ /x/ [if-unset: y]\nif (version > 3)\nbody B /b/\nelse\nbody B /c/\nendif\n"))
	msg := filter.NewMessageBytes(filter.Envelope{}, []byte(kindMessage), filter.Limits{})
	f.Fuzz(func(t *testing.T, data []byte) {
		sp := &spec{}
		if err := parseCF([]namedData{{"fuzz.cf", data}}, sp); err != nil {
			return
		}
		s, err := compile(sp, compileOptions{})
		if err != nil {
			// Only duplicate-free, valid rules leave the importer; meta
			// cycles are the one fault it cannot see.
			for _, e := range unwrapAll(err) {
				if le, ok := e.(*LoadError); !ok || !isCycle(le) {
					t.Fatalf("imported set does not compile: %v", err)
				}
			}
			return
		}
		if _, err := s.Evaluate(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	})
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func isCycle(le *LoadError) bool { return errors.Is(le.Err, ErrCycle) }

// FuzzPerlRegex: a translation is either refused with a reason or compiles.
func FuzzPerlRegex(f *testing.F) {
	for _, s := range []string{`/foo/i`, `m{a/b}x`, `/(?<=a)b/`, `/\xff/`, `/a # c/x`, `/\Z\h\R/`, `m!x!ms`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		re, _, err := parsePerlRegex(s)
		if err != nil {
			if _, ok := err.(*errSkip); !ok {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if _, err := compileRule(&Rule{Name: "X", Kind: Body, Regex: re}, Limits{}.withDefaults()); err != nil {
			t.Fatalf("%q translated to %q, which does not compile: %v", s, re, err)
		}
	})
}

// FuzzMeta: any expression parses or is refused; parsed ones evaluate,
// compiled to the same value as the tree gives.
func FuzzMeta(f *testing.F) {
	for _, s := range []string{"A && !B", "(A + B + C) >= 2", "-A * 3 / (B - 1)", "((((A))))", "A || B && C == 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseMeta(s)
		if err != nil {
			return
		}
		n.names(func(m *metaNode) { m.id = 0 })
		p := compileMeta(n)
		stack := make([]float64, p.depth)
		for _, x := range []float64{0, 1} {
			want, got := n.eval([]float64{x}), p.eval([]float64{x}, stack)
			if want != got && !(want != want && got != got) {
				t.Fatalf("%q over %v: program %v, tree %v", s, x, got, want)
			}
		}
	})
}

// FuzzPerlRegexAny: a translation for any engine is refused with a reason
// or compiles on its engine, and its prefilter keys stand in a value it
// matches (keysPattern is a superset).
func FuzzPerlRegexAny(f *testing.F) {
	for _, s := range []string{`/foo(?=bar)/i`, `/(a)\1/`, `/(?>a+)b/`, `/\xe2\x80\x8b/`, `/x++y/`, `/(?<!do not )click/`, `/[[:alpha:]]+(?=x)/`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pr, _, err := parsePerlRegexAny(s)
		if err != nil {
			if _, ok := err.(*errSkip); !ok {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		r := Rule{Name: "X", Kind: Body, Regex: pr.pattern, backtrack: pr.backtrack, bytes: pr.bytes, sa: true}
		c, err := compileRule(&r, Limits{}.withDefaults())
		if err != nil {
			t.Fatalf("%q translated to %q, which does not compile: %v", s, pr.pattern, err)
		}
		c.keys() // must not panic
		if pr.backtrack {
			keysPattern(pr.pattern)
		}
	})
}

// FuzzReceived: any Received value parses into a relay, is ignored or is
// unparseable, without panicking, and a relay's fields hold no space or
// bracket (they are joined into the X-Spam-Relays strings).
func FuzzReceived(f *testing.F) {
	for _, s := range []string{
		"from mail.example.net (mail.example.net [198.51.100.7]) by mx.example.org (Postfix) with ESMTP id 4ABC",
		"from [204.245.199.98] (helo=zinfandel.lacita.com) by www.linux.org.uk with esmtp (Exim 3.13 #1) id 14lYR6",
		"from unknown (HELO x) (203.0.113.5) by y with SMTP",
		"(from daemon@localhost) by europe.std.com (8.9.3/8.9.3) id RAA09630",
		"from x ([IPv6:2001:db8::1]) by y with ESMTPSA id z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, _ := parseReceived(s)
		if r == nil {
			return
		}
		for _, v := range []string{r.ip, r.rdns, r.helo, r.by, r.ident, r.envfrom} {
			if strings.ContainsAny(v, " []()<>\t\n") {
				t.Fatalf("%q: field %q", s, v)
			}
		}
		_ = r.String()
	})
}

// FuzzEvalCall: any eval: call parses or is refused, and a parsed call
// round-trips its argument count.
func FuzzEvalCall(f *testing.F) {
	for _, s := range []string{`check_for_mime('mime_qp_count')`, `html_range('length', '0', 'inf')`, `check_no_relays()`, `f("a,b", 2)`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, args, err := parseEvalCall(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(name, "(") {
			t.Fatalf("%q: name %q", s, name)
		}
		if mk, ok := saEvals[name]; ok {
			if fn, err := mk(&saConf{}, args); err == nil && fn == nil {
				t.Fatalf("%q: no function and no error", s)
			}
		}
	})
}
