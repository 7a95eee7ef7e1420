// Package admin is the admin HTTP of a Portcullis gateway: health,
// readiness, metrics, a JSON API over the quarantine and the quarantine
// console, a web page operators and users can trust with hostile mail.
// It is one http.Handler: the example gateway and milter binaries serve
// it on their admin listener, and an integrator mounts it in a server of
// their own (under a prefix with http.StripPrefix and Config.BasePath).
//
// # Routes
//
//	GET    /healthz                     200 while the process serves
//	GET    /readyz                      200 when Config.Ready returns nil; 503 and the reason otherwise
//	GET    /metrics                     Config.Metrics (the binaries pass promhttp; this package imports no metrics library)
//	GET    /api/quarantine              held messages, newest first: filters since, until, symbol, engine,
//	                                    recipient, sender, text; limit (1-500, 50) and before (the next cursor)
//	GET    /api/quarantine/{id}         one message: record, headers, MIME tree, text of text parts
//	GET    /api/quarantine/{id}/raw     the raw message, application/octet-stream, quarantine-{id}.eml
//	POST   /api/quarantine/{id}/release queue it to its recipients: {"id", "queue_id"}
//	DELETE /api/quarantine/{id}         delete it for good
//	POST   /api/quarantine/rescan       re-scan what the filters select (query string or form); waits and
//	                                    answers the report, or with async=true answers 202 and the job at once
//	GET    /api/rescans/{job}           a re-scan's progress and report
//	GET    /api/queue                   the delivery queue (Config.Queue) in ID (enqueue) order: limit (1-500, 50),
//	                                    after (the next cursor), state (queued, held); {items, total, held, next}
//	GET    /api/queue/{id}              one entry: envelope, pending recipients, attempts, next attempt, last error
//	POST   /api/queue/{id}/retry        make it due now (a held one is released); 409 while an attempt holds it
//	POST   /api/queue/{id}/bounce       give up on its pending recipients: a DSN to the sender, the entry removed
//	GET    /api/fleet                   the fleet (Config.Fleet): the published rule set and every node's status
//	POST   /api/check                   the pipeline's verdict (JSON filter.Verdict) on the message in the body;
//	                                    envelope in the query: ip, helo, hostname, from, rcpt (repeatable), user,
//	                                    tls. Nothing is queued or held; 413 over Limits.MaxMessageBytes
//	GET    /quarantine                  the console (login, list, message view, actions, re-scan progress)
//	GET    /quarantine/fleet            the fleet page: nodes, rule set versions, readiness, queue depth, engines
//
// Every /api route needs the admin token as a bearer token
// (Authorization: Bearer TOKEN; 401 without), reads included: a held
// message is somebody's mail. A configured user may use the API with
// HTTP Basic authentication instead, and then sees and acts on their
// recipients' mail only, as in the console; the queue, fleet and check
// routes are for the token and admin users (403 for others). /healthz,
// /readyz and /metrics need none.
// EnsureToken generates the token into a data directory (mode 0600) on
// first start.
//
// Since and until take RFC 3339 times or a duration back from now ("2h",
// "7d"); symbol takes a name or a prefix ending in "*"; engine matches
// the engine a detection names ("clamd-1"); text matches sender,
// recipients, subject, ID and symbols, case-insensitively. Records carry
// no subject, so the list reads each shown message's header (and a text
// filter each candidate's); subjects are cached (4,096 of them).
//
// # The console
//
// Server-rendered html/template pages with the stylesheet and one small
// script embedded; no JavaScript framework, nothing loaded from
// elsewhere. Users log in with the admin token or a configured user's
// password (bcrypt). A session is a random ID in a cookie (HttpOnly,
// SameSite=Strict, Secure over TLS or with Config.SecureCookies) naming
// server-side state, so a logout or a restart ends it. Every form carries
// the session's CSRF token, and a POST without it, or with an Origin of
// another site, is refused with 403 (a reverse proxy in front must pass
// the Host header on); a POST without a session is refused with 401.
// Failed logins are rate-limited process-wide.
//
// A user with Recipients sees the held mail of those addresses (or
// "@domain"s) only; other messages answer "not found", so their IDs
// cannot be probed. A release or delete acts for every recipient of a
// message, so a user may release or delete only a message all of whose
// recipients are theirs; an admin may act on any. Every action is
// logged with who did it, how they logged in and the client address.
//
// Held mail is hostile, and the console shows it as inert text: every
// field is escaped by html/template; control characters, NULs, bidi
// overrides and isolates, zero-width and other invisible characters are
// shown as a visible marker naming their code point (a subject with
// U+202E cannot reorder what the operator reads); HTML parts are shown as
// their source, never rendered; long lines wrap; display bounds cap the
// header fields, parts and text shown. Every answer carries a
// Content-Security-Policy that allows the console's own stylesheet and
// script only (no inline script, no remote loads, no frames),
// X-Content-Type-Options: nosniff, X-Frame-Options: DENY, no-referrer
// and no-store. The raw download is application/octet-stream as an
// attachment named by the ID alone.
//
// # Re-scans
//
// A bulk re-scan (the faulty-update recovery: "everything engine X held
// since T") selects its messages when it starts and re-scans them one at
// a time through the quarantine's Rescan, under its rate limit and with
// one run name, so its progress is exact and every filter applies. One
// bulk re-scan runs at a time (409 for a second); the handler keeps the
// last 32 jobs' reports. A re-scan goes on when the client that started
// it goes away; Close cancels it, and what it did stays done (the
// quarantine's Rescan is resumable). A message the new verdict clears is
// released; one still flagged is kept with the new verdict; an undecided
// one (an engine still down) is kept unchanged and counted as failed.
//
// # Failure semantics
//
// A quarantine error answers 404 (no such message, or not yours), 409
// (busy under another operation, or a re-scan already running), 503 (no
// quarantine or no pipeline configured) or 500 (the store failed; logged).
// A message whose stored bytes fail their checksum is shown as such and
// never released, and can be deleted. A listing examines at most
// Config.MaxScan records and says so when it stopped there.
package admin
