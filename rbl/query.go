package rbl

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

const hexDigits = "0123456789abcdef"

// ipQuery is the name that asks zone about a: reversed octets for IPv4
// (RFC 5782 §2.1), reversed nibbles for IPv6 (§2.4); an IPv4-mapped IPv6
// address is asked as the IPv4 address it is.
func ipQuery(a netip.Addr, zone string) string {
	a = a.Unmap()
	var b strings.Builder
	if a.Is4() {
		o := a.As4()
		b.Grow(16 + len(zone))
		for i := 3; i >= 0; i-- {
			fmt.Fprintf(&b, "%d.", o[i])
		}
	} else {
		o := a.As16()
		b.Grow(64 + len(zone))
		for i := 15; i >= 0; i-- {
			b.WriteByte(hexDigits[o[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hexDigits[o[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(zone)
	b.WriteByte('.')
	return b.String()
}

// domainQuery is the name that asks zone about domain (RFC 5782 §2.3).
func domainQuery(domain, zone string) (string, error) {
	d, ok := validName(domain)
	if !ok {
		return "", fmt.Errorf("%w: %q is not a domain name", ErrConfig, domain)
	}
	q := d + "." + zone + "."
	if len(q) > 254 {
		return "", fmt.Errorf("%w: %q is too long to query in %s", ErrConfig, domain, zone)
	}
	return q, nil
}

// validName lower-cases a domain name, converts it to ASCII and checks
// it can be a DNS name: labels of 1..63 letters, digits, '-' and '_'.
func validName(s string) (string, bool) {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if s == "" || len(s) > 253 {
		return "", false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		a, err := idna.Lookup.ToASCII(s)
		if err != nil {
			return "", false
		}
		s = a
	}
	s = strings.ToLower(s)
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return s, true
}
