// Package portcullis is an embeddable library for the security filtering a
// mail gateway does between the Internet and a mailbox server: DNS
// blocklists, antivirus engines, recursive attachment and archive
// inspection, rule scoring, and a durable queue with quarantine.
//
// This root package holds no code; it is the map. The packages:
//
//   - filter: the vocabulary. Envelope, Message (parsed once with bounded
//     cost and shared by every filter), Part, Symbol, Result, Action, Policy,
//     Verdict, the Pipeline that runs filters stage by stage (connect, helo,
//     mailfrom, rcpt, data), concurrently, each under a deadline, and the
//     Transaction that carries the evidence of one SMTP transaction across
//     its stages, spools DATA and applies the verdict's headers.
//   - archive: the attachment and archive inspector. Types by content,
//     banned types standalone and at any depth of any archive, nested
//     archives, encryption, bombs; hands every leaf file to scanners.
//   - scanner, scanner/clamd, scanner/icap, scanner/command: antivirus
//     engines and the multi-engine policy (quorum, circuit breaker, a guard
//     against an engine whose hit rate jumps after a faulty update).
//   - rbl: DNSBL, DNSWL, RHSBL and URIBL lookups that are listed, not listed
//     or unknown, never silently clean; a resolver chain that fails over and
//     measures itself; a shared cache.
//   - rules: a rule scorer with a literal prefilter, atomic hot reload, a
//     regression gate, and SpamAssassin rule import.
//   - queue: a durable spool (acknowledge only after fsync), delivery with
//     retries, bounces and fallback routes, backpressure, and quarantine.
//
// They compose through filter: every check is a filter.Filter, every
// finding a filter.Symbol, and one filter.Policy turns the evidence into a
// filter.Verdict with its SMTP reply. A gateway drives one
// filter.Transaction per SMTP transaction (Connect, Helo, Mail, each Rcpt,
// Data) and then, on accept, queue.Enqueue before it answers 250.
//
// # The promise
//
// No mail lost, no failure silent. Every fault becomes delay (a 4xx reply,
// the queue, a retry) or quarantine, visible in a symbol, a metric and a
// log line. An engine that is down, a DNS lookup that times out, a filter
// that panics or is not yet loaded: none of them is ever a pass, and none
// is ever a 5xx for a temporary problem.
package portcullis
