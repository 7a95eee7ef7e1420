// Package relay is Portcullis's SMTP/LMTP delivery client: a
// queue.Deliverer that sends each message to the next hops of its
// recipients' domains with go-smtp's client.
//
// Routes map a recipient domain (or "*") to next hops (Route.Hosts); the
// recipients of one message are grouped by route and each group is sent
// in one transaction. Transactions are spread over a route's hosts in
// turn (round-robin), live hosts first: a host that could not be reached
// is tried after the others for Config.HostDownTime, never skipped. A host
// that cannot be reached, or that refuses before answering for the
// recipients (greeting, EHLO, MAIL), passes them to the next host. A route's Fallback hosts take the
// recipients that every primary host refused by policy (IsPolicyRefusal:
// blocklist and reputation replies such as 550 5.7.1, 521, 554 "listed in
// DNSBL"), e.g. a relay whose address the recipient's blocklist does not
// list. STARTTLS is opportunistic by default (RFC 7435) or required
// (TLSRequired); every command has a deadline and ctx is honoured down to
// the socket; connections and transactions per host are bounded.
//
// # Failure semantics
//
// Deliver returns one error per recipient. A next hop's refusal is a
// *ReplyError carrying its reply (a filter.Reply, as the host sent it);
// it implements queue.RemoteError, so the queue bounces the recipient on a
// 5xx (quoting the reply in the DSN) and retries on anything else. A
// failure to reach or talk to a host is a *ConnError, always temporary. A
// domain without a route fails temporarily with ErrNoRoute: a
// configuration mistake must not bounce mail. DSN building stays with the
// queue, which bounces; this package never imports it the other way.
//
// # Metrics
//
// Through filter.Metrics: portcullis_queue_smtp_seconds{host,outcome}
// (observations) and portcullis_queue_fallback_total (counter).
package relay
