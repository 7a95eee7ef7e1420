// Package fleet shares a gateway's state across many nodes on NATS
// JetStream: the rule set every node serves, the DNS list zones it
// answers from memory, each node's status, AV results and the AV
// guard's detection counts.
//
// # Rule sets
//
// A RuleSet is a bundle of rule files (and the corpus samples their
// corpus: sections name), content-addressed by a SHA-256 digest.
// Publish writes it as one value of a JetStream KV bucket (default
// "portcullis-rules", key "ruleset"); the KV revision is the set's
// Version, monotonic across the fleet. A publisher (rulecheck publish)
// runs the regression gate before publishing; Publish itself does not,
// so that every node's own gate is the last word.
//
// Rules is a filter.Filter (a rules.Engine underneath) that watches the
// key. Each new revision is written to a private directory, compiled and
// gated by the engine on the set's own corpus (rules.Engine.Install), and
// swapped in atomically. A revision that does not decode, compile or pass
// the gate is refused: the old set keeps serving, the refusal is logged,
// counted (portcullis_fleet_rules_refused_total) and kept (Refused) for
// the fleet status, which says why.
//
// Readiness: Rules is Ready only once it serves a set and has handled the
// newest revision it has seen (installed or refused it). A node that has
// not yet loaded the fleet's current version (a new node, one catching
// up) is not ready, so the gateway answers 451 and /readyz 503 rather
// than filter with no rules or old rules. A refused revision does not
// make a serving node unready: a broken publish must not take the fleet
// down; it is visible in the status instead. A node that never loaded
// any set stays not ready.
//
// While NATS is unreachable the node keeps serving its current set; the
// watch resumes when the connection returns, and the revision it missed
// arrives as the key's current value.
//
// # DNS list zones
//
// A zone (rbldnsd ip4set text, package zone) is published in two parts:
// its data as an object of the JetStream object store "portcullis-zones",
// which chunks it (128 KiB a message) so that a zone of millions of
// entries fits under any max_payload, and then a manifest (ZoneInfo:
// object name, size, SHA-256, publisher) as the value of the zone's name
// in the KV bucket "portcullis-zones", whose revision is the zone's
// Version, monotonic across the fleet. The KV holds the version for the
// same reasons as for rule sets (one watch, revisions, history); the
// object store holds the data because a KV value cannot exceed
// max_payload and chunking it by hand would re-invent the object store.
// Each publication is a new object, so a node still reading the previous
// version is not cut short; PublishZone keeps the current and previous
// objects and deletes older ones. PublishZone bounds the data (MaxBytes,
// default 256 MiB: *ZoneLimitError, ErrZoneTooLarge) and does not parse
// it; rulecheck publish-zone parses it first, like the rules gate.
//
// Zones watches the manifests of the zones a node serves. A new version
// is fetched, checked (size and digest against the manifest, the node's
// own MaxBytes and zone.Limits) and parsed in full, then swapped in with
// an atomic pointer: a lookup sees the old zone or the new one, never a
// mix. A version that does not decode, parse, fit or match its digest is
// refused: the old version keeps serving, the refusal is logged, counted
// (portcullis_fleet_zone_refused_total{zone}) and reported in the node's
// status. A version that cannot be fetched (NATS down, object gone) is
// retried every ZonesConfig.Retry and is not a refusal. Besides the
// watch, each zone's manifest is read every ZonesConfig.Resync (5 s), so
// a node whose watch died with a NATS server converges without waiting
// for nats.go to notice the lost consumer.
//
// A Zone is an rbl.Local: rbl asks it first and falls back to DNS for
// what it does not cover (no version loaded yet, IPv6). Readiness is the
// rules': a Zone is ready once it serves a version and has handled the
// newest one it has seen; with rbl.List.RequireLocal a node is not ready
// (451 to mail, 503 on /readyz) until it has loaded its zones, and a
// refused version does not make a serving node unready.
//
// # Fleet status
//
// Reporter publishes a NodeStatus (node id, rules version served,
// refused version and why, readiness, queue depth and held entries, AV
// engine health, the zones served and their versions) to the KV bucket
// "portcullis-fleet" every interval and on every rules change. Entries
// expire with the bucket's TTL (a dead node vanishes after it). Statuses
// reads them all; ReadView adds the published set, for "gateway fleet
// status" and the console's fleet page (View.Behind: a node serving an
// older version than published).
//
// # Shared AV results
//
// AVCache is a scanner.SharedCache (scanner.Options.SharedCache) on the
// KV bucket "portcullis-av-cache": one key per engine, signature version
// and content hash, so a message fanned out to many nodes is scanned
// once. The key names the version, so once an engine reports a new
// version the old entries are never read again; they expire with the
// bucket's TTL (default 1 h), and a full bucket (default 64 MiB, memory
// storage) drops its oldest entries first. Values are small and bounded
// (MaxAVValueBytes, MaxAVSignatures); one that does not decode, or that
// names another engine or version than its key, is refused (ErrValue).
// Forget drops one version's entries fleet-wide. Cost: a hit is one KV
// get (about 80 µs on loopback, a 3-node cluster), a miss a get and,
// after the scan, a put; a node's own LRU is asked first, so a repeated
// attachment costs a node one get at most.
//
// The cache is an optimisation, never a reason to fail or pass mail:
// while NATS is unreachable every call fails, the scanner counts and
// logs it (portcullis_scanner_shared_cache_up 0) and scans locally. A
// clean entry passes mail, so the bucket must be writable by gateways
// only (NATS permissions).
//
// # Fleet-wide faulty-update guard
//
// AVGuard is a scanner.FleetRates (scanner.Options.FleetRates): each
// node counts its scans and detections per engine and signature version
// in memory, publishes them under its node id in the KV bucket
// "portcullis-av-rates" every interval (default 1 s) when they changed,
// and watches everyone else's. The scanner's guard then judges a
// detection on the fleet's counts for that version as well as on the
// node's own window: a faulty signature version that flooded one node
// with detections of clean mail is suspect on every node at its next
// detection, which demands quarantine instead of reject. A node's counts
// stop counting TTL (default 30 s) after its last publish; while NATS is
// unreachable a node judges on its own counts and the others' last ones
// until they age out, and the local guard works throughout. Published
// values are bounded (MaxRateEntries, MaxRatesBytes) and checked
// (ErrValue: counted, logged, ignored).
//
// A RuleSet value is bounded by the server's max_payload (1 MiB by
// default); Bundle refuses larger sets with ErrTooLarge, and a node
// refuses decoded names that are not local paths.
package fleet
