package rules

import (
	"regexp"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
)

// Ports of WLBLEval's list checks over enlist_addrlist lists:
// "enlist_addrlist (NAME) *@*.example ..." adds address patterns to a
// list ("*" any string, "?" one character, case-insensitive, the whole
// address); check_from_in_list(NAME) tests every From-like address
// (all_from_addrs), check_replyto_in_list(NAME) the Reply-To address.
// A list no file fills never matches.

func init() {
	saEvals["check_from_in_list"] = func(conf *saConf, args []string) (evalFunc, error) {
		name := argString(args, 0)
		if name == "" || len(args) > 1 {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			for _, a := range v.allFromAddrs() {
				if conf.inAddrList(name, a) {
					return true
				}
			}
			return false
		}, nil
	}
	saEvals["check_replyto_in_list"] = func(conf *saConf, args []string) (evalFunc, error) {
		name := argString(args, 0)
		if name == "" || len(args) > 1 {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			a := v.saGet("Reply-To:addr")
			return a != "" && conf.inAddrList(name, a)
		}, nil
	}
}

// enlistAddrList reads an enlist_addrlist line: "(NAME) pattern...".
func (c *saConf) enlistAddrList(rest string) bool {
	name, list, ok := strings.Cut(strings.TrimSpace(rest), ")")
	name, ok2 := strings.CutPrefix(name, "(")
	if !ok || !ok2 || name == "" {
		return false
	}
	if c.addrLists == nil {
		c.addrLists = map[string][]string{}
	}
	c.addrLists[name] = append(c.addrLists[name], strings.Fields(strings.ToLower(list))...)
	return true
}

func (c *saConf) inAddrList(name, addr string) bool {
	addr = strings.ToLower(addr)
	for _, p := range c.addrLists[name] {
		if globMatch(p, addr) {
			return true
		}
	}
	return false
}

// globMatch matches s against a pattern of "*" (any string), "?" (any
// one byte) and literal bytes.
func globMatch(p, s string) bool {
	star, mark := -1, 0
	i, j := 0, 0
	for j < len(s) {
		switch {
		case i < len(p) && (p[i] == '?' || p[i] == s[j]):
			i++
			j++
		case i < len(p) && p[i] == '*':
			star, mark = i, j
			i++
		case star >= 0:
			i = star + 1
			mark++
			j = mark
		default:
			return false
		}
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

// bounceRelays is the addrLists key of welcomelist_bounce_relays: host
// name patterns of the site's own mail servers (Plugin::VBounce).
const bounceRelays = "\x00welcomelist_bounce_relays"

var (
	saQuotedReceived = regexp.MustCompile(`(?i)^[> ]*Received:`)
	saRelayName      = regexp.MustCompile(`\s(\S+\.\S+)\s`)
)

func init() {
	saEvals["have_any_bounce_relays"] = func(conf *saConf, args []string) (evalFunc, error) {
		return func(*view) bool { return len(conf.addrLists[bounceRelays]) > 0 }, nil
	}
	// check_welcomelist_bounce_relays: a Received line quoted in the body
	// (a bounce of the site's own mail) names one of its relays.
	saEvals["check_welcomelist_bounce_relays"] = func(conf *saConf, args []string) (evalFunc, error) {
		return func(v *view) bool {
			if len(conf.addrLists[bounceRelays]) == 0 {
				return false
			}
			listed := func(s string) bool {
				for _, m := range saRelayName.FindAllStringSubmatch(s, -1) {
					if conf.inAddrList(bounceRelays, m[1]) {
						return true
					}
				}
				return false
			}
			for _, l := range v.saBodyLines() {
				if saQuotedReceived.MatchString(l) && listed(" "+strings.TrimLeft(l, "> ")) {
					return true
				}
			}
			// Then the raw body, message/* attachments included, with
			// each Received field's folded lines joined.
			_, off := v.rootPart().Offset()
			n := max(0, min(v.m.Size()-off, int64(v.set.limits.MaxScanBytes)))
			b := make([]byte, n)
			k, _ := v.m.ReaderAt().ReadAt(b, off)
			found, field := false, ""
			for _, line := range strings.Split(strings.ReplaceAll(string(b[:k]), "\r\n", "\n"), "\n") {
				if !found && !saQuotedReceived.MatchString(line) {
					continue
				}
				found = true
				if line != "" && (line[0] == ' ' || line[0] == '\t') {
					field += line
				} else {
					field = line
				}
				if saQuotedReceived.MatchString(field) && listed(field) {
					return true
				}
			}
			return false
		}, nil
	}
}

func (v *view) rootPart() *filter.Part {
	parts, _ := v.m.Parts()
	return parts[0]
}
