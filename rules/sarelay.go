package rules

import (
	"net/netip"
	"slices"
	"strings"
)

// SpamAssassin reads the Received lines into relays (Message::Metadata::
// Received), decides which are trusted and which internal, and offers
// them to rules as the X-Spam-Relays-Trusted, -Untrusted, -Internal and
// -External pseudo-headers, one "[ ip=… rdns=… helo=… by=… ident=…
// envfrom=… intl=… id=… auth=… msa=… ]" per relay, newest first. This is
// a port of the common forms of its parser (Postfix, Sendmail, Exim,
// qmail, Microsoft, and the generic "[IP] … by HOST" fallback): a line
// none of them reads counts as unparseable, as in SpamAssassin.
//
// Without trusted_networks and internal_networks in the rule files, trust
// is inferred as SpamAssassin infers it: relays from private addresses or
// with authentication are trusted until the first one that is neither.

type relay struct {
	ip, rdns, helo, by, ident, envfrom, id, auth string
	hasEnvFrom                                   bool
	internal, msa                                bool
	private                                      bool
}

func (r *relay) String() string {
	b2i := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	return "[ ip=" + r.ip + " rdns=" + r.rdns + " helo=" + r.helo + " by=" + r.by + " ident=" + r.ident +
		" envfrom=" + r.envfrom + " intl=" + b2i(r.internal) + " id=" + r.id + " auth=" + r.auth + " msa=" + b2i(r.msa) + " ]"
}

// relayInfo is the parse of a message's Received lines.
type relayInfo struct {
	trusted, untrusted, internal, external []*relay
	unparseable                            int
	str                                    [4]string // the pseudo-headers' values (relayHeaders)
}

const saIP = `(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|(?i:IPv6:)?[0-9A-Fa-f]*:[0-9A-Fa-f:.]+)`

func rx(s string) *precheckedRE { return mustPrecheck(strings.ReplaceAll(s, "IP", saIP)) }

var (
	// A match starts at a run of [\s;]: at the run's first byte, as [\s;]+
	// takes the rest of it.
	rcvDate = mustPrecheckStart(`[\s;]+(?:(?:Mon|T(?:ue|hu)|Wed|Fri|S(?:at|un)), )?\d+ (?:J(?:an|u[nl])|Feb|Ma[ry]|A(?:pr|ug)|Sep|Oct|Nov|Dec) \d+ \d+:\d+(?::\d+)? \S+$`,
		func(s string, i int) bool { return rcvSpaceSemi(s[i]) && (i == 0 || !rcvSpaceSemi(s[i-1])) })
	rcvID        = mustPrecheck(` id <?([^\s<>;]{3,})`)
	rcvHeloEq    = mustPrecheck(`\bhelo=([-A-Za-z0-9.^+_&:=?!@%*$\\/]+)(?:[^-A-Za-z0-9.^+_&:=?!@%*$\\/]|$)`)
	rcvHeloCmd   = mustPrecheck(`\b(?:HELO|EHLO) ([-A-Za-z0-9.^+_&:=?!@%*$\\/]+)(?:[^-A-Za-z0-9.^+_&:=?!@%*$\\/]|$)`)
	rcvBy        = mustPrecheck(` by (\S+)(?:[^-A-Za-z0-9;.]|$)`)
	rcvAuthWith  = mustPrecheck(`(?i) with ((?:ES|L|UTF8S|UTF8L)MTPS?A|ASMTP|HTTP[SU]?)(?: |;|$)`)
	rcvAuthPfx   = mustPrecheck(`\) \(Authenticated sender: \S+\) by \S+ \(([^)]+)\) with `)
	rcvEnvFrom   = mustPrecheck(`(?i)(?:return-path:? |envelope-(?:sender|from)[ =])(\S+)\b`)
	rcvFromBy    = mustPrecheck(`(?i)^from (\S+) by [^\s;]+ ?;`)
	rcvBracketIP = rx(`^\[[\d.]+\]$`)
	rcvAnyIP     = rx(`\[(IP)\]`)
	rcvLocalhost = mustPrecheck(`^\(from \S+@localhost\) by \S+ `)
	rcvV4Mapped  = mustPrecheck(`(?i)^0*:0*:(?:0*:)*ffff:(\d+\.\d+\.\d+\.\d+)$`)
)

// rcvForm is one Received form: a pattern and the relay fields its groups
// fill, in order ("helo", "rdns", "ip", "by", "ident", "-" to ignore);
// dns says whether the MTA looked the client up (an empty rdns then means
// it has none).
type rcvForm struct {
	when   *precheckedRE // the form applies only when this matches (nil: always)
	re     *precheckedRE
	fields []string
	dns    bool
}

var rcvForms = []rcvForm{
	// Exim
	{rx(`Exim`), rx(`^\[(IP)\] \((.*?)\) by (\S+) `), []string{"ip", "exim", "by"}, false},
	{rx(`Exim`), rx(`^(\S+) \(\[(IP)\](.*?)\) by (\S+) `), []string{"rdns+helo", "ip", "exim", "by"}, false},
	{rx(`Exim`), rx(`^(\S+) \[(IP)\](?::\d+)? by (\S+) `), []string{"rdns+helo", "ip", "by"}, false},
	// Postfix
	{rx(` \(Postfix\) with`), rx(`^(\S+) \((\S+) \[(IP)\]\) by (\S+) `), []string{"helo", "rdns", "ip", "by"}, true},
	{rx(` \(Postfix\) with`), rx(`^(\S+) \((\S+)\[(IP)\]\) by (\S+) `), []string{"helo", "rdns", "ip", "by"}, true},
	// Microsoft
	{rx(` SMTPSVC`), rx(`^(\S*) \(\[(IP)\][^)]{0,40}\) by (\S+) with Microsoft SMTPSVC`), []string{"helo", "ip", "by"}, false},
	{rx(` with (?:Microsoft SMTP Server|mapi id) (?:\([^)]+\) )?\d+\.\d+\.\d+\.\d+(?:$| )`), rx(`^(\S+) \(\[?(IP)(?:%[A-Z0-9._~-]*)?\]?\) by (\S+) `), []string{"helo", "ip", "by", "noid"}, false},
	// Sendmail and friends
	{nil, rx(`^(\S+) \((\S+) \[(IP)\]\) by (\S+) with \S+ \(`), []string{"helo", "rdns", "ip", "by"}, true},
	{nil, rx(`^(\S+) \(\[(IP)\] helo=(\S+)\) by (\S+) with `), []string{"rdns", "ip", "helo", "by"}, false},
	{nil, rx(`^(\S+) \((\S+\.\S+)\[(IP)\]\) by (\S+) `), []string{"helo", "rdns", "ip", "by"}, true},
	{nil, rx(`^(\S+) \((?:HELO|EHLO) (\S*)\) \((IP)\) by (\S+) \(qpsmtpd/\S+\) with (?:ESMTP|SMTP)`), []string{"rdns", "helo", "ip", "by"}, false},
	{nil, rx(`^(\S+) \((?:HELO|EHLO) (\S*)\) \[(IP)\] by (\S+) \([^)]+\) with (?:ESMTP|SMTP)`), []string{"rdns", "helo", "ip", "by"}, false},
	// qmail
	{nil, rx(`^(\S+) \((?:HELO|EHLO) ([^ ()]*)\) \((\S*)@\[?(IP)\]?\)(?: \(envelope-sender <\S+>\))? by (\S+)`), []string{"rdns", "helo", "ident", "ip", "by"}, true},
	{nil, rx(`^(\S+) \((?:HELO|EHLO) ([^ ()]*)\) \(\[?(IP)\]?\)(?: \(envelope-sender <\S+>\))? by (\S+)`), []string{"rdns", "helo", "ip", "by"}, true},
	{nil, rx(`^(\S+) \((\S*)@\[?(IP)\]?\)(?: \(envelope-sender <\S+>\))? by (\S+)`), []string{"rdns+helo", "ident", "ip", "by"}, true},
	{nil, rx(`^(\S+) \(\[?(IP)\]?\)(?: \(envelope-sender <\S+>\))? by (\S+)`), []string{"rdns+helo", "ip", "by"}, true},
	{nil, rx(`^(\S+) \( \[(IP)\]\).*? by (\S+) `), []string{"helo", "ip", "by"}, false},
	{nil, rx(`^\((\S+) \[(IP)\]\) by (\S+) `), []string{"helo", "ip", "by"}, false},
	{nil, rx(`^\[(IP)\] by (\S+) `), []string{"ip", "by"}, false},
	{nil, rx(`^\(\[?(IP)\]?\) by (\S+) `), []string{"ip", "by"}, false},
	{nil, rx(`^(\S+) \(\[(IP)\]\) by (\S+) \(`), []string{"helo", "ip", "by"}, true},
	{nil, rx(`^(\S+) \((\S+) \[(IP)\]\).*? by (\S+)\b`), []string{"helo", "rdns", "ip", "by"}, true},
	{nil, rx(`^(\S+) \(\[(IP)(?:[.:]\d+)?\]\).*? by (\S+) `), []string{"helo", "ip", "by"}, true},
	{nil, rx(`^(\S+) \((?:HELO|EHLO) ([^)]*)\) \((?:\S*@)?\[?(IP)\]?\).* by (\S+) `), []string{"rdns", "helo", "ip", "by"}, true},
	{nil, rx(`^(\S+) \((?:\S*@)?\[?(IP)\]?\).* by (\S+) `), []string{"rdns+helo", "ip", "by"}, true},
	{nil, rx(`^(\S+) \((\S+) \[(IP)\]\) by (\S+) with `), []string{"helo", "rdns", "ip", "by"}, true},
	{nil, rx(`^\(\[(IP)\]\) by (\S+) with `), []string{"ip", "by"}, false},
	{nil, rx(`^([^\d]\S+) \((IP)\) by (\S+) `), []string{"helo", "ip", "by"}, false},
	{nil, rx(`^(IP) by (\S+) with `), []string{"ip", "by"}, false},
	{nil, rx(`^(\S+) \((\S+)\[(IP)\]\) by (\S+) `), []string{"helo", "rdns", "ip", "by"}, true},
}

// rcvIgnore are the local handovers SpamAssassin's parser ignores (it
// returns 0 for them: neither a relay nor unparseable).
var rcvIgnore = func() []*precheckedRE {
	const lh = `(?:localhost(?:\.localdomain)?|127\.0\.0\.1|::1|\[127\.0\.0\.1\]|\[::1\])`
	var out []*precheckedRE
	for _, s := range []string{
		`^\S+ \([^\s@]+@LH\) by \S+ \(`,
		`^\S+ \S+ by \S+ with local-e?smtp `,
		`^127\.0\.0\.1 \(AVG SMTP \S+ \[\S+\]\)`,
		`^\S+@\S+ by \S+ by uid \S+ `,
		`^\S+@\S+ by \S+ `,
		`^Unknown/Local \(`,
		`^LH \((?:\S+@)?LH[)\[]`,
		`^\S+ \((?:\S+@)?LH\) `,
		`^\S+ \(\S+@\S+ \[LH\]\) `,
		`^\(AUTH: \S+\) by \S+ with `,
		`^localhost \(localhost \[\[UNIX: localhost\]\]\) by `,
		`^[^.]+ by \S+ with Novell_GroupWise`,
		`^no\.name\.available by \S+ via smtpd \(for `,
		`^\S+ by \S+ with local`,
		`^\S+ \(\[unix socket\]\) by \S+ \(Cyrus v[0-9]*?\.[0-9]*?\.[0-9]*?\) with LMTPA`,
		`^\S+ by \S+ (?:with|via|for|\()`,
		`^\S+ (?:(?:with|via|for) \S+|\(unverified\)) by\b`,
		`^\S+ \(unknown\) by \S+ \(SG\) with \b`,
		`^\S+ \(\S+ \[local\]\) by \S+ \(OpenSMTPD\) with \b`,
		`\(LSMTP for`,
		`^\S+ named \S+ by gmailapi\.google\.com with HTTPREST$`,
		`^\S+ id \S+$`,
	} {
		out = append(out, mustPrecheck(strings.ReplaceAll(s, "LH", lh)))
	}
	return out
}()

var (
	rcvEximHelo  = mustPrecheck(`helo=(\S+)`)
	rcvEximIdent = mustPrecheck(`ident=(\S*)`)
)

// parseReceived reads one unfolded Received value. It returns nil and
// false for a line SpamAssassin ignores (local handovers), nil and true
// for one it cannot read.
func parseReceived(line string) (r *relay, counts bool) {
	s := strings.Join(strings.Fields(line), " ")
	for strings.HasSuffix(s, ";") {
		s = strings.TrimSuffix(strings.TrimRight(strings.TrimSuffix(s, ";"), " "), " ")
	}
	if t := strings.TrimPrefix(s, "("); len(t) < 5 || !strings.EqualFold(t[:5], "from ") {
		return nil, false
	}
	if strings.Contains(s, " with local for ") {
		return nil, false
	}
	if m := rcvFromBy.FindStringSubmatch(s); m != nil && !rcvBracketIP.MatchString(m[1]) {
		return nil, false
	}
	s = rcvCutDate(s)
	s = strings.ReplaceAll(s, ")by ", ") by ")
	r = &relay{}
	if m := rcvID.FindStringSubmatch(s); m != nil {
		r.id = m[1]
	}
	if m := rcvHeloEq.FindStringSubmatch(s); m != nil {
		r.helo = m[1]
	} else if m := rcvHeloCmd.FindStringSubmatch(s); m != nil {
		r.helo = m[1]
	}
	if m := rcvBy.FindStringSubmatch(s); m != nil {
		r.by = m[1]
	}
	if strings.Contains(s, " by ") {
		if m := rcvAuthWith.FindStringSubmatch(s); m != nil {
			r.auth = m[1]
		} else if m := rcvAuthPfx.FindStringSubmatch(s); m != nil {
			r.auth = m[1]
			if r.auth != "Postfix" {
				r.auth = "Postfix (" + r.auth + ")"
			}
		}
	}
	dns := false
	if rest, ok := strings.CutPrefix(s, "from "); ok {
		if m := rcvEnvFrom.FindStringSubmatch(rest); m != nil {
			r.envfrom, r.hasEnvFrom = m[1], true
		}
		if strings.Contains(rest, "Exim") && strings.Contains(rest, " with local") {
			return nil, false
		}
		matched := false
		for _, f := range rcvForms {
			if f.when != nil && !f.when.MatchString(rest) {
				continue
			}
			m := f.re.FindStringSubmatch(rest)
			if m == nil {
				continue
			}
			for i, name := range f.fields {
				if i+1 >= len(m) && name != "noid" {
					break
				}
				switch name {
				case "helo":
					r.helo = m[i+1]
				case "rdns":
					r.rdns = m[i+1]
				case "rdns+helo":
					r.rdns, r.helo = m[i+1], m[i+1]
				case "ip":
					r.ip = m[i+1]
				case "by":
					r.by = m[i+1]
				case "ident":
					r.ident = m[i+1]
				case "noid":
					r.id = ""
				case "exim":
					if h := rcvEximHelo.FindStringSubmatch(m[i+1]); h != nil {
						r.helo = h[1]
					}
					if id := rcvEximIdent.FindStringSubmatch(m[i+1]); id != nil {
						r.ident = id[1]
					}
				}
			}
			dns = f.dns
			matched = true
			break
		}
		if !matched {
			for _, re := range rcvIgnore {
				if re.MatchString(rest) {
					return nil, false
				}
			}
			if m := rcvAnyIP.FindStringSubmatch(rest); m != nil {
				r.ip = m[1]
			}
			if r.ip == "" || r.by == "" {
				return nil, true
			}
		}
	} else {
		if rcvLocalhost.MatchString(s) {
			return nil, false
		}
		if m := rcvAnyIP.FindStringSubmatch(s); m != nil {
			r.ip = m[1]
		}
		if r.ip == "" || r.by == "" {
			return nil, true
		}
	}
	_ = dns
	r.rdns = strings.TrimRight(r.rdns, ".")
	if strings.EqualFold(r.rdns, "unknown") || strings.HasPrefix(r.rdns, "[") {
		r.rdns = ""
	}
	ip := r.ip
	if len(ip) > 5 && strings.EqualFold(ip[:5], "ipv6:") {
		ip = ip[5:]
	}
	ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
	if i := strings.IndexByte(ip, '%'); i >= 0 {
		ip = ip[:i]
	}
	if m := rcvV4Mapped.FindStringSubmatch(ip); m != nil {
		ip = m[1]
	}
	r.by = strings.TrimSuffix(r.by, ";")
	strip := rcvStrip
	r.ip, r.rdns, r.helo, r.by, r.ident = strip(ip), strip(r.rdns), strip(r.helo), strip(r.by), strip(r.ident)
	if r.hasEnvFrom {
		r.envfrom = strip(strings.TrimRight(strings.TrimLeft(r.envfrom, " <"), "> "))
	}
	if a, err := netip.ParseAddr(r.ip); err == nil {
		r.private = ipPrivate(a)
	}
	return r, true
}

// rcvCutDate removes the date that ends a Received value (rcvDate's
// match). The match ends the text and its date holds exactly four or five
// spaces and no other \s, so it starts after the sixth \s from the end,
// and the [\s;]+ before the date cannot reach further left than the run
// of \s and ';' around that sixth: only that suffix is searched, instead
// of trying the pattern at every position of the line.
func rcvCutDate(s string) string {
	k, seen := len(s), 0
	for k > 0 && seen < 6 {
		k--
		if rcvSpace(s[k]) {
			seen++
		}
	}
	for k > 0 && (rcvSpace(s[k-1]) || s[k-1] == ';') {
		k--
	}
	// Every match ends the text ($ without (?m)), so the one match
	// ReplaceAllString would remove is s[k+i:].
	if i := rcvDate.Index(s[k:]); i >= 0 {
		return s[:k+i]
	}
	return s
}

func rcvSpaceSemi(c byte) bool { return rcvSpace(c) || c == ';' }

// rcvSpace is Go's \s.
func rcvSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r' }

// rcvStrip is SpamAssassin's s/[\s\000\#\[\]\(\)\<\>\|]/!/gs on a
// relay's fields, with Go's \s (tab, newline, form feed, carriage return,
// space); a byte loop, as no byte of a multi-byte rune is ASCII.
func rcvStrip(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return r < 0x80 && rcvStripped[r] })
	if i < 0 {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if b[i] < 0x80 && rcvStripped[b[i]] {
			b[i] = '!'
		}
	}
	return string(b)
}

var rcvStripped = func() (t [0x80]bool) {
	for _, c := range "\t\n\f\r \x00#[]()<>|" {
		t[c] = true
	}
	return t
}()

var privateNets = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{"10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
		"100.64.0.0/10", "::1/128", "fe80::/10", "fc00::/7", "fec0::/10"} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

func ipPrivate(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range privateNets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// relays parses the message's Received lines once.
func (v *view) relays() *relayInfo {
	if v.rcvd != nil {
		return v.rcvd
	}
	ri := &relayInfo{}
	v.rcvd = ri
	conf := v.set.saConf
	inTrusted, inInternal := true, true
	for _, f := range v.headerFields() {
		if f.key != "received" {
			continue
		}
		r, counts := parseReceived(saFold(strings.ReplaceAll(f.saText, "\r\n", "\n")))
		if r == nil {
			if counts {
				ri.unparseable++
			}
			continue
		}
		a, _ := netip.ParseAddr(r.ip)
		if inTrusted {
			if conf == nil || !conf.trustConfigured() {
				if !r.private && r.auth == "" {
					inTrusted, inInternal = false, false
				}
			} else {
				trusted, internal := conf.trustedNets(), conf.internalNets()
				if r.auth == "" && !netsContain(trusted, a) {
					inTrusted, inInternal = false, false
				} else if inInternal && r.auth == "" && !netsContain(internal, a) {
					inInternal = false
				}
			}
		}
		r.internal = inInternal
		if inTrusted {
			ri.trusted = append(ri.trusted, r)
		} else {
			ri.untrusted = append(ri.untrusted, r)
		}
		if inInternal {
			ri.internal = append(ri.internal, r)
		} else {
			ri.external = append(ri.external, r)
		}
	}
	join := func(rs []*relay) string {
		if len(rs) == 1 {
			return rs[0].String()
		}
		var b strings.Builder
		for i, r := range rs {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(r.String())
		}
		return b.String()
	}
	ri.str[0], ri.str[1] = join(ri.trusted), join(ri.untrusted)
	// Internal is most often trusted, and external untrusted: the same
	// relays, whose strings are not made twice.
	ri.str[2], ri.str[3] = ri.str[0], ri.str[1]
	if !slices.Equal(ri.internal, ri.trusted) {
		ri.str[2] = join(ri.internal)
	}
	if !slices.Equal(ri.external, ri.untrusted) {
		ri.str[3] = join(ri.external)
	}
	return ri
}

// relayHeaders are the pseudo-headers of the relays, in lower case.
var relayHeaders = [...]string{"x-spam-relays-trusted", "x-spam-relays-untrusted", "x-spam-relays-internal", "x-spam-relays-external"}

// pseudoHeader returns the string of the pseudo-header name (lower case),
// "" for another name.
func (ri *relayInfo) pseudoHeader(name string) string {
	for i, n := range relayHeaders {
		if n == name {
			return ri.str[i]
		}
	}
	return ""
}

func netsContain(nets []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	if a.IsLoopback() {
		return true // 127/8 is always trusted and internal
	}
	for _, p := range nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func init() {
	saEvals["check_no_relays"] = noArgs(func(v *view) bool {
		r := v.relays()
		return len(r.trusted) == 0 && len(r.untrusted) == 0 && r.unparseable == 0
	})
	saEvals["check_all_trusted"] = noArgs(func(v *view) bool {
		r := v.relays()
		return len(r.trusted) > 0 && len(r.untrusted) == 0 && r.unparseable == 0
	})
	saEvals["check_relays_unparseable"] = noArgs(func(v *view) bool { return v.relays().unparseable > 0 })
}
