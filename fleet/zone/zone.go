// Package zone reads rbldnsd ip4set zone data into memory and answers
// lookups from it as rbldnsd would, so a DNS list can be served on every
// node without a network round trip.
//
// The format is rbldnsd's ip4set (rbldnsd(8)): one entry a line, an
// address ("192.0.2.1"), a CIDR block of /8 to /32 ("192.0.2.0/24"), a
// range ("192.0.2.1-192.0.2.9") or rbldnsd's shortened forms ("10",
// "10.1", "10.1.2" meaning /8, /16, /24), optionally followed by
// ":A-value:TXT" (":A-value:" for no TXT, ":A-value" for the default
// TXT) or by whitespace and a TXT; a line ":A-value:TXT" sets the
// default answer for the lines after it; "!" before an entry excludes
// it; "#" and ";" start comments; "$TTL" and other "$" lines are
// accepted and ignored. The A value is an IPv4 address or a bare last
// octet ("2" for 127.0.0.2).
//
// Answers follow rbldnsd's storage: blocks live at /8, /16, /24 and /32
// (a /20 is sixteen /24s); the narrowest level holding an address
// answers, an exclusion there wins over the listings of that level, and
// every distinct listing of that level is an answer. "$" in a TXT is the
// address asked about, "$$" a dollar, and a TXT is cut at 254 bytes.
// Package fleet's TestZoneIdentityRBLDNSD checks this against rbldnsd.
//
// Where rbldnsd skips a line it cannot read (a prefix shorter than /8,
// "::text" without an A value), Read fails naming the line: a zone is
// loaded whole or not at all, so a truncated or mistyped publication
// never serves half a list. Limits bound the entries (counted as the
// level blocks they make) and the line length.
package zone

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Errors of package zone.
var (
	ErrSyntax = errors.New("zone: syntax error")
	ErrLimit  = errors.New("zone: limit exceeded")
)

// LineError is a malformed line.
type LineError struct {
	Line int
	Text string
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("zone: line %d %q: %v", e.Line, e.Text, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Limits bound a zone.
type Limits struct {
	MaxEntries   int // default 10,000,000
	MaxLineBytes int // default 4096
}

// Answer is what a listed address returns.
type Answer struct {
	A   netip.Addr // 127.0.0.2 by default
	TXT string
}

// Set is an ip4set in memory, stored the way rbldnsd stores it: four
// levels, /8, /16, /24 and /32, a block of another length being expanded
// into the blocks of the next level down (a /20 is sixteen /24s, a range
// the blocks that cover it). A lookup probes at most four maps whatever
// the zone's size: the narrowest level holding the address answers; an
// exclusion there wins over listings of the same level; every listing of
// that level is an answer. It is immutable once read: share it.
type Set struct {
	levels  [4]map[uint32]int32 // /8 /16 /24 /32: network → answer index, excluded, or -(multi index + 2)
	multi   [][]int32           // the answer indexes of networks listed more than once
	n       int
	blocks  int
	answers []Answer
}

const excluded = -1

// Len returns the number of entries (exclusions included), as written.
func (s *Set) Len() int { return s.n }

// put records answer ans (or excluded) for network v at level lv.
func (s *Set) put(lv int, v uint32, ans int32) {
	m := s.levels[lv]
	if m == nil {
		m = map[uint32]int32{}
		s.levels[lv] = m
	}
	old, ok := m[v]
	switch {
	case !ok:
		m[v] = ans
		s.blocks++
	case old == excluded:
	case ans == excluded:
		m[v] = excluded
	case old >= 0:
		s.multi = append(s.multi, []int32{old, ans})
		m[v] = -int32(len(s.multi)) - 1
	default:
		s.multi[-old-2] = append(s.multi[-old-2], ans)
	}
}

// add puts lo–hi as the level blocks that cover it; it returns false
// once the set holds more than max blocks.
func (s *Set) add(lo, hi uint32, ans int32, max int) bool {
	for {
		bits := 32
		for bits > 0 {
			size := uint64(1) << (32 - (bits - 1))
			if uint64(lo)%size != 0 || uint64(lo)+size-1 > uint64(hi) {
				break
			}
			bits--
		}
		lv := max8(bits)
		step := uint64(1) << (32 - 8*(lv+1))
		end := uint64(lo) + (uint64(1) << (32 - bits)) - 1
		for v := uint64(lo); v <= end; v += step {
			s.put(lv, uint32(v), ans)
			if s.blocks > max {
				return false
			}
		}
		if end >= uint64(hi) {
			return true
		}
		lo = uint32(end + 1)
	}
}

// max8 is the level of a prefix length: /1–/8 → 0 (/8), ... /25–/32 → 3.
func max8(bits int) int { return max(0, (bits+7)/8-1) }

// Read parses an ip4set zone.
func Read(r io.Reader, lim Limits) (*Set, error) {
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = 10_000_000
	}
	if lim.MaxLineBytes <= 0 {
		lim.MaxLineBytes = 4096
	}
	s := &Set{answers: []Answer{{A: netip.AddrFrom4([4]byte{127, 0, 0, 2})}}}
	def := int32(0)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), lim.MaxLineBytes)
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Text()
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '$' {
			continue
		}
		if line[0] == ':' {
			a, err := parseAnswer(line[1:], Answer{})
			if err != nil {
				return nil, &LineError{n, raw, err}
			}
			s.answers = append(s.answers, a)
			def = int32(len(s.answers) - 1)
			continue
		}
		neg := line[0] == '!'
		if neg {
			line = strings.TrimSpace(line[1:])
		}
		key, rest := line, ""
		if i := strings.IndexAny(line, ": \t"); i >= 0 {
			key, rest = line[:i], strings.TrimSpace(line[i:])
		}
		lo, hi, err := parseKey(key)
		if err != nil {
			return nil, &LineError{n, raw, err}
		}
		ans := def
		if neg {
			ans = excluded
		} else if rest != "" {
			a := Answer{A: s.answers[def].A, TXT: rest}
			if rest[0] == ':' {
				if a, err = parseAnswer(rest[1:], s.answers[def]); err != nil {
					return nil, &LineError{n, raw, err}
				}
			}
			s.answers = append(s.answers, a)
			ans = int32(len(s.answers) - 1)
		}
		if s.n >= lim.MaxEntries || !s.add(lo, hi, ans, lim.MaxEntries) {
			return nil, &LineError{n, raw, fmt.Errorf("%w: more than %d entries (blocks of /8, /16, /24, /32)", ErrLimit, lim.MaxEntries)}
		}
		s.n++
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &LineError{n + 1, "", fmt.Errorf("%w: line longer than %d bytes", ErrLimit, lim.MaxLineBytes)}
		}
		return nil, fmt.Errorf("zone: %w", err)
	}
	return s, nil
}

// parseAnswer reads "A-value:TXT", "A-value:" (no TXT) or "A-value"
// (the TXT of def) after the colon, as rbldnsd does; the A value is
// required ("::text" is a line rbldnsd ignores: an error here).
func parseAnswer(v string, def Answer) (Answer, error) {
	av, txt, hasTXT := strings.Cut(v, ":")
	av = strings.TrimSpace(av)
	if av == "" {
		return Answer{}, fmt.Errorf("%w: no A value", ErrSyntax)
	}
	ip, err := netip.ParseAddr(av)
	if err != nil || !ip.Is4() {
		// rbldnsd also takes a bare last octet ("2" for 127.0.0.2).
		o, err2 := strconv.ParseUint(av, 10, 8)
		if err2 != nil {
			return Answer{}, fmt.Errorf("%w: A value %q", ErrSyntax, av)
		}
		ip = netip.AddrFrom4([4]byte{127, 0, 0, byte(o)})
	}
	a := Answer{A: ip, TXT: def.TXT}
	if hasTXT {
		a.TXT = strings.TrimSpace(txt)
	}
	return a, nil
}

func parseKey(k string) (lo, hi uint32, err error) {
	if a, b, ok := strings.Cut(k, "-"); ok {
		x, err1 := netip.ParseAddr(a)
		y, err2 := netip.ParseAddr(b)
		if err1 != nil || err2 != nil || !x.Is4() || !y.Is4() || u32(y) < u32(x) {
			return 0, 0, fmt.Errorf("%w: range %q", ErrSyntax, k)
		}
		return u32(x), u32(y), nil
	}
	addr, bits := k, -1
	if a, b, ok := strings.Cut(k, "/"); ok {
		n, err := strconv.Atoi(b)
		// rbldnsd serves nothing shorter than a /8.
		if err != nil || n < 8 || n > 32 {
			return 0, 0, fmt.Errorf("%w: prefix length %q (want 8 to 32)", ErrSyntax, b)
		}
		addr, bits = a, n
	}
	parts := strings.Split(addr, ".")
	if len(parts) > 4 {
		return 0, 0, fmt.Errorf("%w: address %q", ErrSyntax, addr)
	}
	var v uint32
	for i := 0; i < 4; i++ {
		var o uint64
		if i < len(parts) {
			if o, err = strconv.ParseUint(parts[i], 10, 8); err != nil || parts[i] == "" || (len(parts[i]) > 1 && parts[i][0] == '0') {
				return 0, 0, fmt.Errorf("%w: address %q", ErrSyntax, addr)
			}
		}
		v = v<<8 | uint32(o)
	}
	if bits < 0 {
		bits = 8 * len(parts)
	}
	mask := uint32(0)
	if bits > 0 {
		mask = ^uint32(0) << (32 - bits)
	}
	lo = v & mask
	return lo, lo | ^mask, nil
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// maxTXT is the longest TXT rbldnsd answers, in bytes, after
// substitution.
const maxTXT = 254

// Answers returns the answers for an IPv4 address, none when it is not
// listed: those of the narrowest level holding it, in zone order, each
// (A, TXT) pair once, "$" in a TXT replaced by the address ("$$" by "$")
// and the TXT cut at 254 bytes, as rbldnsd answers.
func (s *Set) Answers(ip netip.Addr) []Answer {
	ip = ip.Unmap()
	if !ip.Is4() {
		return nil
	}
	v := u32(ip)
	for lv := 3; lv >= 0; lv-- {
		m := s.levels[lv]
		if m == nil {
			continue
		}
		x, ok := m[v&(^uint32(0)<<(24-8*lv))]
		if !ok {
			continue
		}
		if x == excluded {
			return nil
		}
		idx := []int32{x}
		if x < 0 {
			idx = s.multi[-x-2]
		}
		var out []Answer
		for _, i := range idx {
			a := s.answers[i]
			a.TXT = subst(a.TXT, ip)
			if !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
		return out
	}
	return nil
}

// subst replaces "$" by the address and "$$" by "$", then cuts at maxTXT.
func subst(txt string, ip netip.Addr) string {
	if strings.IndexByte(txt, '$') >= 0 {
		var b strings.Builder
		for i := 0; i < len(txt); i++ {
			switch {
			case txt[i] != '$':
				b.WriteByte(txt[i])
			case i+1 < len(txt) && txt[i+1] == '$':
				b.WriteByte('$')
				i++
			default:
				b.WriteString(ip.String())
			}
		}
		txt = b.String()
	}
	if len(txt) > maxTXT {
		txt = txt[:maxTXT]
	}
	return txt
}

// Lookup answers for an IPv4 address: listed or not, and the first
// answer (see Answers for all of them).
func (s *Set) Lookup(ip netip.Addr) (Answer, bool) {
	as := s.Answers(ip)
	if len(as) == 0 {
		return Answer{}, false
	}
	return as[0], true
}

// ReadBytes is Read over a byte slice.
func ReadBytes(b []byte, lim Limits) (*Set, error) { return Read(bytes.NewReader(b), lim) }
