package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// NodeStatus is what one node reports to the fleet.
type NodeStatus struct {
	Node         string   `json:"node"`
	RulesVersion uint64   `json:"rules_version"`
	RulesDigest  string   `json:"rules_digest,omitempty"`
	Refused      *Refusal `json:"refused,omitempty"`
	Ready        bool     `json:"ready"`
	NotReady     string   `json:"not_ready,omitempty"`
	QueueDepth   int      `json:"queue_depth"`
	// Zones are the DNS list zones the node serves from memory.
	Zones   []ZoneStatus `json:"zones,omitempty"`
	Updated time.Time    `json:"updated"`
	// QueueHeld counts the held entries among QueueDepth; Engines is the
	// health of the node's AV engines (health.go).
	QueueHeld int            `json:"queue_held,omitempty"`
	Engines   []EngineHealth `json:"engines,omitempty"`
}

// ReporterConfig configures a Reporter.
type ReporterConfig struct {
	JetStream jetstream.JetStream
	Bucket    Bucket        // default StatusBucket
	Node      string        // required: the node's id, a valid KV key
	Interval  time.Duration // default 5 s
	// TTL of the status entries; default 6 intervals.
	TTL time.Duration
	// Status returns the node's status now (Node and Updated are set by
	// the Reporter).
	Status  func() NodeStatus
	Changed <-chan struct{} // optional: publish at once when signalled
	Logger  *slog.Logger
}

func statusKV(ctx context.Context, js jetstream.JetStream, b Bucket, ttl time.Duration) (jetstream.KeyValue, error) {
	name := b.Name
	if name == "" {
		name = StatusBucket
	}
	return bindKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: name, History: 1, TTL: ttl, Replicas: max(b.Replicas, 1),
		Description: "Portcullis node status", Storage: jetstream.MemoryStorage,
	})
}

// Report publishes the node's status until ctx ends; a failed publish is
// logged and retried at the next tick.
func Report(ctx context.Context, cfg ReporterConfig) error {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 6 * cfg.Interval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Node == "" || strings.ContainsAny(cfg.Node, " .*>") {
		return fmt.Errorf("fleet: node id %q: not a KV key (no spaces, dots, * or >)", cfg.Node)
	}
	var kv jetstream.KeyValue
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		if kv == nil {
			var err error
			if kv, err = statusKV(ctx, cfg.JetStream, cfg.Bucket, cfg.TTL); err != nil {
				log.Warn("fleet: status bucket", "err", err)
			}
		}
		if kv != nil {
			st := cfg.Status()
			st.Node, st.Updated = cfg.Node, time.Now().UTC()
			data, _ := json.Marshal(st)
			if _, err := kv.Put(ctx, cfg.Node, data); err != nil && ctx.Err() == nil {
				log.Warn("fleet: status not published", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-cfg.Changed:
		}
	}
}

// Statuses reads every node's status, sorted by node id.
func Statuses(ctx context.Context, js jetstream.JetStream, b Bucket) ([]NodeStatus, error) {
	var out []NodeStatus
	err := eachEntry(ctx, js, b, StatusBucket, func(e jetstream.KeyValueEntry) {
		var st NodeStatus
		if json.Unmarshal(e.Value(), &st) == nil {
			out = append(out, st)
		}
	})
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.Node, b.Node) })
	return out, err
}

// eachEntry calls f with the current entry of every key of the bucket
// (named def when b names none); a bucket not created yet has none, and
// a key gone between the listing and its read is passed over.
func eachEntry(ctx context.Context, js jetstream.JetStream, b Bucket, def string, f func(jetstream.KeyValueEntry)) error {
	name := b.Name
	if name == "" {
		name = def
	}
	kv, err := js.KeyValue(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	for k := range lister.Keys() {
		if e, err := kv.Get(ctx, k); err == nil {
			f(e)
		}
	}
	return nil
}
