package rules

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/portcullis-mail/portcullis/rules/internal/dfa"
)

// SpamAssassin's eval: rules call Perl functions of its plugins. The ones
// in saEvals are ported to Go, each from the Perl that defines it
// (Mail::SpamAssassin::Plugin::*); an eval: rule naming any other
// function is skipped (ReasonEval) as before. An eval rule is evaluated
// once per message, after the texts it needs are built, and is never
// prefiltered.

// kindEval is the Kind of an imported eval: rule; it is not a kind a YAML
// rule file can name.
const kindEval Kind = "eval"

// evalFunc answers an eval rule for one message.
type evalFunc func(v *view) bool

// evalMaker builds an evalFunc from the rule's arguments, or says why it
// cannot (an argument this port does not handle). conf is the set's
// configuration, complete only once every file is read: read it when the
// evalFunc runs, not when it is made.
type evalMaker func(conf *saConf, args []string) (evalFunc, error)

// saConf is what SpamAssassin's configuration says beyond rules and
// scores, for the eval functions.
type saConf struct {
	freemail []string // freemail_domains: domains and patterns with "*"

	addrLists map[string][]string // enlist_addrlist: list name → lower-case address patterns

	// trusted_networks and internal_networks; each unset, the other's
	// value, and both unset, inferred per message (sarelay.go).
	trusted, internal       []netip.Prefix
	trustedSet, internalSet bool

	// body_part_scan_size and rawbody_part_scan_size, nil when not
	// given (scansize.go).
	bodyScan, rawScan *int

	freemailOnce sync.Once
	freemailSet  map[string]bool
	freemailWild []string
}

// saEvals maps a function name to its port; filled in by the files that
// port each plugin (saeval_*.go).
var saEvals = map[string]evalMaker{}

// parseEvalCall splits "name(arg, 'arg', "arg")" into the name and the
// arguments, quotes removed.
func parseEvalCall(s string) (name string, args []string, err error) {
	s = strings.TrimSpace(s)
	i := strings.IndexByte(s, '(')
	if i < 0 || !strings.HasSuffix(s, ")") {
		return "", nil, fmt.Errorf("not a call: %q", s)
	}
	name = strings.TrimSpace(s[:i])
	in := s[i+1 : len(s)-1]
	for len(strings.TrimSpace(in)) > 0 {
		in = strings.TrimLeft(in, " \t")
		var arg string
		if q := in[0]; q == '\'' || q == '"' {
			j := strings.IndexByte(in[1:], q)
			if j < 0 {
				return "", nil, fmt.Errorf("unterminated string in %q", s)
			}
			arg, in = in[1:1+j], in[2+j:]
		} else {
			j := strings.IndexByte(in, ',')
			if j < 0 {
				j = len(in)
			}
			arg, in = strings.TrimSpace(in[:j]), in[j:]
		}
		args = append(args, arg)
		in = strings.TrimLeft(in, " \t")
		if in != "" {
			if in[0] != ',' {
				return "", nil, fmt.Errorf("bad arguments in %q", s)
			}
			in = in[1:]
		}
	}
	return name, args, nil
}

// argFloat reads argument i as a number; "undef" and a missing argument
// give def.
func argFloat(args []string, i int, def float64) (float64, error) {
	if i >= len(args) || args[i] == "undef" || args[i] == "" {
		return def, nil
	}
	if args[i] == "inf" {
		return 1e300, nil
	}
	return strconv.ParseFloat(args[i], 64)
}

func argString(args []string, i int) string {
	if i >= len(args) {
		return ""
	}
	return args[i]
}

func errArgs(args []string) error { return fmt.Errorf("arguments %q not handled", args) }

func (c *saConf) trustConfigured() bool { return c.trustedSet || c.internalSet }

func (c *saConf) trustedNets() []netip.Prefix {
	if !c.trustedSet {
		return c.internal
	}
	return c.trusted
}

func (c *saConf) internalNets() []netip.Prefix {
	if !c.internalSet {
		return c.trusted
	}
	return c.internal
}

// addNets reads a trusted_networks or internal_networks line: addresses
// and CIDR blocks, "10." style prefixes too. It reports the first item it
// cannot read.
func addNets(list *[]netip.Prefix, rest string) error {
	for _, f := range strings.Fields(rest) {
		if strings.HasPrefix(f, "!") {
			return fmt.Errorf("negated network %q not supported", f)
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			*list = append(*list, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(f); err == nil {
			*list = append(*list, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		// "192.168." and "10" forms: a dotted IPv4 prefix.
		octets := strings.Split(strings.TrimSuffix(f, "."), ".")
		if n := len(octets); n >= 1 && n <= 3 {
			for len(octets) < 4 {
				octets = append(octets, "0")
			}
			if a, err := netip.ParseAddr(strings.Join(octets, ".")); err == nil && a.Is4() {
				*list = append(*list, netip.PrefixFrom(a, 8*n))
				continue
			}
		}
		return fmt.Errorf("bad network %q", f)
	}
	return nil
}

// saMatcher compiles a Perl match operator (/re/flags) for an eval
// function's own matching, on whichever engine the pattern needs, and
// returns what follows it.
func saMatcher(src string) (match func(string) bool, rest string, err error) {
	pr, rest, err := parsePerlRegexAny(src)
	if err != nil {
		return nil, "", err
	}
	if pr.backtrack {
		bt, err := compileBacktrack(pr.pattern)
		if err != nil {
			return nil, "", err
		}
		return func(s string) bool {
			if pr.bytes {
				s = latin1Runes(s)
			}
			ok, err := bt.MatchString(s)
			return ok && err == nil
		}, rest, nil
	}
	re := pr.re
	// Like the rules' own regexes, through a DFA (dfa.go): the sixty
	// mimeheader rules test every part's fields, a tenth of the rule
	// engine's time on real mail through Go's backtracker.
	d := dfa.New(re)
	if pr.bytes {
		return d.MatchLatin1, rest, nil
	}
	return d.MatchString, rest, nil
}
