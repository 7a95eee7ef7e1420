// Package jetstream is the queue on NATS JetStream, for gateways on more
// than one machine: a queue.Store (Store), a queue shared by several
// gateway processes (Queue) and a quarantine.Store (QuarantineStore). The
// Store and the QuarantineStore pass the same conformance suites as the
// local spool and the quarantine directory (queue/queuetest,
// quarantine/quarantinetest).
//
// # Layout
//
// For a queue called Name (Config.Name; every process that shares the
// queue uses the same one):
//
//   - Name_entries (key-value bucket): one record per entry, key = ID.
//     A record is versioned, CRC-32C checked, and carries the body's
//     size, chunking and SHA-256.
//   - Name_BODIES (stream, subjects Name.body.ID.N): bodies in chunks of
//     Config.ChunkBytes (256 KiB), so a message of any size up to
//     Config.MaxMessageBytes fits under the server's max_payload.
//   - Name_WORK (work-queue stream, subjects Name.work.ID, at most one
//     message per ID) and its durable pull consumer "delivery": the claim
//     on a message's next attempt.
//   - Name_quarantine (bucket) and Name_QBODIES (stream): the quarantine.
//   - Name_corrupt, Name_quarantine_corrupt (buckets): records that failed
//     to decode, moved aside with a log line and a metric, never deleted.
//
// A Put publishes the chunks, then creates the record; a Remove purges the
// record, then the chunks: a record is never found without its body. A
// body is checked against its SHA-256 when read; one that fails is moved
// aside (queue.ErrCorrupt).
//
// # Shared delivery
//
// Every gateway runs a Queue over the same Name. Enqueue stores the
// message and publishes its work message; each process fetches work
// messages from the one consumer as its delivery slots free up (explicit
// acknowledgment), so a message is attempted by one process at a time.
// While an attempt runs the claim is renewed every AckWait/3; a process
// that dies mid-delivery stops renewing and JetStream hands the message to
// another process after AckWait. The entry still says the attempt was in
// flight, so the next process counts a crash (the poison guard holds a
// message after MaxCrashes) and delivers it: twice at worst, never zero
// times. A temporary failure is a negative acknowledgment with the retry
// delay (exponential backoff with jitter, queue.Config.RetryBase and
// RetryMax); a message handed out MaxDeliver times is held, never dropped.
// Each claimed message gets one queue.Attempter attempt, the same code
// the local queue runs, so retries, bounces (DSNs queued back into the
// shared queue), the maximum lifetime and the poison guard are exactly
// the local queue's. Entries
// without a work message (a process died between the two publishes) are
// scheduled again by a sweep at start and every SweepInterval.
//
// # Operating on the shared queue
//
// Every Queue keeps a view of all the shared entries, whichever process
// enqueued them: a watcher on Name_entries applies each change as it is
// stored, so Entries, Len and Stats answer from memory, as the local
// queue's do (one decoded entry per message waiting; MaxDepth bounds
// them), and Sync waits for the view to catch up with the bucket. While
// NATS is unreachable the view is what was last seen; the watcher starts
// again, rebuilding the view, when it stops and when the connection comes
// back. Entry, Retry and Bounce read and change the store
// itself: Retry makes an entry due now (replacing its work message, which
// may be waiting out a backoff; a held entry is released), Bounce queues
// the operator's DSN in the shared queue and removes the entry
// (queue.BounceEntry), both refuse an entry with an attempt in flight
// (queue.ErrInFlight) and fail a revision check rather than overwrite a
// change another process made meanwhile. *Queue satisfies admin.Queue,
// so the admin API and `gateway queue` work on the shared queue too.
//
// # Durability: what an acknowledgment means
//
// Every change returns after JetStream acknowledged it: the server (with
// Replicas > 1, a quorum of servers) has written it to its file store.
// Written is not synced: by default nats-server fsyncs its file store
// every two minutes (sync_interval), so an acknowledged message survives
// the crash of the nats-server process but can be lost when the machine
// loses power or the kernel panics within that window. With three
// replicas on three machines, a loss needs a quorum of them to fail at
// once.
//
// The no-loss promise of a gateway that answers 250 after Enqueue needs
// every write synced before its acknowledgment. Configure the server so:
//
//	jetstream {
//	    store_dir: "/var/lib/nats"
//	    sync_interval: always
//	}
//
// (server.Options.SyncAlways = true in an embedded server.) Every test
// and benchmark of this package runs with it (internal/testsvc); the
// benchmark in docs/BENCHMARKS.md measures its cost. With replicas, sync
// always on each of them is what makes a machine's power loss harmless
// even when the others fail too.
//
// # Failure semantics
//
// A request that fails or times out (Config.Timeout when ctx has none)
// returns an error, and Enqueue with it: the gateway answers 4xx
// (filter.ErrorReply) and the sender keeps the mail. A change that returned an
// error may still have happened (at least once): an enqueue the sender
// retries may be delivered twice. A lost server in a cluster of three is
// a pause (leader election) for the streams it led, not a loss.
//
// Metrics (filter.Metrics): the queue's (portcullis_queue_*), plus
// portcullis_jetstream_consumer_lag (work messages not yet handed out),
// portcullis_jetstream_consumer_ack_pending (in delivery) and
// portcullis_jetstream_put_seconds.
package jetstream
