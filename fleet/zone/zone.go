// Package zone reads rbldnsd ip4set zone data into memory and answers
// lookups from it, so a DNS list can be served on every node without a
// network round trip.
//
// The format is rbldnsd's ip4set (rbldnsd(8)): one entry a line, an
// address ("192.0.2.1"), a CIDR block ("192.0.2.0/24"), a range
// ("192.0.2.1-192.0.2.9") or rbldnsd's shortened forms ("10", "10.1",
// "10.1.2" meaning /8, /16, /24), optionally followed by ":A-value:TXT"
// or by whitespace and a TXT; a line ":127.0.0.2:text" sets the default
// answer for the lines after it; "!" before an entry excludes it (it
// wins over any block that contains it); "#" and ";" start comments;
// "$TTL" and other "$" lines are accepted and ignored. Every malformed
// line is an error naming its line number: a zone is loaded whole or not
// at all, so a truncated publication never serves half a list. Limits
// bound the entries and the line length.
package zone

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
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

// Set is an ip4set in memory: per prefix length, the blocks of that
// length (ranges are split into blocks when read), so a lookup is at most
// 33 map probes whatever the zone's size, and the narrowest block wins.
// It is immutable once read: share it.
type Set struct {
	blocks, excl [33]map[uint32]int // prefix length → network → answer index
	n            int
	answers      []Answer
}

// Len returns the number of entries (exclusions included).
func (s *Set) Len() int { return s.n }

// add puts lo–hi as CIDR blocks into m.
func add(m *[33]map[uint32]int, lo, hi uint32, ans int) {
	for {
		bits := 32
		for bits > 0 {
			size := uint64(1) << (32 - (bits - 1))
			if uint64(lo)%size != 0 || uint64(lo)+size-1 > uint64(hi) {
				break
			}
			bits--
		}
		if m[bits] == nil {
			m[bits] = map[uint32]int{}
		}
		if _, dup := m[bits][lo]; !dup {
			m[bits][lo] = ans
		}
		end := uint64(lo) + (uint64(1) << (32 - bits)) - 1
		if end >= uint64(hi) {
			return
		}
		lo = uint32(end + 1)
	}
}

// Read parses an ip4set zone.
func Read(r io.Reader, lim Limits) (*Set, error) {
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = 10_000_000
	}
	if lim.MaxLineBytes <= 0 {
		lim.MaxLineBytes = 4096
	}
	s := &Set{answers: []Answer{{A: netip.AddrFrom4([4]byte{127, 0, 0, 2})}}}
	def := 0
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
			a, err := parseAnswer(line[1:])
			if err != nil {
				return nil, &LineError{n, raw, err}
			}
			if !a.A.IsValid() { // "::text" changes only the TXT
				a.A = s.answers[def].A
			}
			s.answers = append(s.answers, a)
			def = len(s.answers) - 1
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
		if rest != "" && !neg {
			var a Answer
			if rest[0] == ':' {
				a, err = parseAnswer(rest[1:])
				if err != nil {
					return nil, &LineError{n, raw, err}
				}
				if !a.A.IsValid() {
					a.A = s.answers[def].A
				}
			} else {
				a = Answer{A: s.answers[def].A, TXT: rest}
			}
			s.answers = append(s.answers, a)
			ans = len(s.answers) - 1
		}
		if s.n >= lim.MaxEntries {
			return nil, &LineError{n, raw, fmt.Errorf("%w: more than %d entries", ErrLimit, lim.MaxEntries)}
		}
		s.n++
		if neg {
			add(&s.excl, lo, hi, 0)
		} else {
			add(&s.blocks, lo, hi, ans)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &LineError{n + 1, "", fmt.Errorf("%w: line longer than %d bytes", ErrLimit, lim.MaxLineBytes)}
		}
		return nil, fmt.Errorf("zone: %w", err)
	}
	return s, nil
}

// parseAnswer reads "A-value:TXT", "A-value" or ":TXT" (after the colon).
func parseAnswer(v string) (Answer, error) {
	av, txt, _ := strings.Cut(v, ":")
	var a Answer
	if av = strings.TrimSpace(av); av != "" {
		ip, err := netip.ParseAddr(av)
		if err != nil || !ip.Is4() {
			// rbldnsd also takes a bare last octet ("2" for 127.0.0.2).
			o, err2 := strconv.ParseUint(av, 10, 8)
			if err2 != nil {
				return a, fmt.Errorf("%w: A value %q", ErrSyntax, av)
			}
			ip = netip.AddrFrom4([4]byte{127, 0, 0, byte(o)})
		}
		a.A = ip
	}
	a.TXT = strings.TrimSpace(txt)
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
		if err != nil || n < 0 || n > 32 {
			return 0, 0, fmt.Errorf("%w: prefix length %q", ErrSyntax, b)
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

// find returns the narrowest block of m containing v.
func find(m *[33]map[uint32]int, v uint32) (int, bool) {
	for bits := 32; bits >= 0; bits-- {
		if m[bits] == nil {
			continue
		}
		mask := uint32(0)
		if bits > 0 {
			mask = ^uint32(0) << (32 - bits)
		}
		if i, ok := m[bits][v&mask]; ok {
			return i, true
		}
	}
	return 0, false
}

// Lookup answers for an IPv4 address: listed or not, and the answer.
func (s *Set) Lookup(ip netip.Addr) (Answer, bool) {
	ip = ip.Unmap()
	if !ip.Is4() {
		return Answer{}, false
	}
	v := u32(ip)
	if _, ex := find(&s.excl, v); ex {
		return Answer{}, false
	}
	i, ok := find(&s.blocks, v)
	if !ok {
		return Answer{}, false
	}
	a := s.answers[i]
	a.TXT = strings.ReplaceAll(a.TXT, "$", ip.String())
	return a, true
}

// ReadBytes is Read over a byte slice.
func ReadBytes(b []byte, lim Limits) (*Set, error) { return Read(bytes.NewReader(b), lim) }
