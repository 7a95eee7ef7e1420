// Package fleet shares a gateway's state across many nodes on NATS
// JetStream: the rule set every node serves, and each node's status.
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
// # Fleet status
//
// Reporter publishes a NodeStatus (node id, rules version served,
// refused version and why, readiness, queue depth) to the KV bucket
// "portcullis-fleet" every interval and on every rules change. Entries
// expire with the bucket's TTL (a dead node vanishes after it). Statuses
// reads them all, for "gateway fleet status".
//
// A RuleSet value is bounded by the server's max_payload (1 MiB by
// default); Bundle refuses larger sets with ErrTooLarge, and a node
// refuses decoded names that are not local paths.
package fleet
