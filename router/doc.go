// Package router carries out a verdict: it is the one place where a
// message the pipeline judged goes to the queue, to the quarantine, or
// nowhere, and where the SMTP reply for it is decided. Both front-ends
// (package smtpd for go-smtp, the milter adapter) call it after DATA.
//
// # What each action does
//
//   - Accept and AddHeader: the message is enqueued (Queue.Enqueue) with
//     every inbound copy of the headers Portcullis writes
//     (filter.OwnHeaders) removed, so a sender cannot forge
//     "X-Spam-Status: No". AddHeader prepends the verdict headers;
//     Accept prepends them too when Config.HeadersOnAccept is set. The
//     reply is 250 "queued as ID".
//   - Quarantine: the message is held (Holder.Hold); the reply is 250
//     "Message held for inspection".
//   - Discard: counted and logged; with Config.KeepDiscarded the message
//     is held as well. The reply is 250: the sender must not learn that a
//     message was dropped.
//   - Tempfail: 451; the sender keeps the message. Reject: 550 (554 at
//     connect). Nothing is stored.
//
// # Failure semantics
//
// RFC 5321 §6.1: a server that answers 250 must not lose the message. Route
// returns a 250 only after the store it chose has returned without error,
// that is after the message is durable (both stores fsync before they
// return). When the store fails (a busy or full queue, a disk error, a
// closed store, a cancelled context) the reply is filter.ErrorReply of the
// error: a 4xx for anything temporary or unknown, so the sender keeps the
// mail and nothing is acknowledged. The same holds for a discarded message
// that Config.KeepDiscarded says to keep. An action the router does not
// know, and a transaction without a message, answer 451: never a silent
// drop.
//
// Route writes one log line per message (the transaction's ID, action,
// where it went, the reply, the duration) and counts
// portcullis_router_messages_total{action,outcome} (outcome is queued,
// held, discarded, refused or failed) and portcullis_router_seconds.
package router
