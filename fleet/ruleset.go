package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"
)

// Errors of package fleet.
var (
	ErrTooLarge = errors.New("fleet: rule set too large")
	ErrPath     = errors.New("fleet: file name is not a local path")
	ErrNoSet    = errors.New("fleet: no rule set published")
	ErrDecode   = errors.New("fleet: rule set does not decode")
	ErrNotReady = errors.New("fleet: rules not ready")
)

// Defaults of the KV buckets and the key.
const (
	RulesBucket  = "portcullis-rules"
	StatusBucket = "portcullis-fleet"
	rulesKey     = "ruleset"
	// MaxSetBytes bounds an encoded RuleSet: NATS's default max_payload.
	MaxSetBytes = 1 << 20
)

// File is one file of a RuleSet, named by a slash-separated local path.
type File struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// RuleSet is a versioned bundle of rule files and their corpus.
type RuleSet struct {
	// Version is the KV revision the set was read at (0 before Publish).
	Version uint64 `json:"-"`
	// Rules are the names, among Files, of the rule files in load order.
	Rules     []string  `json:"rules"`
	Files     []File    `json:"files"`
	Digest    string    `json:"digest"`
	Published time.Time `json:"published"`
	Publisher string    `json:"publisher,omitempty"`
}

// PathError is a file name a RuleSet may not carry.
type PathError struct{ Name string }

func (e *PathError) Error() string { return fmt.Sprintf("fleet: %q is not a local path", e.Name) }
func (e *PathError) Unwrap() error { return ErrPath }

// Bundle reads rule files and the corpus samples their corpus: sections
// name (relative to each file) into a RuleSet. Rule file i is stored as
// "<i>/<base name>" and its samples beside it, so that the relative
// paths still resolve on the nodes.
func Bundle(files ...string) (*RuleSet, error) {
	rs := &RuleSet{}
	total := 0
	add := func(name string, data []byte) error {
		total += len(data) + len(name)
		if total > MaxSetBytes {
			return fmt.Errorf("%w: more than %d bytes at %s", ErrTooLarge, MaxSetBytes, name)
		}
		rs.Files = append(rs.Files, File{Name: name, Data: data})
		return nil
	}
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
		dir := strconv.Itoa(i)
		name := dir + "/" + filepath.Base(f)
		if err := add(name, data); err != nil {
			return nil, err
		}
		rs.Rules = append(rs.Rules, name)
		if strings.EqualFold(filepath.Ext(f), ".cf") {
			continue
		}
		var doc struct {
			Corpus []struct {
				File string `yaml:"file"`
			} `yaml:"corpus"`
		}
		// A file that does not parse is bundled as it is: the gate names
		// its error with file and line.
		_ = yaml.Unmarshal(data, &doc)
		for _, s := range doc.Corpus {
			rel := filepath.ToSlash(s.File)
			if !filepath.IsLocal(s.File) || rel == "" {
				return nil, &PathError{Name: s.File}
			}
			raw, err := os.ReadFile(filepath.Join(filepath.Dir(f), s.File))
			if err != nil {
				return nil, fmt.Errorf("fleet: %s: corpus: %w", f, err)
			}
			if err := add(dir+"/"+path.Clean(rel), raw); err != nil {
				return nil, err
			}
		}
	}
	rs.Digest = rs.digest()
	return rs, nil
}

// digest is the SHA-256 of the names and contents, in order.
func (rs *RuleSet) digest() string {
	h := sha256.New()
	for _, r := range rs.Rules {
		fmt.Fprintf(h, "rule %q\n", r)
	}
	for _, f := range rs.Files {
		fmt.Fprintf(h, "file %q %d\n", f.Name, len(f.Data))
		h.Write(f.Data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Short is the digest's first 12 hex digits.
func (rs *RuleSet) Short() string {
	d := strings.TrimPrefix(rs.Digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// decodeSet parses a KV value, checking names and digest.
func decodeSet(data []byte, rev uint64) (*RuleSet, error) {
	if len(data) > 2*MaxSetBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(data))
	}
	rs := &RuleSet{}
	if err := json.Unmarshal(data, rs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	rs.Version = rev
	have := map[string]bool{}
	for _, f := range rs.Files {
		if !filepath.IsLocal(filepath.FromSlash(f.Name)) || strings.Contains(f.Name, `\`) {
			return nil, &PathError{Name: f.Name}
		}
		have[f.Name] = true
	}
	if len(rs.Rules) == 0 {
		return nil, fmt.Errorf("%w: no rule files", ErrDecode)
	}
	for _, r := range rs.Rules {
		if !have[r] {
			return nil, fmt.Errorf("%w: rule file %q not in the set", ErrDecode, r)
		}
	}
	if d := rs.digest(); d != rs.Digest {
		return nil, fmt.Errorf("%w: digest %s, content hashes to %s", ErrDecode, rs.Digest, d)
	}
	return rs, nil
}

// write puts the set's files under dir and returns the rule files' paths.
func (rs *RuleSet) write(dir string) ([]string, error) {
	for _, f := range rs.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, r := range rs.Rules {
		out = append(out, filepath.Join(dir, filepath.FromSlash(r)))
	}
	return out, nil
}

// Bucket names the KV bucket and its replicas.
type Bucket struct {
	Name     string // "" means the package default
	Replicas int    // 0 means 1
}

func rulesKV(ctx context.Context, js jetstream.JetStream, b Bucket) (jetstream.KeyValue, error) {
	name := b.Name
	if name == "" {
		name = RulesBucket
	}
	return bindKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: name, History: 8, Replicas: max(b.Replicas, 1),
		Description: "Portcullis rule sets", Storage: jetstream.FileStorage,
	})
}

// bindKV binds to the bucket, creating it only if it does not exist: a
// node never changes a bucket's settings (its replicas) behind the
// operator's back.
func bindKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
		if err == nil {
			err = streamLeader(ctx, js, "KV_"+cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// streamLeaderWait bounds streamLeader.
const streamLeaderWait = 15 * time.Second

// streamLeader waits until the stream has a leader. A replicated stream
// just created has none for a moment, and a write to it then fails with
// "no responders" (TestZonesCluster saw it); NATS tells no one when the
// leader is elected, so its info is asked again, at growing intervals,
// for at most streamLeaderWait.
func streamLeader(ctx context.Context, js jetstream.JetStream, stream string) error {
	ctx, cancel := context.WithTimeout(ctx, streamLeaderWait)
	defer cancel()
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		st, err := js.Stream(ctx, stream)
		if err == nil {
			if ci := st.CachedInfo().Cluster; ci == nil || ci.Leader != "" {
				return nil
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("fleet: stream %s has no leader: %w", stream, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// Publish writes rs as the fleet's current rule set and returns its
// version. It does not gate rs: run the gate first (rulecheck publish).
func Publish(ctx context.Context, js jetstream.JetStream, b Bucket, rs *RuleSet) (uint64, error) {
	if rs.Digest == "" {
		rs.Digest = rs.digest()
	}
	if rs.Published.IsZero() {
		rs.Published = time.Now().UTC()
	}
	data, err := json.Marshal(rs)
	if err != nil {
		return 0, err
	}
	if len(data) > MaxSetBytes {
		return 0, fmt.Errorf("%w: %d bytes encoded, at most %d", ErrTooLarge, len(data), MaxSetBytes)
	}
	kv, err := rulesKV(ctx, js, b)
	if err != nil {
		return 0, err
	}
	rev, err := kv.Put(ctx, rulesKey, data)
	if err != nil {
		return 0, fmt.Errorf("fleet: publish: %w", err)
	}
	rs.Version = rev
	return rev, nil
}

// Current reads the fleet's current rule set.
func Current(ctx context.Context, js jetstream.JetStream, b Bucket) (*RuleSet, error) {
	kv, err := rulesKV(ctx, js, b)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, rulesKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNoSet
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return decodeSet(e.Value(), e.Revision())
}
