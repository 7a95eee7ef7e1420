package fleet

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

// writeSet writes a rule file whose WON rule scores score, with a corpus
// that expects add-header for the spam sample (so score < 5 breaks the gate).
func writeSet(t *testing.T, dir, score string) string {
	t.Helper()
	os.MkdirAll(filepath.Join(dir, "corpus"), 0o755)
	os.WriteFile(filepath.Join(dir, "corpus", "spam.eml"), []byte("Subject: win\r\n\r\nyou have won a prize\r\n"), 0o644)
	f := filepath.Join(dir, "set.yaml")
	os.WriteFile(f, []byte(`
thresholds: {add-header: 5}
rules:
  - {name: WON, kind: body, regex: '(?i)\byou have won\b', score: `+score+`}
corpus:
  - {file: corpus/spam.eml, expect: add-header}
`), 0o644)
	return f
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// waitChange waits for the next install or refusal.
func waitChange(t *testing.T, r *Rules) {
	t.Helper()
	select {
	case <-r.Changed():
	case <-time.After(20 * time.Second):
		t.Fatal("no install or refusal within 20 s")
	}
}

func TestRulesPublishWatchRefuse(t *testing.T) {
	n := natstest.Start(t)
	js := connect(t, n.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	r := NewRules(RulesConfig{JetStream: js, Dir: t.TempDir()})
	if err := r.Ready(); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Ready before any set = %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	good, err := Bundle(writeSet(t, t.TempDir(), "6"))
	if err != nil {
		t.Fatal(err)
	}
	if len(good.Files) != 2 || good.Files[1].Name != "0/corpus/spam.eml" {
		t.Fatalf("bundle files: %+v", good.Files)
	}
	v1, err := Publish(ctx, js, Bucket{}, good)
	if err != nil {
		t.Fatal(err)
	}
	waitChange(t, r)
	if err := r.Ready(); err != nil {
		t.Fatalf("not ready after install: %v", err)
	}
	if s := r.Served(); s == nil || s.Version != v1 || s.Digest != good.Digest {
		t.Fatalf("served %+v, want version %d", s, v1)
	}
	m := filter.NewMessageBytes(filter.Envelope{}, []byte("Subject: x\r\n\r\nyou have won\r\n"), filter.Limits{})
	res, err := r.Check(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.Symbols {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, ","); got != "WON,RULESET_V"+itoa(v1) {
		t.Fatalf("symbols %s", got)
	}

	// A set that breaks its own gate is refused; the old one serves.
	bad, err := Bundle(writeSet(t, t.TempDir(), "2"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Publish(ctx, js, Bucket{}, bad)
	if err != nil {
		t.Fatal(err)
	}
	waitChange(t, r)
	if s := r.Served(); s.Version != v1 {
		t.Fatalf("served version %d after a broken publish, want %d", s.Version, v1)
	}
	ref := r.Refused()
	if ref == nil || ref.Version != v2 || !strings.Contains(ref.Reason, "regression gate") {
		t.Fatalf("refusal %+v", ref)
	}
	if err := r.Ready(); err != nil {
		t.Fatalf("a refused version made the node unready: %v", err)
	}

	// A value that is not a rule set at all is refused too.
	kv, _ := js.KeyValue(ctx, RulesBucket)
	v3, err := kv.Put(ctx, rulesKey, []byte(`{"rules":["../etc/passwd"],"files":[{"name":"../etc/passwd","data":""}]}`))
	if err != nil {
		t.Fatal(err)
	}
	waitChange(t, r)
	if ref := r.Refused(); ref == nil || ref.Version != v3 || !strings.Contains(ref.Reason, "not a local path") {
		t.Fatalf("refusal %+v", ref)
	}

	// Fixed set: installed, the refusal cleared.
	if _, err := Publish(ctx, js, Bucket{}, good); err != nil {
		t.Fatal(err)
	}
	waitChange(t, r)
	if r.Refused() != nil || r.Served().Version <= v3 {
		t.Fatalf("served %d refused %+v", r.Served().Version, r.Refused())
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
}

func TestBundleLimits(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "big.yaml")
	os.WriteFile(f, make([]byte, MaxSetBytes+1), 0o644)
	if _, err := Bundle(f); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Bundle of %d bytes = %v", MaxSetBytes+1, err)
	}
	esc := filepath.Join(dir, "esc.yaml")
	os.WriteFile(esc, []byte("corpus:\n  - {file: ../x.eml, expect: accept}\n"), 0o644)
	if _, err := Bundle(esc); !errors.Is(err, ErrPath) {
		t.Fatalf("Bundle with ../ = %v", err)
	}
}

func TestStatus(t *testing.T) {
	n := natstest.Start(t)
	js := connect(t, n.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan struct{}, 1)
	depth := make(chan int, 1)
	depth <- 7
	go Report(ctx, ReporterConfig{JetStream: js, Node: "gw-1", Interval: time.Hour, Changed: changed,
		Status: func() NodeStatus { return NodeStatus{RulesVersion: 3, Ready: true, QueueDepth: <-depth} }})
	for deadline := time.Now().Add(20 * time.Second); ; {
		st, err := Statuses(ctx, js, Bucket{})
		if err == nil && len(st) == 1 {
			if st[0].Node != "gw-1" || st[0].RulesVersion != 3 || st[0].QueueDepth != 7 || !st[0].Ready {
				t.Fatalf("status %+v", st[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status within 20 s: %v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := Report(ctx, ReporterConfig{JetStream: js, Node: "bad.id", Status: func() NodeStatus { return NodeStatus{} }}); err == nil {
		t.Fatal("a node id with a dot was accepted")
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
