// Package queue is Portcullis's durable mail queue: it accepts a message
// only once it is on disk, delivers it through a Deliverer with retries,
// bounces what cannot be delivered, applies backpressure before resources
// run out, and never loses a message it acknowledged.
//
// # Contract
//
// RFC 5321 §6.1: once a server answers 250 to DATA it must not lose the
// message "because the host later crashes or because of a predictable
// resource shortage". Queue.Enqueue returns only when the message is
// durable; a gateway answers 250 after it returns nil, and answers
// filter.ErrorReply(err) otherwise (the queue's errors implement
// filter.Replier: a 4xx for anything temporary, so the sender keeps the
// mail). Delivery is
// at-least-once: a crash between a next hop's 250 and the queue recording
// it delivers the message again. Duplicates are tolerable, losses are not.
//
// # Stores
//
// A Store keeps entries (metadata) and bodies. The local spool (OpenSpool,
// used by Open) is the embedded default; other backends implement the
// same interface and pass the same conformance suite, queue/queuetest.
//
// The spool follows the Postfix discipline adapted to group commit. Records
// are appended to segment files (spool/seg-N.log): a put (metadata and
// body), a metadata update, or a removal, each framed with a header
// checksum and a payload checksum (CRC-32C). One writer goroutine takes
// every record waiting, writes them with one write, fsyncs once and only
// then acknowledges each caller, so concurrent enqueues share an fsync.
// Delivery bookkeeping is the one exception (WrittenUpdater): the
// in-flight mark before an attempt and a deferral after it are
// acknowledged once written, and fsynced with the next batch, when their
// segment is retired or closed, or after DefaultWrittenSyncDelay of quiet.
// Those records exist so that a message that kills the process is counted
// (the poison guard), and the kernel keeps them through a process death;
// a machine crash can lose the last of them, which costs an early retry,
// never a message. Puts, removals
// and holds are durable before they are acknowledged.
// A new segment is created and the directory fsynced before any record in
// it is acknowledged; segments are append-only and a record is complete
// only when its checksum verifies, so a half-written entry is never
// delivered. On a write or fsync error every caller in the batch gets the
// error and the segment is abandoned: a failed fsync leaves the page cache
// in an unknown state, so the spool never writes to that file again and
// never retries the fsync. A segment is deleted once nothing in it and
// before it lives; when a long-retrying message pins old segments, its
// record is copied forward so disk use stays bounded. An flock keeps a
// second process off a spool.
//
// Recovery replays the segments in order. A record whose checksum fails, a
// record that cannot be decoded and a file that does not belong in the
// spool directory are moved to corrupt/ with a log line and the
// portcullis_queue_corrupt_total metric, never deleted and never blocking
// the others: a torn tail (a crash mid-write) is copied there and cut off;
// a segment damaged before its end has every live entry rewritten to a
// fresh segment and is then moved there whole. A body that fails its
// checksum at delivery time is moved aside the same way. The spool
// directory is also swept for foreign files while running.
//
// # Delivery
//
// Workers (Config.Workers) call the Deliverer for due entries. The attempt
// is recorded (Attempts+1, Inflight) before the Deliverer runs, so an
// attempt cut short by a process death is known after restart (written,
// not yet fsynced, on a WrittenUpdater store: see Stores). Each
// recipient's error is classified (Classify): 5xx replies are Permanent;
// 4xx replies, timeouts, connection errors and anything unrecognised are
// Temporary and retried with exponential backoff and jitter (RetryBase,
// RetryMax). Permanent failures and recipients still pending after
// MaxLifetime bounce: a DSN (RFC 3464 multipart/report, with the remote
// reply quoted and the original header returned) is queued to the envelope
// sender, never to the null sender (RFC 5321 §4.5.5). With BouncePolicy
// Hold the message is kept as a held dead letter instead.
//
// The poison guard: an attempt that panics in the Deliverer, or that was
// in flight when the process died, counts a crash; after MaxCrashes the
// entry is Held and never attempted again until Release.
//
// One attempt is an Attempter's Attempt: the Queue's scheduler calls it
// for due entries, and a backend that schedules attempts itself
// (queue/jetstream claims them from a shared work queue) calls it once per
// claimed entry, so both have the same semantics. Each attempt logs one
// result line, "queue: delivery attempt", with the message id, attempt
// number, recipients, result, next hop, its reply and the duration; the
// enqueue, bounce and hold lines carry the same id.
//
// The SMTP/LMTP client that delivers to next hops is package relay (a
// Deliverer); any other Deliverer works the same. A delivery error that
// carries a next hop's reply implements RemoteError, which is how the
// queue tells a 5xx (bounce, quoted in the DSN) from everything else
// (retry) without knowing the protocol.
//
// # Operators
//
// Entries lists the queue, Entry shows one. Retry makes an entry due now
// (a held one is released, as Release does); Bounce gives up on an
// entry's pending recipients at once: the DSN is queued durably first,
// then the entry is removed, so a crash in between sends the news twice,
// never not at all. Both refuse an entry an attempt holds (ErrInFlight)
// and are logged.
//
// # Backpressure
//
// Enqueue returns a *BusyError (errors.Is ErrBusy) when the queue holds
// MaxDepth entries, when its oldest entry is older than MaxAge, or when the
// store's file system has less than MinFreeBytes free (statfs). Its Reply
// is 451 4.3.2 or, for disk space, 452 4.3.1.
//
// # Quarantine
//
// Held entries here are the queue's own (poison messages, dead letters).
// Mail a verdict sends to quarantine goes to package quarantine, which
// releases into any Enqueuer.
//
// # Metrics
//
// Through filter.Metrics: portcullis_queue_depth and
// portcullis_queue_oldest_seconds (gauges); portcullis_queue_enqueued_total,
// _delivered_total, _retries_total, _bounces_total{dsn}, _held_total{reason},
// _panics_total, _busy_total{reason}, _corrupt_total{reason},
// _write_errors_total, _enqueue_errors_total (counters);
// portcullis_queue_fsync_seconds and _attempt_seconds (observations).
// The relay adds portcullis_queue_fallback_total and
// portcullis_queue_smtp_seconds{host,outcome}.
package queue
