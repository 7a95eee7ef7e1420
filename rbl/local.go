package rbl

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
)

// Local is a list's zone held in memory, which answers lookups without a
// network round trip (package fleet's zones, published over NATS,
// implement it). Set List.Local to use one.
type Local interface {
	// LookupLocal answers for an address the way the list's DNS server
	// (rbldnsd serving the same zone) would. covered is false when the
	// data is not loaded or does not cover the address (an ip4set does
	// not hold IPv6): the lookup then goes to DNS as if there were no
	// Local at all.
	LookupLocal(ip netip.Addr) (a LocalAnswer, covered bool)
}

// LocalAnswer is what a Local says about an address: the A records and
// TXT reason a DNS server would have answered.
type LocalAnswer struct {
	Listed bool
	Codes  []netip.Addr // the A values of a listing
	Reason string       // the TXT of a listing, "" for none
}

// localReadier is a Local that can say why it is not loaded.
type localReadier interface{ Ready() error }

// local answers a lookup of an IP list from its Local, if it covers the
// address. The answer goes through the same judgement as a DNS answer
// (refused codes, answers outside 127/8, codes the list does not define,
// NoTXT, the reason's bound), so a list answers the same from memory as
// over DNS; it is never cached (the zone is the cache) and never counts
// towards the list's back-off (nobody was asked).
func (c *Checker) local(l *listState, target, qname string) (Answer, bool) {
	if l.Local == nil || l.Kind != IPList {
		return Answer{}, false
	}
	ip, err := netip.ParseAddr(target)
	if err != nil {
		return Answer{}, false
	}
	la, ok := l.Local.LookupLocal(ip.Unmap())
	if !ok {
		c.metrics.Add("portcullis_rbl_local_fallbacks_total", 1, "list", l.Name)
		return Answer{}, false
	}
	a := Answer{List: l.Name, Target: target, Query: qname, Local: true, Status: NotListed}
	if la.Listed {
		codes := make([]netip.Addr, len(la.Codes))
		for i, x := range la.Codes {
			codes[i] = x.Unmap()
		}
		if err := l.classify(codes); err != nil {
			a.Status = Unknown
			a.Err = &LookupError{List: l.Name, Name: qname, Resolver: "local", Err: err}
		} else if len(codes) > 0 {
			a.Status, a.Codes, a.Symbols = Listed, codes, l.symbols(codes)
			if !l.NoTXT {
				a.Reason = localReason(la.Reason)
			}
		}
	}
	c.metrics.Add("portcullis_rbl_local_lookups_total", 1, "list", l.Name)
	c.metrics.Add("portcullis_rbl_lookups_total", 1, l.statusLabels[a.Status]...)
	if a.Status == Unknown {
		l.unknown.Add(1)
		c.metrics.Add("portcullis_rbl_unknown_total", 1, "list", l.Name, "reason", reason(a.Err))
		c.log.Warn("rbl lookup unknown", "list", l.Name, "target", target, "err", a.Err, "source", "local")
	}
	return a, true
}

// localReason writes a reason as the DNS path reads one: each TXT string
// of at most 255 bytes (one DNS character-string), in the presentation
// form miekg/dns unpacks it to (`"` and `\` escaped, other bytes outside
// printable ASCII as \DDD), bounded like parseTXT. A Local gives TXTs
// joined by "; " as parseTXT joins several records.
func localReason(s string) string {
	var b strings.Builder
	for i, part := range strings.Split(s, "; ") {
		if i > 0 {
			b.WriteString("; ")
		}
		if len(part) > 255 {
			part = part[:255]
		}
		for j := 0; j < len(part); j++ {
			switch c := part[j]; {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < ' ' || c > '~':
				fmt.Fprintf(&b, "\\%03d", c)
			default:
				b.WriteByte(c)
			}
		}
	}
	s = b.String()
	if len(s) > maxReason {
		s = s[:maxReason]
	}
	return strings.ToValidUTF8(s, "?")
}

// localReady is nil unless a list that requires its Local (RequireLocal)
// has it not loaded.
func (c *Checker) localReady() error {
	for _, l := range c.lists {
		if !l.RequireLocal || l.Local == nil {
			continue
		}
		if r, ok := l.Local.(localReadier); ok {
			if err := r.Ready(); err != nil {
				return fmt.Errorf("%w: list %s: %w", filter.ErrNotReady, l.Name, err)
			}
		}
	}
	return nil
}
