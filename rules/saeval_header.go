package rules

import (
	"math"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ports of Plugin::HeaderEval, Plugin::FreeMail and Plugin::BodyEval
// functions that read headers and message sizes.

func init() {
	saEvals["check_for_missing_to_header"] = noArgs(func(v *view) bool {
		return v.saGet("To") == "" && v.saGet("Apparently-To") == ""
	})
	saEvals["check_equal_from_domains"] = noArgs(func(v *view) bool {
		from := sld(domainOf(v.saGet("From:addr")))
		env := sld(domainOf(v.saGet("EnvelopeFrom:addr")))
		return from != "" && env != "" && !strings.EqualFold(from, env)
	})
	saEvals["check_for_forged_gmail_received_headers"] = noArgs(checkForgedGmail)
	saEvals["check_outlook_message_id"] = noArgs(checkOutlookMessageID)
	saEvals["subject_is_all_caps"] = noArgs(subjectIsAllCaps)
	saEvals["check_ratware_name_id"] = noArgs(func(v *view) bool {
		m := saRatwareMID.FindStringSubmatch(v.saGet("MESSAGEID"))
		if m == nil {
			return false
		}
		return regexp.MustCompile(`"[^"]+"\s*<` + regexp.QuoteMeta(m[1]) + `>`).MatchString(v.saGet("From"))
	})
	saEvals["check_header_count_range"] = func(_ *saConf, args []string) (evalFunc, error) {
		name := strings.ToLower(argString(args, 0))
		lo, err1 := argFloat(args, 1, 0)
		hi, err2 := argFloat(args, 2, 0)
		if name == "" || err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			var uniq []string
			for _, f := range v.headerFields() {
				if f.key == name && !slices.Contains(uniq, f.saText) {
					uniq = append(uniq, f.saText)
				}
			}
			n := float64(len(uniq))
			return n >= lo && n <= hi
		}, nil
	}
	saEvals["check_for_shifted_date"] = func(_ *saConf, args []string) (evalFunc, error) {
		lo, err1 := argFloat(args, 0, math.Inf(-1))
		hi, err2 := argFloat(args, 1, math.Inf(1))
		if err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		return func(v *view) bool {
			d := v.dateInfo().diff
			return d >= 3600*lo && d < 3600*hi
		}, nil
	}
	saEvals["check_illegal_chars"] = func(_ *saConf, args []string) (evalFunc, error) {
		hdr := argString(args, 0)
		ratio, err1 := argFloat(args, 1, 0)
		count, err2 := argFloat(args, 2, 0)
		if hdr == "" || err1 != nil || err2 != nil {
			return nil, errArgs(args)
		}
		if !strings.HasSuffix(hdr, ":raw") {
			hdr += ":raw"
		}
		return func(v *view) bool { return illegalChars(v.saGet(hdr), hdr, ratio, count) }, nil
	}
	saEvals["check_body_length"] = func(_ *saConf, args []string) (evalFunc, error) {
		max, err := argFloat(args, 0, 0)
		if err != nil {
			return nil, errArgs(args)
		}
		return func(v *view) bool { return float64(v.pristineBodyLength()) <= max }, nil
	}
	saEvals["check_freemail_from"] = func(conf *saConf, args []string) (evalFunc, error) {
		var re *regexp.Regexp
		if len(args) > 0 {
			r, err := regexp.Compile(args[0])
			if err != nil {
				return nil, errArgs(args)
			}
			re = r
		}
		return func(v *view) bool {
			for _, a := range v.allFromAddrs() {
				if conf.isFreemail(a) && (re == nil || re.MatchString(a)) {
					return true
				}
			}
			return false
		}, nil
	}
	saEvals["check_freemail_header"] = func(conf *saConf, args []string) (evalFunc, error) {
		hdr := argString(args, 0)
		if hdr == "" || len(args) > 2 {
			return nil, errArgs(args)
		}
		var re *regexp.Regexp
		if len(args) == 2 {
			r, err := regexp.Compile(args[1])
			if err != nil {
				return nil, errArgs(args)
			}
			re = r
		}
		if !strings.HasSuffix(hdr, ":addr") {
			hdr += ":addr"
		}
		return func(v *view) bool {
			vals := v.headerValues(saSpec(hdr))
			if len(vals) == 0 {
				return false
			}
			for _, a := range strings.Split(vals[0], "\n") {
				a = strings.ToLower(a)
				if conf.isFreemail(a) && (re == nil || re.MatchString(a)) {
					return true
				}
			}
			return false
		}, nil
	}
}

func noArgs(fn evalFunc) evalMaker {
	return func(_ *saConf, args []string) (evalFunc, error) {
		if len(args) > 0 {
			return nil, errArgs(args)
		}
		return fn, nil
	}
}

// saGet is PerMsgStatus::get in scalar context: the joined value, the
// first address or name for :addr and :name, "" when missing.
func (v *view) saGet(field string) string {
	hs := saSpec(field)
	return saScalar(hs, v.headerValues(hs))
}

func saSpec(field string) headerSpec {
	hs, ok := saGetSpecs.Load(field)
	if !ok {
		hs, _ = saGetSpecs.LoadOrStore(field, parseSAHeaderSpec(field))
	}
	return hs.(headerSpec)
}

// saGetSpecs caches the parsed fields the eval functions ask for.
var saGetSpecs sync.Map

func saScalar(hs headerSpec, vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	if hs.sa.addr || hs.sa.dname || hs.sa.envFrom {
		first, _, _ := strings.Cut(vals[0], "\n")
		return first
	}
	return vals[0]
}

func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return addr[i+1:]
}

// sld keeps the last two labels, as check_equal_from_domains does.
func sld(d string) string {
	last := strings.LastIndexByte(d, '.')
	if last <= 0 || d[0] == '.' {
		return d
	}
	if i := strings.LastIndexByte(d[:last], '.'); i >= 0 {
		return d[i+1:] // the last two labels
	}
	return d
}

var (
	saGmailXReceived1 = mustPrecheck(`by 10\.\S+ with SMTP id \S+`)
	saGmailXReceived2 = mustPrecheck(`by 2002:a\d\d:\w+:\S+ with SMTP id \S+`)
	saGmailESMTPSA    = mustPrecheck(`by smtp\.googlemail\.com with ESMTPSA id \S+`)
	saGmailFrom       = mustPrecheck(`(?i)\bgmail\.com$`)
)

func checkForgedGmail(v *view) bool {
	if !saGmailFrom.MatchString(v.saGet("From:addr")) {
		return false
	}
	xr := v.saGet("X-Received")
	if saGmailXReceived1.MatchString(xr) || saGmailXReceived2.MatchString(xr) || saGmailESMTPSA.MatchString(v.saGet("Received")) {
		return false
	}
	return !(len(v.saGet("X-Gm-Message-State")) >= 60 && len(v.saGet("X-Google-Smtp-Source")) >= 60)
}

var (
	saOutlookMID      = mustPrecheck(`^<[0-9a-f]{4}([0-9a-f]{8})\$[0-9a-f]{8}\$[0-9a-f]{8}@`)
	saRcvdDate        = mustPrecheckStart(`(\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+)`, func(s string, i int) bool { return rcvSpace(s[i]) })
	saRatwareMID      = mustPrecheck(`<[A-Z]{28}\.([^>]+?)>`)
	saSubjReplyFw     = mustPrecheck(`(?i)^(?:(?:Re|Fwd|Fw|Aw|Antwort|WG|SV|VB|VS|VL):\s*)+`)
	saCapsCharsetWord = mustPrecheck(`(?i)=\?[-_a-z0-9]*(?:koi|jp|jis|euc|gb|big5|isoir|cp1251|windows-1251|georgianps|pt154|tis)[-_a-z0-9]*\?`)
	// Constants::CHARSETS_LIKELY_TO_FP_AS_CAPS
	saCapsCharsets = regexp.MustCompile(`(?i)[-_a-z0-9]*(?:koi|jp|jis|euc|gb|big5|isoir|cp1251|windows-1251|georgianps|pt154|tis)[-_a-z0-9]*`)
)

func checkOutlookMessageID(v *view) bool {
	m := saOutlookMID.FindStringSubmatch(v.saGet("MESSAGEID"))
	if m == nil {
		return false
	}
	token, err := strconv.ParseInt(m[1], 16, 64)
	if err != nil {
		return false
	}
	const x, y, fudge = 0.0023283064365387, 27111902.8329849, 250
	far := func(t int64) bool {
		expected := int64(float64(t)*x + y)
		d := token - expected
		return d >= fudge || d <= -fudge
	}
	if !far(parseRFC822Date(v.saGet("Date"))) {
		return false
	}
	var t int64
	rcvd := v.saGet("Received")
	if ms := saRcvdDate.FindAllStringSubmatch(rcvd, -1); len(ms) > 0 {
		t = parseRFC822Date(ms[0][1])
	}
	return far(t)
}

func subjectIsAllCaps(v *view) bool {
	s := strings.TrimSpace(v.saGet("Subject"))
	s = saSubjReplyFw.ReplaceAllString(s, "")
	if !strings.ContainsAny(s, " \t\n") || len(s) < 10 {
		return false
	}
	if saCapsCharsetWord.MatchString(v.saGet("Subject:raw")) {
		return false
	}
	// SpamAssassin's s/[^a-zA-Z]//g and then $s eq uc $s, counted in
	// place: some letter, and none of them lower case.
	letters := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z':
			return false
		case 'A' <= c && c <= 'Z':
			letters = true
		}
	}
	return letters
}

func illegalChars(str, hdr string, ratio, count float64) bool {
	if strings.TrimSpace(str) == "" {
		return false
	}
	nonASCII := strings.ContainsFunc(str, func(r rune) bool { return r >= 0x80 })
	if nonASCII && utf8Valid(str) && !strings.ContainsFunc(str, isC0) {
		return false
	}
	illegal := 0
	exempt := 0
	for i := 0; i < len(str); i++ {
		c := str[i]
		if c <= 0x08 || c == 0x0b || c == 0x0c || (c >= 0x0e && c <= 0x1f) || c >= 0x7f {
			illegal++
		}
		if c == 0xa2 || c == 0xa3 || c == 0xae {
			exempt++
		}
	}
	if illegal > 0 && strings.EqualFold(hdr, "subject:raw") && exempt == 1 {
		illegal--
	}
	return float64(illegal)/float64(len(str)) >= ratio && float64(illegal) >= count
}

func isC0(r rune) bool { return r <= 0x08 || r == 0x0b || r == 0x0c || (r >= 0x0e && r <= 0x1f) }

func utf8Valid(s string) bool {
	return !strings.ContainsRune(s, '\uFFFD') && strings.ToValidUTF8(s, "\uFFFD") == s
}

// parseRFC822Date is Util::parse_rfc822_date: seconds since the epoch, 0
// when the date cannot be read.
func parseRFC822Date(s string) int64 {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0
	}
	if t, ok := parseDateCommon(s); ok {
		return t
	}
	if t, err := mail.ParseDate(s); err == nil {
		return t.Unix()
	}
	// Looser forms seen in spam: no weekday comma, two-digit years,
	// missing zone.
	s = strings.Join(strings.Fields(saDateComment.ReplaceAllString(s, "")), " ")
	for _, layout := range []string{
		"Mon, 2 Jan 2006 15:04:05 -0700", "Mon 2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 -0700",
		"Mon, 2 Jan 2006 15:04:05 MST", "2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 06 15:04:05 -0700",
		"2 Jan 06 15:04:05 -0700", "Mon, 2 Jan 2006 15:04:05", "2 Jan 2006 15:04:05", "Mon, 2 Jan 2006 15:04 -0700",
		"Mon Jan 2 15:04:05 2006", "Mon Jan 2 15:04:05 MST 2006",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Unix()
		}
	}
	return 0
}

// dateCommon is the form nearly every Date and Received date has.
const dateCommon = "Mon, 2 Jan 2006 15:04:05 -0700"

// parseDateCommon parses a trimmed date of the dateCommon form, giving
// what mail.ParseDate gives, without its cost: ParseDate tries 24 layouts
// without a weekday first, and each failure allocates an error. A string
// that parses as dateCommon has no CR, LF, comment or sign before its
// zone, so ParseDate takes it whole, every layout without a weekday fails
// on its first letter, and the first with one is dateCommon itself
// (TestParseDateCommon checks this against ParseDate).
func parseDateCommon(s string) (int64, bool) {
	if s == "" || s[0] < 'A' {
		return 0, false
	}
	t, err := time.Parse(dateCommon, s)
	if err != nil {
		return 0, false
	}
	return t.Unix(), true
}

var saDateComment = mustPrecheck(`\([^)]*\)`)

// dateInfo is HeaderEval's view of the dates: the Date header's time and
// its difference from the Received lines' (date_diff).
type dateInfo struct {
	header int64   // Resent-Date, else Date; 0 when unreadable
	diff   float64 // seconds; 0 when there is nothing to compare
}

func (v *view) dateInfo() *dateInfo {
	if v.dates != nil {
		return v.dates
	}
	di := &dateInfo{}
	v.dates = di
	for _, name := range []string{"resent-date", "date"} {
		for _, f := range v.headerFields() {
			if f.key == name && f.saText != "" {
				if t := parseRFC822Date(f.saText); t != 0 {
					di.header = t
					break
				}
			}
		}
		if di.header != 0 {
			break
		}
	}
	if di.header == 0 {
		return di
	}
	times := v.receivedTimes()
	if len(times) == 0 {
		return di
	}
	var diffs []float64
	for _, t := range times {
		diffs = append(diffs, float64(di.header-t))
	}
	if len(diffs) > 1 && diffs[len(diffs)-1] == 0 {
		diffs = diffs[:len(diffs)-1]
	}
	slices.SortStableFunc(diffs, func(a, b float64) int {
		switch {
		case math.Abs(a) < math.Abs(b):
			return -1
		case math.Abs(a) > math.Abs(b):
			return 1
		}
		return 0
	})
	di.diff = diffs[0]
	return di
}

var (
	saFetchmailLocal = mustPrecheck(`\bfrom (?:localhost\s|(?:\S+ ){1,2}\S*\b127\.0\.0\.1\b)`)
	saQmailInvoked   = mustPrecheck(`qmail \d+ invoked by uid \d+`)
	saFetchmailBy    = mustPrecheck(`\bby localhost with \w+ \(fetchmail-[\d.]+`)
)

// receivedTimes are the dates of the Received lines, newest first,
// without the local fetchmail hops (_get_received_header_times).
func (v *view) receivedTimes() []int64 {
	var received []string
	for rest, more := v.saGet("Received"), true; more; {
		var l string
		l, rest, more = strings.Cut(rest, "\n")
		if strings.TrimSpace(l) != "" {
			received = append(received, l)
		}
	}
	if len(received) == 0 {
		return nil
	}
	var local []string
	if saFetchmailLocal.MatchString(received[0]) || saQmailInvoked.MatchString(received[0]) {
		local = append(local, received[0])
		received = received[1:]
	}
	if len(received) > 0 && saFetchmailBy.MatchString(received[0]) {
		received = received[1:]
	} else if len(local) > 0 {
		received = append([]string{local[0]}, received...)
	}
	var times []int64
	for _, r := range received {
		// The leftmost match, from where it starts: Go's regexp would try
		// every position of the line before it.
		if i := saRcvdDate.Index(r); i >= 0 {
			if m := saRcvdDate.re.FindStringSubmatch(r[i:]); m != nil {
				if t := parseRFC822Date(m[1]); t != 0 {
					times = append(times, t)
				}
			}
		}
	}
	return times
}

// pristineBodyLength is the length of the raw body after the header.
func (v *view) pristineBodyLength() int64 {
	parts, _ := v.m.Parts()
	if len(parts) == 0 {
		return 0
	}
	_, body := parts[0].Offset()
	return v.m.Size() - body
}

// allFromAddrs is PerMsgStatus::all_from_addrs, lower-cased.
func (v *view) allFromAddrs() []string {
	// Several evals ask (check_from_in_list for each list, the freemail
	// checks): the list is made once.
	if v.sax.fromAddrs != nil {
		return *v.sax.fromAddrs
	}
	var out []string
	add := func(field string) {
		vals := v.headerValues(saSpec(field))
		if len(vals) == 0 {
			return
		}
		for rest, more := vals[0], true; more; {
			var a string
			a, rest, more = strings.Cut(rest, "\n")
			if strings.Contains(a, "..") {
				a = saDots.ReplaceAllString(a, ".")
			}
			a = strings.ToLower(a)
			if a != "" && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	if vals := v.headerValues(saSpec("Resent-From:first:addr")); len(vals) > 0 {
		add("Resent-From:first:addr")
	} else {
		for _, f := range []string{"From:addr", "Envelope-Sender:addr", "Resent-Sender:addr", "X-Envelope-From:addr", "EnvelopeFrom:addr"} {
			add(f)
		}
	}
	v.sax.fromAddrs = &out
	return out
}

var (
	saDots          = mustPrecheck(`\.{2,}`)
	saFreemailAllow = mustPrecheck(`^(?:abuse|support|sales|info|helpdesk|contact|kontakt|(?:post|host|domain)master|undisclosed.*|request|mailer-daemon|mailer|daemon|root|spam|kundenservice|customerservice|nospam|reply|no-?reply|donotreply)@`)
)

// isFreemail is FreeMail::_is_freemail over the freemail_domains lists.
func (c *saConf) isFreemail(addr string) bool {
	addr = strings.ToLower(addr)
	d := domainOf(addr)
	if d == "" || saFreemailAllow.MatchString(addr) {
		return false
	}
	c.freemailOnce.Do(func() {
		c.freemailSet = map[string]bool{}
		for _, p := range c.freemail {
			if strings.Contains(p, "*") {
				c.freemailWild = append(c.freemailWild, p)
			} else {
				c.freemailSet[p] = true
			}
		}
	})
	if c.freemailSet[d] {
		return true
	}
	for _, p := range c.freemailWild {
		if wildcardMatch(p, d) {
			return true
		}
	}
	return false
}

// wildcardMatch matches a freemail_domains pattern: "*" stands for any
// run of characters within one label.
func wildcardMatch(pattern, s string) bool {
	// Label by label in step, without splitting: this runs for every
	// wildcard pattern on every freemail test.
	for {
		p, pmore, pok := strings.Cut(pattern, ".")
		l, smore, sok := strings.Cut(s, ".")
		if !labelMatch(p, l) {
			return false
		}
		if !pok || !sok {
			return pok == sok
		}
		pattern, s = pmore, smore
	}
}

// labelMatch matches one label of a wildcardMatch pattern.
func labelMatch(p, l string) bool {
	if p == "*" {
		return true
	}
	pre, suf, ok := strings.Cut(p, "*")
	if !ok {
		return p == l
	}
	return len(l) >= len(pre)+len(suf) && strings.HasPrefix(l, pre) && strings.HasSuffix(l, suf)
}
