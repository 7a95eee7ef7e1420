package fleet

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// View is the fleet at a glance, for "gateway fleet status" and the
// console's fleet page: the rule set published and every node's status.
type View struct {
	// Rules is the published rule set without its files (Version, Digest,
	// Published, Publisher); nil when none was published.
	Rules *RuleSet
	// Nodes are the statuses that have not expired, by node id.
	Nodes []NodeStatus
}

// ReadView reads the published rule set (from the rules bucket) and
// every node's status (from the status bucket); zero Buckets are the
// default ones.
func ReadView(ctx context.Context, js jetstream.JetStream, rules, status Bucket) (View, error) {
	var v View
	rs, err := Current(ctx, js, rules)
	switch {
	case err == nil:
		rs.Files = nil
		v.Rules = rs
	case !errors.Is(err, ErrNoSet):
		return v, err
	}
	v.Nodes, err = Statuses(ctx, js, status)
	return v, err
}

// Behind reports whether n serves an older rule set than the published
// one (a node catching up, or one that refused the newest version).
func (v View) Behind(n NodeStatus) bool {
	return v.Rules != nil && n.RulesVersion < v.Rules.Version
}
