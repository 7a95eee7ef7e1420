// Package rbl asks DNS lists about the parties of a mail transaction: the
// client address (DNSBL, DNSWL), the MAIL FROM, HELO and From-header
// domains (RHSBL) and the domains and numeric hosts of every link in the
// body (URIBL), the way RFC 5782 defines them: 2.0.0.127.zone for
// 127.0.0.2, IPv6 as 32 reversed nibbles, IPv4-mapped IPv6 as the IPv4
// address it is, example.com.zone for a domain. The A record is the
// verdict, the TXT record the reason; each list maps its return codes
// (exact, CIDR, dotted mask or bitmask) to symbols and scores, negative for
// allowlists.
//
// # Failure semantics
//
// A lookup is Listed, NotListed or Unknown, and Unknown is never
// NotListed. Only NXDOMAIN, or NOERROR with an empty answer section, is
// NotListed. A timeout, SERVFAIL, REFUSED, a truncated answer that TCP
// could not complete, a reply whose answer section holds anything but A
// records of the name asked (an AAAA, a TXT, a CNAME chain or loop:
// ErrNotAnswer), an answer outside 127.0.0.0/8 (a resolver that rewrites
// NXDOMAIN), a list's "query refused" codes (Spamhaus's 127.255.255.252,
// .254 and .255, URIBL's 127.0.0.1) and a return code that none of the
// list's Codes defines (zen's 127.0.0.128: ErrUndefinedCode) are all
// Unknown: the
// filter adds a visible LIST_FAIL symbol (RBL_ZEN_FAIL), counts it
// (portcullis_rbl_unknown_total) and logs it, and Config.OnUnknown can
// demand an action such as Tempfail. A list that keeps refusing is backed
// off — not asked — for a while, and each lookup skipped meanwhile is
// still Unknown, never clean.
//
// Addresses that no public list can know are never sent to one (Public:
// loopback, RFC 1918 and unique-local private, CGNAT 100.64.0.0/10,
// link-local, documentation, benchmarking, multicast, reserved): a client
// address or numeric link host of that kind gets the symbol RBL_LOCAL
// (Config.LocalScore, default 0) instead, Lookup answers Unknown
// (ErrNotPublic), and Received hops of that kind are skipped.
// Config.LookupNonPublic lets chosen ranges through: a list of your own
// networks, or tests against a local rbldnsd (TestNetworks). The health
// check asks the RFC 5782 test points (127.0.0.2, 127.0.0.1) regardless.
//
// # Resolvers
//
// Queries go to an ordered chain of recursive resolvers. One that times
// out or fails hands the query to the next (a failover, counted per
// resolver); MaxFailures failures in a row take it out of rotation for
// DownFor. A health check (every HealthInterval, and CheckHealth on
// demand) asks every resolver for each list's RFC 5782 §5 test points:
// 127.0.0.2 (or TEST) must be listed and 127.0.0.1 (or INVALID) must not.
// A resolver that answers "listed" for 127.0.0.1 hijacks NXDOMAIN, or the
// list lists everything; either way it is not used for that list until it
// passes, and a resolver that passes returns to rotation at once.
// Latency, errors and failovers are metrics per resolver; Health is a
// report a gateway can expose.
//
// # Zones in memory
//
// An IP list can also be answered from its zone held in memory
// (List.Local; package fleet serves zones published over NATS): a lookup
// of an address the zone covers is answered by a map probe, without a
// network round trip, and is never cached (the zone is its own cache).
// The answer is judged exactly as a DNS answer from rbldnsd serving the
// same zone file would be: the same A values, matched against the same
// Codes, refused codes and answers outside 127.0.0.0/8 Unknown, the TXT
// reason bounded the same way, NoTXT honoured, the public-address rule
// applied before either path. An address the zone does not cover (the
// zone not loaded yet, or IPv6 for an IPv4 zone) goes to DNS as usual:
// DNS is the fallback. With List.RequireLocal the checker is not ready
// until the zone is loaded, so a node tempfails mail rather than answer
// from DNS meanwhile. Local answers count as lookups like the others,
// and in portcullis_rbl_local_lookups_total; fallbacks to DNS in
// portcullis_rbl_local_fallbacks_total.
//
// # Cache and concurrency
//
// Answers (listed and not listed) are cached in a bounded LRU for their TTL
// clamped to [MinTTL, MaxTTL] (negative answers per RFC 2308); identical
// queries in flight at once share one exchange. The lists of a message
// are asked in parallel, each lookup under ListTimeout and all of them
// under Deadline; every message in flight shares the cache.
//
// # Filters
//
// Checker.Filters returns one filter per stage that has lists: rbl-connect
// (client IP), rbl-mailfrom (MAIL FROM and HELO registrable domains) and
// rbl-data (From header domain, link domains and numeric hosts found by
// internal/links, at most MaxLinks per message, and the Received-chain
// relays below TrustedNetworks). The presets (Spamhaus ZEN and DBL,
// SpamCop, Barracuda, SURBL, URIBL, DNSWL) are off until configured: their
// operators require an agreement for anything but low volumes.
package rbl
