// Package milterd puts Portcullis inside an MTA that speaks the Sendmail
// milter protocol (Postfix's smtpd_milters and non_smtpd_milters,
// Sendmail's INPUT_MAIL_FILTER): a server whose sessions drive one
// filter.Transaction per message.
//
// # What the MTA sends, what the transaction is told
//
// Each MTA connection is one session, and one SMTP connection on the MTA's
// side. Connect begins the transaction with the client's address (and the
// MTA's verified client name as Envelope.Hostname) and runs the connect
// stage; HELO, MAIL FROM and each RCPT TO run their stages. The header
// fields (as received, "Name: value" with CRLF line ends), the blank line
// and the body chunks are streamed through a pipe into Transaction.Data,
// which spools them with the pipeline's size limit: the session never holds
// more than one packet of a message. Abort (RSET, a dropped client) and a
// second MAIL FROM reset the transaction; connect and HELO evidence stay.
// The MTA's {auth_authen} macro (Postfix sends it with MAIL) and
// {tls_version} (with HELO) become the transaction's AuthUser and TLS at
// MAIL (filter.Transaction.SetAuth, SetTLS): the filters of MAIL, RCPT
// and DATA and the quarantined record see who authenticated and whether
// the client used TLS; connect and HELO filters do not.
//
// # What the verdict becomes
//
//   - reject and tempfail answer with the verdict's reply (code, enhanced
//     code, text) at the earliest stage that decides: connect, HELO, MAIL,
//     one RCPT (that recipient alone), a body chunk (552 5.3.4 when the
//     message exceeds the size limit) or the end of the message;
//   - discard answers discard (from MAIL on: the protocol has none at
//     connect);
//   - accept and add-header answer accept after editing headers: the
//     inbound copies of the headers Portcullis writes (X-Spam-Status,
//     X-Portcullis-Verdict) are deleted (SMFIR_CHGHEADER with an empty
//     value, per-name 1-based index, last occurrence first) so a sender
//     cannot forge "X-Spam-Status: No", then the verdict's headers are
//     inserted at the top in their order (SMFIR_INSHEADER). Accept adds the
//     headers only with Config.HeadersOnAccept; the forged copies go
//     always;
//   - quarantine goes where Config.Quarantine says. PostfixHold (the
//     default) edits the headers and answers the quarantine action: the MTA
//     keeps the message in its hold queue, where the operator releases it
//     with the MTA's tools (postsuper -H). Store holds the message in the
//     Portcullis quarantine (Config.Hold, durable before it returns) and
//     then answers discard; the quarantine's console, re-scan and release
//     (through the configured relay) work on it. The trade-off: PostfixHold
//     needs no store and the message never leaves the MTA, but Portcullis
//     cannot list, re-scan or release it; Store gives the whole quarantine
//     workflow at the cost of a store and a relay route back into the mail
//     flow.
//
// # Failure semantics
//
// No failure lets a message pass unfiltered:
//
//   - a pipeline or Config.Ready that is not ready answers 451 4.3.2 at
//     connect and MAIL; a failing filter follows the pipeline's policy
//     (tempfail by default); a failed hold in Store mode answers the
//     ErrorReply of its error (4xx; 451 4.4.2 after Config.HoldTimeout),
//     so the MTA keeps the message;
//   - any error in the session itself (a packet longer than
//     Config.MaxPacket, checked before anything is allocated; a truncated
//     packet; a command out of order or unknown; no packet within
//     Config.ReadTimeout; a panic) closes the connection: the MTA then
//     applies its milter_default_action. Configure Postfix with
//     milter_default_action = tempfail (its default is tempfail too, but
//     distributions and guides often set accept): a dead or misbehaving
//     milter then delays mail, never passes it;
//   - only the actions the milter uses are negotiated (add and change
//     headers, quarantine in PostfixHold mode); an MTA that does not allow
//     them is refused at negotiation. No event is skipped, not even DATA:
//     Postfix sends a skipped event's macros anyway, and that lone packet
//     (it has no reply) holds the next command back for a delayed ACK,
//     40 ms per message.
//
// Responses carry replies made safe for the wire by Response: printable
// ASCII on one line, '%' doubled as the MTA expects, an enhanced code of
// the reply's class.
//
// # Postfix
//
//	smtpd_milters = inet:127.0.0.1:11332
//	non_smtpd_milters = $smtpd_milters
//	milter_default_action = tempfail
//
// Logs carry the transaction ID (filter.LogMessageID) and Postfix's queue ID
// (queue_id, the "i" macro) so a message's story can be followed across
// both logs. Metrics: portcullis_milter_connections,
// portcullis_milter_messages_total{action},
// portcullis_milter_refused_total{stage,reason} (a refusal before the end
// of the message: reject, tempfail, not_ready, max_connections),
// portcullis_milter_protocol_errors_total{reason},
// portcullis_milter_panics_total, portcullis_milter_eom_seconds.
//
// The protocol vocabulary (command and action codes, option masks, the
// Response type) is github.com/emersion/go-milter's; the session loop is
// this package's own, because go-milter's server has no read deadlines,
// answers a refused recipient by starting a new session backend (losing
// the transaction), and negotiates protocol version 2 only.
package milterd
