// Package filter is the vocabulary every Portcullis package speaks: the
// Envelope and Message under inspection, the Filter interface, the Symbol
// as the unit of evidence, the Policy that turns evidence into an Action,
// the Verdict with its SMTP reply, and the Pipeline that runs filters stage
// by stage. It imports no other package of the project.
//
// # Messages
//
// A Message holds the envelope and the raw message behind an io.ReaderAt,
// so a large message can stay in a file. Its header and MIME tree are parsed
// once, on first use, by one scan over the raw bytes with a stack of open
// boundaries, and then shared by every filter. Header blocks are parsed
// with go-message; bodies are decoded on demand (Part.Open, Part.Text) with
// the leniency of mail clients: a stray character in base64 does not hide
// the rest of an attachment, an unknown charset reads as bytes.
//
// # Defects
//
// Malformations are not errors: the parser tolerates them, reads the part
// the way the most lenient client would, and records a typed Defect (kind,
// part, detail) that Message.Defects returns for a filter to judge (the
// archive inspector turns them into MIME_* symbols). Where two readings
// are possible the parser keeps both: delimiters of every boundary
// parameter are honoured, a missing boundary is guessed from the first
// "--" line, a part with two Content-Type fields takes the one that can
// hide most (a multipart over a file over text) and the names of all, two
// transfer encodings are both offered (Part.Encodings, Part.OpenAs), an
// unknown encoding reads raw and as base64. A malformed header line is
// skipped and the header goes on, so no field behind it goes unread; bare
// CRs end lines. Defects are bounded (100 per message).
//
// Part walking reports every candidate file name (Content-Type name,
// Content-Disposition filename, RFC 2047 and RFC 2231 forms, duplicates and
// malformed parameters that mime.ParseMediaType refuses), and counts
// "inline; name=x.exe" as an attachment. message/rfc822 parts are descended.
//
// Limits (message bytes, header bytes per part, MIME depth, part count,
// decoded bytes) are enforced while parsing, never after: a message nested
// 10,000 deep stops at depth 32 having read a few kilobytes. A parse that
// hits a limit keeps what it parsed, reports a *LimitError (errors.Is
// ErrLimit), and a Pipeline adds its MIME_LIMIT_* symbol and quarantines by
// default (Policy.OnLimit).
//
// # Transactions
//
// A front-end (an SMTP server session, a milter conversation) drives one
// Transaction per SMTP transaction: Pipeline.Begin with the connection's
// facts, then Connect, Helo, Mail, one Rcpt per recipient and Data with
// the DATA stream. Each call runs only its stage's filters, once, and
// returns the verdict on the evidence of every stage so far; a tempfail,
// reject or discard ends the transaction early, and a refused recipient is
// refused alone. Filters learn the stage and the new recipient from the
// context (StageOf, RecipientOf), so Filter stays two methods. Reset starts
// the next transaction on the connection, keeping the connect and HELO
// evidence; every transaction has its own ID (Verdict.MessageID, the
// "msgid" of the log lines). Pipeline.Check and CheckAll remain for one-shot
// use over a message already in hand (a scan, a re-scan).
//
// Data spools the stream with NewSpool: in memory up to a threshold, in an
// unlinked temporary file above it, released on Close, on error and on a
// panic, and the size limit is enforced while reading (a *LimitError, 552
// 5.3.4), so no integrator spools DATA by hand. A SpoolBudget shared by a
// gateway's spools keeps larger messages in memory too while the budget
// lasts (the file costs a write and a read back for every filter that
// reads the message); memory stays bounded by the budget plus the
// threshold per message in flight.
//
// WithHeaders applies a verdict: it streams the message with the verdict's
// ordered Headers prepended and every inbound copy of the gateway's own
// fields (OwnHeaders: X-Spam-Status, X-Portcullis-Verdict) removed, in any
// case, with space before the colon and with their folded continuation
// lines, so a sender cannot forge "X-Spam-Status: No". The other fields
// keep their order and the body is passed through byte for byte.
//
// # Failure semantics
//
// No failure is silent. A filter's error or timeout becomes a NAME_FAIL
// symbol, a counter and a log line, and its FailMode decides the action:
// tempfail (the default: the sender keeps the mail), fail-open (the symbol
// and its score only) or quarantine. A panic becomes NAME_PANIC and a
// tempfail, never a crash and never a pass. A filter that is not Ready makes
// its stage answer tempfail. Every per-filter deadline holds even when the
// filter ignores its context.
//
// # Replies
//
// Reply is the one SMTP reply shape of the project. Actions become replies
// in ReplyFor and errors in ErrorReply: an error that knows its reply
// implements Replier (a *LimitError for the message size is 552 5.3.4),
// a deadline is 451 4.4.2, and anything unclassified is 451 4.3.0, never a
// 5xx. The text is generic and one printable line; details go to the log.
// Quarantine answers 250 "Message held for inspection", to be sent only
// once the hold is durable.
//
// # Settings
//
// A zero setting means its documented default: the zero Policy adds a
// header at 5 points and rejects at 15 (DefaultPolicy), and an Action
// setting that must be able to say "unset" is an ActionSetting, whose zero
// value is unset and distinct from Set(Accept).
//
// # Composition
//
// A Filter has two methods; the stages it runs at (Stager) and its
// readiness (Readier) are optional interfaces found by type assertion, and
// Func adapts a function. Filters report evidence; the Policy decides, so
// the same symbols can mean add-header at one site and reject at another.
// Metrics and logging are injected (Metrics, *slog.Logger); nil discards.
package filter
