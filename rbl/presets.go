package rbl

import "net/netip"

// Presets for common lists, with the return codes their operators
// document; any other answer is unknown for the list (ErrUndefinedCode). None is on by default: querying them needs an agreement with
// the operator (free use is limited to low volumes, and most refuse
// queries through public resolvers). Scores follow SpamAssassin's and
// rspamd's defaults in spirit; tune them to your policy.
//
// Each function returns a fresh List that the caller may adjust.

// SpamhausZEN is zen.spamhaus.org: SBL, CSS, XBL, DROP and PBL in one
// IP list.
func SpamhausZEN() List {
	return List{
		Name: "zen", Symbol: "RBL_SPAMHAUS", Zone: "zen.spamhaus.org", Kind: IPList,
		Targets: ClientIP | ReceivedIPs | LinkIPs, Score: 2, FailScore: 0.1,
		Codes: []Code{
			{Match: "127.0.0.2", Name: "SBL", Score: 4},
			{Match: "127.0.0.3", Name: "CSS", Score: 2},
			{Match: "127.0.0.4/30", Name: "XBL", Score: 4}, // .4-.7
			{Match: "127.0.0.9", Name: "DROP", Score: 6},
			{Match: "127.0.0.10/31", Name: "PBL", Score: 2}, // .10-.11
		},
	}
}

// SpamhausDBL is dbl.spamhaus.org, a domain list for links and senders.
// Its RFC 5782 test point is dbltest.com.
func SpamhausDBL() List {
	return List{
		Name: "dbl", Symbol: "DBL", Zone: "dbl.spamhaus.org", Kind: DomainList,
		Targets: LinkDomains | SenderDomain | FromDomain, Score: 2, FailScore: 0.1,
		TestListed: "dbltest.com", TestUnlisted: "invalid",
		Codes: []Code{
			{Match: "127.0.1.2", Name: "SPAM", Score: 4},
			{Match: "127.0.1.4", Name: "PHISH", Score: 6},
			{Match: "127.0.1.5", Name: "MALWARE", Score: 6},
			{Match: "127.0.1.6", Name: "BOTNET", Score: 6},
			{Match: "127.0.1.102", Name: "ABUSED_SPAM", Score: 2},
			{Match: "127.0.1.103", Name: "ABUSED_REDIRECTOR", Score: 2},
			{Match: "127.0.1.104", Name: "ABUSED_PHISH", Score: 4},
			{Match: "127.0.1.105", Name: "ABUSED_MALWARE", Score: 4},
			{Match: "127.0.1.106", Name: "ABUSED_BOTNET", Score: 4},
		},
	}
}

// SpamCop is bl.spamcop.net: 127.0.0.2 means listed.
func SpamCop() List {
	return List{
		Name: "spamcop", Zone: "bl.spamcop.net", Kind: IPList, Targets: ClientIP | ReceivedIPs,
		Score: 3, FailScore: 0.1,
		Codes: []Code{{Match: "127.0.0.2", Score: 3}},
	}
}

// Barracuda is b.barracudacentral.org (registration required): 127.0.0.2
// means listed.
func Barracuda() List {
	return List{
		Name: "barracuda", Zone: "b.barracudacentral.org", Kind: IPList, Targets: ClientIP,
		Score: 3, FailScore: 0.1,
		Codes: []Code{{Match: "127.0.0.2", Score: 3}},
	}
}

// SURBL is multi.surbl.org, a domain list for links whose answer is a
// bitmask in the last octet. It publishes no RFC 5782 test points that
// this check relies on, so the health check skips it.
func SURBL() List {
	return List{
		Name: "surbl", Zone: "multi.surbl.org", Kind: DomainList, Targets: LinkDomains,
		Score: 3, FailScore: 0.1, TestListed: "-",
		Codes: []Code{
			{Match: "&8", Name: "PH", Score: 5},
			{Match: "&16", Name: "MW", Score: 5},
			{Match: "&64", Name: "ABUSE", Score: 4},
			{Match: "&128", Name: "CR", Score: 4},
		},
	}
}

// URIBL is multi.uribl.com, a domain list for links whose answer is a
// bitmask: 2 black, 4 grey, 8 red. It answers 127.0.0.1 when it refuses a
// query (excessive volume or a public resolver), which is unknown here.
func URIBL() List {
	return List{
		Name: "uribl", Zone: "multi.uribl.com", Kind: DomainList, Targets: LinkDomains,
		Score: 3, FailScore: 0.1, TestListed: "-",
		Refused: append([]netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}, DefaultRefused...),
		Codes: []Code{
			{Match: "&2", Name: "BLACK", Score: 4},
			{Match: "&4", Name: "GREY", Score: 1},
			{Match: "&8", Name: "RED", Score: 2},
		},
	}
}

// DNSWL is list.dnswl.org, an allowlist: 127.0.C.T where T is the trust
// level (0 none, 1 low, 2 medium, 3 high); scores are negative. It
// answers 127.0.0.255 when it refuses a query.
func DNSWL() List {
	return List{
		Name: "dnswl", Symbol: "RCVD_IN_DNSWL", Zone: "list.dnswl.org", Kind: IPList,
		Targets: ClientIP, FailScore: 0,
		Refused: append([]netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 255})}, DefaultRefused...),
		Codes: []Code{
			{Match: "127.0.0.0/0.0.0.255", Name: "NONE", Score: -0.1},
			{Match: "127.0.0.1/0.0.0.255", Name: "LOW", Score: -0.7},
			{Match: "127.0.0.2/0.0.0.255", Name: "MED", Score: -2.3},
			{Match: "127.0.0.3/0.0.0.255", Name: "HI", Score: -5},
		},
	}
}

// Presets returns every preset by name, for command-line flags.
func Presets() map[string]func() List {
	return map[string]func() List{
		"zen": SpamhausZEN, "dbl": SpamhausDBL, "spamcop": SpamCop, "barracuda": Barracuda,
		"surbl": SURBL, "uribl": URIBL, "dnswl": DNSWL,
	}
}
