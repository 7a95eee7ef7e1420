// Package quarantine holds the messages a verdict sent to quarantine and
// gives them back: Hold, List, Get, Release, Delete, Expire, a bulk
// Rescan, and a per-recipient Digest.
//
// A verdict of quarantine goes to a Manager (Hold returns when the message
// is durable, so the gateway answers 250 after it, and a 4xx when it
// fails: never a silent drop). Operators List held mail by symbol, time,
// sender and recipient (a Query), Get it, Release it into the queue as it
// is, or Delete it; Expire enforces the retention (30 days by default) and
// never removes a message under an operation. Rescan is the answer to a
// faulty AV update: it re-runs a pipeline over the messages an engine held
// (say every message with an AV_* symbol since 04:00), releases those now
// clean and keeps the rest with their new verdict. It is rate-limited so
// live mail keeps flowing, and resumable: a release is recorded before the
// message is queued, so an interrupted run started again with the same
// name neither loses a message nor delivers one twice beyond the
// at-least-once contract. Digest gives, per recipient, what is held for
// them, for quarantine reports.
//
// # Failure semantics
//
// A release queues the message (into any queue.Enqueuer: the local
// *queue.Queue or the shared JetStream queue) before its record is
// removed, so a crash in between delivers it twice at worst, never zero
// times; a release into a busy queue waits, it does not give up. A message
// whose stored bytes fail their SHA-256 is reported (ErrCorrupt) and kept,
// never released.
//
// # Stores
//
// A Store keeps the records (Held) and the raw messages. Dir is the local
// one, with the queue spool's discipline (write, fsync, rename, fsync the
// directory, then acknowledge; a record that does not decode is moved
// aside, never deleted). The JetStream store (queue/jetstream) serves
// gateways on several machines. Both pass one conformance suite,
// quarantine/quarantinetest. Operations in progress are tracked per
// process, so run bulk operations (Rescan, Expire) from one process at a
// time.
//
// # Metrics
//
// Through filter.Metrics: portcullis_quarantine_held_total{action},
// _released_total{by}, _rescanned_total{result}, _expired_total,
// _deleted_total, _corrupt_total (counters) and portcullis_quarantine_size
// (gauge).
package quarantine
