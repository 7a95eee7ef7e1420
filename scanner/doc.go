// Package scanner scans mail with antivirus engines and combines their
// answers by a policy that survives an engine outage and a faulty
// signature update.
//
// # Engines
//
// An Engine scans one stream and returns clean, infected (with signature
// names) or an error; adapters live in scanner/clamd (clamd's INSTREAM),
// scanner/icap (RFC 3507 RESPMOD, how commercial engines plug in) and
// scanner/command (any command-line scanner). Errors come in two kinds,
// told apart with errors.Is: ErrContent and ErrSizeLimit mean the engine is
// up but could not judge these bytes (a corrupt attachment, a member larger
// than its limit); anything else means the engine is unavailable.
//
// Engines cannot vouch for what they did not read. An engine that knows
// the largest input it scans whole is a Limiter (clamd reads its limits
// from clamd.conf or Config.MaxSize; ICAP from Config.MaxSize; WithLimit
// gives any engine one), and every answer about more bytes is partial
// (ErrSizeLimit: symbol AV_PARTIAL, Config.OnError) whatever the engine
// said, because engines answer "clean" for what they skip; a detection in
// the part read still counts. An ICAP answer to the preview alone is
// partial too (the server never read the rest).
//
// # Multi-engine policy
//
// Multi asks its engines concurrently for every scan and combines the
// answers: AnyHit (one detection is enough) or Quorum (k of n engines must
// agree; fewer is an unconfirmed detection). An engine that is unavailable
// (error, timeout, open breaker) is replaced by the next spare of the backup
// tier. Each engine has a circuit breaker: consecutive outages open it, and
// after a cooldown one probe scan (half-open) closes or re-opens it. Content
// errors never trip it: one corrupt message must not take an engine out of
// service and build a backlog. When fewer engines answer than a clean
// verdict needs, Scan returns ErrAllDown.
//
// The faulty-update guard watches each engine's detection rate over a
// sliding window of its last scans. When the rate jumps above a multiple of
// the engine's baseline, its detections that no other engine shares are
// unconfirmed: they demand quarantine, not reject, and the jump is a metric
// (portcullis_scanner_suspect_total) and a log line. Quarantined mail can be
// re-scanned and released once the vendor fixes the update; rejected mail
// would be gone. Engines that agree vouch for each other, so an outbreak
// flagged by several engines is not doubted.
//
// Results are cached per engine by the SHA-256 of the bytes and the
// engine's signature version (Versioner: clamd's VERSION, ICAP's ISTag), in
// a bounded LRU with a TTL; a new signature version misses every older
// entry, and errors are never cached.
//
// # Sharing with a fleet
//
// Nodes of a fleet can share both (package fleet implements them on NATS
// JetStream KV). Options.SharedCache is a result cache shared by every
// node, keyed like the local one (CacheKey: content hash, engine name,
// signature version), so a message fanned out to many nodes is scanned
// once: it is asked after a miss of the local cache, fills the local
// cache on a hit, and is filled after every scan. Options.FleetRates
// carries the guard's counts per engine and signature version across the
// fleet: a detection is suspect when the engine's rate at its current
// version is above Guard.Multiple times its baseline, on the fleet's
// counts (at least Guard.MinScans of them) as on the node's own window,
// so a faulty signature version one node has seen flag too much is
// doubted (quarantine, not reject) on every node at its next detection.
// Both need the engine's signature version (Versioner); an engine
// without one is scanned and judged locally.
//
// The shared cache is an optimisation, never a reason to fail or pass
// mail: a Get or Put that fails or takes longer than SharedTimeout is a
// miss, the engines scan as without it, and it is not asked again for
// SharedRetry, so an outage costs one timeout, not one per scan. The
// outage is visible: portcullis_scanner_shared_cache_up (gauge),
// _shared_cache_errors_total (op), a log line when it fails and when it
// is back. A clean answer from the shared cache passes mail like a local
// one, so only gateways may write its bucket (NATS permissions).
// PurgeCache empties the local cache only.
//
// # The filter
//
// Filter is a filter.Filter. It scans the whole raw message and/or every
// leaf file the archive inspector unpacks (ArchiveLeaves), so a finding
// names where it is.
//
// Each byte reaches an engine once. With both targets and a walker that
// is a Coverer (ArchiveLeaves is), the Filter streams every leaf (each
// decoded attachment, each archive member, documents and unopenable
// containers whole), then the message with the attachment bodies those
// leaves stand for cut out: the headers, the inline text and HTML parts,
// encoded messages and the MIME structure, which no leaf holds. When the
// walk stops early (a limit, an error) or a leaf was larger than it hands
// out, the leaves covered less, and the whole message follows instead, for
// the engines to unpack what the walk could not. Not streamed in the normal case: an archive's own container
// bytes (its members are), so a signature on a whole zip file does not
// match; the archive inspector judges containers itself. A walker that is
// not a Coverer gets the old order, message then leaves. Measured
// (TestEachByteOnce): a message with a 100 KiB binary attachment streamed
// 242,874 bytes before, 102,746 now (2.36x less); a zip of 124 KB text,
// 125,018 and 124,350.
//
// The symbols:
//
//	AV_INFECTED        "clamd: Eicar-Test-Signature in invoice.zip/eicar.com"  reject (Config.OnInfected)
//	AV_<ENGINE>_INFECTED  the same detail, for every detection of that engine  nothing (EngineSymbol)
//	AV_UNCONFIRMED     a detection below the quorum                            quarantine (Config.OnDoubt)
//	AV_SUSPECT_ENGINE  a detection by an engine whose rate jumped              quarantine (Config.OnDoubt)
//	AV_FAIL            an engine could not scan a part                         quarantine (Config.OnError)
//	AV_PARTIAL         a part exceeded an engine's size limit                  quarantine (Config.OnError)
//	AV_FAIL            no engine available                                     tempfail, always
//	AV_ENGINE_DOWN     an engine was down while others answered                nothing (visible only)
//
// AV_<ENGINE>_INFECTED (EngineSymbol: AV_CLAMD_1_INFECTED for "clamd-1")
// names the engine in the symbol, so a quarantine query selects one
// engine's detections exactly, confirmed or doubted: the faulty-update
// recovery re-scans quarantine.Query{Symbol: scanner.EngineSymbol("clamd-1"),
// Since: T} once the vendor has fixed the signatures, and releases what is
// clean now. (A prefix query such as "AV_CLAMD_1_*" would also select
// "clamd-10"; use the exact name.)
//
// Failure semantics: no mail lost, no failure silent. An engine outage
// demands Tempfail (the sender keeps the mail) whatever failure mode the
// pipeline's policy gives the filter, so an outage never passes mail; the
// filter also stops at nine tenths of the caller's deadline and demands
// Tempfail itself, so engines too slow for the pipeline cannot pass mail
// through a fail-open policy either. An engine error on a part escalates to
// the stricter path, never to a pass.
//
// Metrics (filter.Metrics), labelled by engine: portcullis_scanner_scans_total
// (result), _detections_total, _errors_total (kind), _scan_seconds,
// _breaker_state (0 closed, 1 half-open, 2 open), _suspect (gauge, 1 while
// the guard doubts the engine), _suspect_total (doubted detections),
// _failovers_total, _cache_hits_total, _cache_misses_total,
// _shared_cache_hits_total, _shared_cache_misses_total,
// _shared_cache_errors_total (op), _shared_cache_up, _shared_cache_seconds
// (op), _fleet_suspect (gauge, 1 while the fleet's counts doubt the
// engine), and _all_down_total, _tempfail_total.
package scanner
