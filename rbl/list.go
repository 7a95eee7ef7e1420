package rbl

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// Kind says what a list is keyed by.
type Kind int

const (
	// IPList is keyed by address: 2.0.0.127.zen.spamhaus.org (RFC 5782 §2.1,
	// IPv6 as 32 reversed nibbles §2.4).
	IPList Kind = iota
	// DomainList is keyed by domain name: example.com.dbl.spamhaus.org
	// (RFC 5782 §2.3), for RHSBL and URIBL.
	DomainList
)

func (k Kind) String() string {
	if k == DomainList {
		return "domain"
	}
	return "ip"
}

// Target is a bit set of what a list is asked about.
type Target uint8

const (
	// ClientIP is the connecting client's address (Connect stage).
	ClientIP Target = 1 << iota
	// ReceivedIPs are the relays in the Received chain below the trusted
	// boundary (Data stage; see Config.TrustedNetworks).
	ReceivedIPs
	// LinkIPs are the numeric hosts of links in the body (Data stage).
	LinkIPs
	// HeloDomain is the registrable domain of the HELO name (MailFrom stage).
	HeloDomain
	// SenderDomain is the registrable domain of MAIL FROM (MailFrom stage).
	SenderDomain
	// FromDomain is the registrable domain of the From header (Data stage).
	FromDomain
	// LinkDomains are the registrable domains of the links in text and
	// HTML bodies (Data stage): URIBL.
	LinkDomains
)

const ipTargets = ClientIP | ReceivedIPs | LinkIPs

// Code maps answers to a symbol and a score.
type Code struct {
	// Match selects the answers this code covers:
	//   "127.0.0.2"           exactly that address
	//   "127.0.0.0/24"        a CIDR prefix
	//   "127.0.0.3/0.0.0.255" address and dotted mask: any 127.x.y.3
	//   "&8" or "&0x08"       a bitmask: any answer with one of those bits set
	Match string
	// Name is appended to the list's symbol: RBL_ZEN + "_SBL". Empty means
	// the list's symbol itself.
	Name string
	// Score is added when an answer matches; negative for allowlists.
	Score float64

	m      matcher
	symbol string // the full symbol name
}

// matcher is a parsed Code.Match: an answer a matches when
// a&mask == value and, for bitmasks, a&bits != 0.
type matcher struct {
	mask, value, bits uint32
}

func (m matcher) match(a uint32) bool {
	if m.bits != 0 {
		return a&m.bits != 0
	}
	return a&m.mask == m.value
}

func parseMatch(s string) (matcher, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "&"); ok {
		n, err := strconv.ParseUint(rest, 0, 32)
		if err != nil || n == 0 {
			return matcher{}, fmt.Errorf("%w: bitmask %q", ErrConfig, s)
		}
		return matcher{bits: uint32(n)}, nil
	}
	addrS, maskS, hasMask := strings.Cut(s, "/")
	addr, err := netip.ParseAddr(addrS)
	if err != nil || !addr.Is4() {
		return matcher{}, fmt.Errorf("%w: code %q is not an IPv4 address", ErrConfig, s)
	}
	v := u32(addr)
	if !hasMask {
		return matcher{mask: ^uint32(0), value: v}, nil
	}
	if bits, err := strconv.Atoi(maskS); err == nil {
		if bits < 0 || bits > 32 {
			return matcher{}, fmt.Errorf("%w: prefix length in %q", ErrConfig, s)
		}
		mask := ^uint32(0) << (32 - bits)
		if bits == 0 {
			mask = 0
		}
		return matcher{mask: mask, value: v & mask}, nil
	}
	m, err := netip.ParseAddr(maskS)
	if err != nil || !m.Is4() {
		return matcher{}, fmt.Errorf("%w: mask in %q", ErrConfig, s)
	}
	return matcher{mask: u32(m), value: v & u32(m)}, nil
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// List is one DNS list and what its answers mean.
type List struct {
	// Name names the list in symbols and metrics; default the zone. The
	// symbol is Symbol, default "RBL_" + SymbolName(Name).
	Name   string
	Symbol string
	// Zone is the list's DNS zone, e.g. "zen.spamhaus.org".
	Zone string
	Kind Kind
	// Targets says what the list is asked about; zero means ClientIP for
	// IP lists and LinkDomains for domain lists.
	Targets Target
	// Codes map answers to symbols and scores. When Codes is set, an
	// answer that no code matches is a code the list does not define
	// (zen's 127.0.0.128): the lookup is unknown (ErrUndefinedCode), not
	// a listing, unless another answer of the same lookup matches a code.
	// Without Codes, every answer in 127.0.0.0/8 that is not refused
	// lists, with the list's own symbol and Score.
	Codes []Code
	// Score is the score of a listing when the list has no Codes;
	// negative for allowlists.
	Score float64
	// FailScore is the score of the LIST_FAIL symbol an unknown lookup adds.
	FailScore float64
	// Refused are answers that mean "query refused", never "listed": they
	// make the lookup unknown and count towards the list's back-off.
	// Default: Spamhaus's 127.255.255.252, .254 and .255.
	Refused []netip.Addr
	// NoTXT skips the TXT query that fetches the reason of a listing.
	NoTXT bool
	// TestListed and TestUnlisted are the RFC 5782 §5 test points the
	// health check queries: an entry that must be listed and one that must
	// not. Defaults: 127.0.0.2 and 127.0.0.1 for IP lists, "test" and
	// "invalid" for domain lists. "-" disables the check for the list.
	TestListed, TestUnlisted string
	// Timeout bounds one lookup in this list, failover included; zero
	// means Config.ListTimeout.
	Timeout time.Duration
	// Local answers an IP list from a zone in memory, without a network
	// round trip; an address it does not cover (its zone not loaded yet,
	// or IPv6 for an ip4set) is asked over DNS as usual. Its answers are
	// judged like DNS answers (Refused, Codes, NoTXT), never cached.
	Local Local
	// RequireLocal makes the checker not ready (mail tempfailed) while
	// Local is not, when Local has a Ready() error method: a node then
	// serves the list only from its current zone, never from DNS while it
	// loads.
	RequireLocal bool

	refused map[uint32]bool
}

// DefaultRefused are Spamhaus's "query refused" answers: typing error in
// the query (252), query via a public or open resolver (254), excessive
// number of queries (255).
var DefaultRefused = []netip.Addr{
	netip.AddrFrom4([4]byte{127, 255, 255, 252}),
	netip.AddrFrom4([4]byte{127, 255, 255, 254}),
	netip.AddrFrom4([4]byte{127, 255, 255, 255}),
}

// prepare fills in defaults and parses codes.
func (l *List) prepare() error {
	l.Zone = strings.ToLower(strings.Trim(strings.TrimSpace(l.Zone), "."))
	if l.Zone == "" {
		return fmt.Errorf("%w: list %q has no zone", ErrConfig, l.Name)
	}
	if _, ok := validName(l.Zone); !ok {
		return fmt.Errorf("%w: zone %q is not a domain name", ErrConfig, l.Zone)
	}
	if l.Name == "" {
		l.Name = l.Zone
	}
	if l.Symbol == "" {
		l.Symbol = "RBL_" + filter.SymbolName(l.Name)
	}
	if l.Kind != IPList && l.Kind != DomainList {
		return fmt.Errorf("%w: list %s has unknown kind %d", ErrConfig, l.Name, l.Kind)
	}
	if l.Targets == 0 {
		l.Targets = ClientIP
		if l.Kind == DomainList {
			l.Targets = LinkDomains
		}
	}
	if l.Local != nil && l.Kind != IPList {
		return fmt.Errorf("%w: list %s: a local zone serves IP lists only", ErrConfig, l.Name)
	}
	if l.Kind == IPList && l.Targets&^ipTargets != 0 || l.Kind == DomainList && l.Targets&ipTargets != 0 {
		return fmt.Errorf("%w: list %s: targets do not fit a %s list", ErrConfig, l.Name, l.Kind)
	}
	l.Codes = append([]Code(nil), l.Codes...)
	for i := range l.Codes {
		m, err := parseMatch(l.Codes[i].Match)
		if err != nil {
			return fmt.Errorf("list %s: %w", l.Name, err)
		}
		l.Codes[i].m = m
		l.Codes[i].symbol = l.Symbol
		if l.Codes[i].Name != "" {
			l.Codes[i].symbol += "_" + filter.SymbolName(l.Codes[i].Name)
		}
	}
	refused := l.Refused
	if refused == nil {
		refused = DefaultRefused
	}
	l.refused = map[uint32]bool{}
	for _, a := range refused {
		if !a.Unmap().Is4() {
			return fmt.Errorf("%w: list %s: refused code %s is not IPv4", ErrConfig, l.Name, a)
		}
		l.refused[u32(a.Unmap())] = true
	}
	if l.TestListed == "" && l.TestUnlisted == "" {
		l.TestListed, l.TestUnlisted = "127.0.0.2", "127.0.0.1"
		if l.Kind == DomainList {
			l.TestListed, l.TestUnlisted = "test", "invalid"
		}
	}
	return nil
}

// hasTestPoints reports whether the health check queries this list.
func (l *List) hasTestPoints() bool { return l.TestListed != "-" && l.TestListed != "" }

// testName turns a test point into the name queried.
func (l *List) testName(point string) (string, error) {
	if l.Kind == IPList {
		a, err := netip.ParseAddr(point)
		if err != nil {
			return "", fmt.Errorf("%w: list %s: test point %q", ErrConfig, l.Name, point)
		}
		return ipQuery(a, l.Zone), nil
	}
	return domainQuery(point, l.Zone)
}

// symbols turns the answers of a listing into symbols, one per matching
// code (or the list's own symbol when none matches).
func (l *List) symbols(addrs []netip.Addr) []filter.Symbol {
	var out []filter.Symbol
	add := func(name string, score float64) {
		for _, s := range out {
			if s.Name == name {
				return
			}
		}
		out = append(out, filter.Symbol{Name: name, Score: score})
	}
	for _, a := range addrs {
		v := u32(a)
		if len(l.Codes) == 0 {
			add(l.Symbol, l.Score)
			continue
		}
		for _, c := range l.Codes {
			if c.m.match(v) {
				add(c.symbol, c.Score)
			}
		}
	}
	return out
}

var loopback8 = netip.MustParsePrefix("127.0.0.0/8")

// classify checks the A answers of a lookup: a refused code or an answer
// outside 127.0.0.0/8 makes it unknown, and so do answers none of which
// the list's codes define.
func (l *List) classify(addrs []netip.Addr) error {
	for _, a := range addrs {
		if !loopback8.Contains(a) {
			return &AnswerError{Answer: a, Err: ErrBadAnswer}
		}
		if l.refused[u32(a)] {
			return &AnswerError{Answer: a, Err: ErrQueryRefused}
		}
	}
	if len(l.Codes) == 0 || len(addrs) == 0 {
		return nil
	}
	for _, a := range addrs {
		if l.defines(a) {
			return nil
		}
	}
	return &AnswerError{Answer: addrs[0], Err: ErrUndefinedCode}
}

// defines reports whether one of the list's codes matches a.
func (l *List) defines(a netip.Addr) bool {
	v := u32(a)
	for _, c := range l.Codes {
		if c.m.match(v) {
			return true
		}
	}
	return false
}
