package rules

import (
	"slices"
	"strings"

	"github.com/dlclark/regexp2"
)

// A port of FreeMail::check_freemail_replyto: From and Reply-To are
// different freemail addresses; or ('replyto') the Reply-To is a
// freemail address and the body names another; or ('reply') the address
// a reply goes to (Reply-To, else From) is a freemail address and the
// body names another. A bulk-looking envelope sender skips the check
// (freemail_skip_bulk_envfrom), and a body naming over 5 addresses or 3
// freemail ones is not compared (freemail_skip_when_over_max).

var (
	saSkipReplytoEnvfrom = regexp2.MustCompile(`(?:^(?:post|host|domain)master|^double-bounce|^(?:sentto|owner|return|(?:gr)?bounced?)-.+|-(?:request|bounces?|admin|owner)|\b(?:do[._-t]?)?no[._-t]?repl(?:y|ies)|.+=.+)@`, regexp2.IgnoreCase)
	saEmailRE            = `(?=.{0,64}@)(?<![a-z0-9!#$%&'*+/=?^_` + "`" + `{|}~-])([a-z0-9!#$%&'*+/=?^_` + "`" + `{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_` + "`" + `{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,59}[a-z0-9])?\.){1,4}[a-z]{2,24})\b`
	saFreemailURLAt      = regexp2.MustCompile(`<?https?://\S{0,255}(?:@|%40)\S{0,255}`, regexp2.IgnoreCase)
	saFreemailLabeled    = regexp2.MustCompile(`<?(?<!mailto:)`+saEmailRE+`(?:>|\s{1,10}(?!(?:fa(?:x|csi)|tel|phone|e?-?mail))[a-z]{2,11}:)`, regexp2.IgnoreCase)
	saFreemailEmail      = regexp2.MustCompile(saEmailRE, regexp2.IgnoreCase)
)

func init() {
	for _, re := range []*regexp2.Regexp{saSkipReplytoEnvfrom, saFreemailURLAt, saFreemailLabeled, saFreemailEmail} {
		re.MatchTimeout = backtrackTimeout
	}
	saEvals["check_freemail_replyto"] = func(conf *saConf, args []string) (evalFunc, error) {
		what := argString(args, 0)
		if what == "" {
			what = "replyto"
		}
		if what != "replyto" && what != "reply" || len(args) > 1 {
			return nil, errArgs(args)
		}
		// The bulk-sender test comes last: it is a backtracking regex, and
		// only a message that would hit needs it.
		bulk := func(v *view) bool {
			env := v.saGet("EnvelopeFrom")
			if env == "" {
				return false
			}
			ok, _ := saSkipReplytoEnvfrom.MatchString(env)
			return ok
		}
		return func(v *view) bool {
			from, reply := v.saAddrs("From:addr"), v.saAddrs("Reply-To:addr")
			fromFM := slices.ContainsFunc(from, conf.isFreemail)
			replyFM := slices.ContainsFunc(reply, conf.isFreemail)
			fromNotInReply := !slices.ContainsFunc(from, func(a string) bool { return slices.Contains(reply, a) })
			if fromFM && replyFM && fromNotInReply {
				return !bulk(v)
			}
			if what == "replyto" && !replyFM || what == "reply" && (len(reply) > 0 && !replyFM || len(reply) == 0 && !fromFM) {
				return false
			}
			body, ok := v.freemailBody(conf)
			if !ok {
				return false
			}
			to := reply
			if what == "reply" && !replyFM {
				to = from
			}
			for _, b := range body {
				for _, r := range to {
					if b != r {
						return !bulk(v)
					}
				}
			}
			return false
		}, nil
	}
}

// saAddrs is PerMsgStatus::get in list context for :addr, lower-cased.
func (v *view) saAddrs(field string) []string {
	vals := v.headerValues(saSpec(field))
	if len(vals) == 0 || vals[0] == "" {
		return nil
	}
	return strings.Split(strings.ToLower(vals[0]), "\n")
}

// freemailBody is FreeMail::_parse_body's freemail addresses in the
// rendered body lines (URLs with an "@" and addresses labelled like
// "x@y.com>" or "x@y.com web:" left out); ok is false when the body names
// too many addresses to compare.
func (v *view) freemailBody(conf *saConf) (fm []string, ok bool) {
	var all []string
	for _, l := range v.saBodyLines() {
		if !strings.Contains(l, "@") {
			continue
		}
		l, _ = saFreemailURLAt.Replace(l, " ", -1, -1)
		l, _ = saFreemailLabeled.Replace(l, " ", -1, -1)
		m, _ := saFreemailEmail.FindStringMatch(l)
		for m != nil && len(all) < 40 {
			if e := strings.ToLower(m.GroupByNumber(1).String()); !slices.Contains(all, e) {
				all = append(all, e)
			}
			m, _ = saFreemailEmail.FindNextMatch(m)
		}
		if len(all) >= 40 {
			break
		}
	}
	for i, e := range all {
		if i+1 == 5 {
			return nil, false
		}
		if !conf.isFreemail(e) {
			continue
		}
		if len(fm)+1 == 3 {
			return nil, false
		}
		fm = append(fm, e)
	}
	return fm, true
}
