// Package smtpd is the go-smtp front-end: a smtp.Backend whose sessions
// drive one filter.Transaction per SMTP transaction and hand the verdict
// to a router (package router), which stores the message and decides the
// reply. An integrator who has a go-smtp server gets filtering by passing
// NewBackend's result to smtp.NewServer (or NewServer, which also sets
// the limits and deadlines this package recommends).
//
// # Stages
//
// go-smtp creates a session when the client greets (EHLO or HELO), so the
// connect and HELO stages both run in NewSession; a refusal there is the
// reply to EHLO. MAIL FROM, each RCPT TO and DATA run their own stages; a
// refused recipient is refused alone. After DATA the router's reply is the
// reply to the final dot. RSET, a second EHLO and the end of DATA reset the
// transaction (the connect and HELO evidence is kept); STARTTLS begins a new
// transaction, since what was said before it is discarded (RFC 3207 §4.2).
//
// # Replies and failure semantics
//
// SMTPError converts a filter.Reply into the *smtp.SMTPError go-smtp writes.
// Every error the session returns is one: go-smtp turns any other error
// into a permanent 554 at DATA, which would bounce mail during an engine
// outage. A spool or transaction error is mapped by filter.ErrorReply (a
// 4xx unless the error says otherwise; a message over the size limit is
// 552 5.3.4). A 250 after DATA is sent only when the router returned it,
// that is once the message is durable. A client that disconnects before the
// final dot leaves nothing behind: the spooled part is removed.
//
// # Limits
//
// NewServer sets a maximum message size, a recipient limit and read and
// write deadlines on every command; LimitListener caps connections in
// total and per client IP, answering 421 4.7.0 to the excess before any
// session begins. Config.MaxMessagesPerSession bounds the transactions
// of one connection.
//
// # Reading DATA
//
// go-smtp's DATA reader takes the stream one byte at a time. On a plain
// connection accepted through LimitListener, on a server made by
// NewServer, a session reads the message in bulk from the connection's
// own buffer instead, with go-smtp's dot-unstuffing, end-of-data, size
// limit (552 5.3.4) and line limit (554 5.6.0, then the connection
// closes) byte for byte, and hands the end of DATA back to go-smtp, which
// reads the next command from the bytes after it. Under TLS, for BDAT and
// for a client that sends message bytes before the 354, go-smtp's reader
// is used. portcullis_smtpd_data_total{reader="bulk"|"go-smtp"} counts
// which read each message.
//
// Metrics: portcullis_smtpd_sessions_total, portcullis_smtpd_sessions
// (gauge), portcullis_smtpd_replies_total{stage,class} for every refusal
// and DATA reply, portcullis_smtpd_connections_refused_total{reason}.
package smtpd
