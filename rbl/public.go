package rbl

import "net/netip"

// nonPublic are the special-purpose ranges (IANA's IPv4 and IPv6
// Special-Purpose Address Registries) whose addresses no public DNS list
// can know, by what they are.
var nonPublic = []struct {
	p    netip.Prefix
	name string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "CGNAT shared space (RFC 6598)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation (TEST-NET-1)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "deprecated 6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (RFC 2544)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation (TEST-NET-2)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation (TEST-NET-3)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64 (RFC 8215)"},
	{netip.MustParsePrefix("100::/64"), "discard-only (RFC 6666)"},
	{netip.MustParsePrefix("2001:2::/48"), "benchmarking (RFC 5180)"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("3fff::/20"), "documentation (RFC 9637)"},
	{netip.MustParsePrefix("fc00::/7"), "unique local (private)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "deprecated site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Public reports whether a could be in a public DNS list: an address of
// none of the special-purpose ranges (loopback, RFC 1918 and unique-local
// private, CGNAT 100.64.0.0/10, link-local, documentation, benchmarking,
// multicast, reserved, unspecified). An IPv4-mapped IPv6 address is judged
// as the IPv4 address it is.
func Public(a netip.Addr) bool { return a.IsValid() && Range(a) == "" }

// Range names the special-purpose range a is in ("loopback", "private
// (RFC 1918)", "CGNAT shared space (RFC 6598)" ...), "" for a public
// address.
func Range(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	for _, r := range nonPublic {
		if r.p.Contains(a) {
			return r.name
		}
	}
	if !a.IsValid() {
		return "invalid"
	}
	return ""
}

// TestNetworks are the ranges of RFC 5782 test points and documentation
// addresses (127.0.0.0/8, 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
// 2001:db8::/32), for Config.LookupNonPublic in tests and demos against a
// local rbldnsd. Never set them in production: a public list cannot know
// these addresses.
func TestNetworks() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{"127.0.0.0/8", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}
