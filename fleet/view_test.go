package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

// ReadView: nothing before a publication, then the set (without its
// files) and the nodes, a node on an older version behind.
func TestReadView(t *testing.T) {
	js := connect(t, natstest.Start(t).URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := ReadView(ctx, js, Bucket{}, Bucket{})
	if err != nil || v.Rules != nil || len(v.Nodes) != 0 {
		t.Fatalf("empty fleet: %+v %v", v, err)
	}
	rs, err := Bundle(writeSet(t, t.TempDir(), "6"))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := Publish(ctx, js, Bucket{}, rs)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := Publish(ctx, js, Bucket{}, rs)
	if err != nil {
		t.Fatal(err)
	}
	for id, ver := range map[string]uint64{"gw-1": v2, "gw-2": v1} {
		go Report(ctx, ReporterConfig{JetStream: js, Node: id, Interval: time.Hour,
			Status: func() NodeStatus {
				e := EngineHealth{Name: "clamd-1", State: "open"}
				if id == "gw-1" {
					// Asked, but its signature version is doubted fleet-wide.
					e = EngineHealth{Name: "clamd-1", State: "closed", Version: "ClamAV 1.4.2/27481", FleetSuspect: true}
				}
				return NodeStatus{RulesVersion: ver, QueueDepth: 4, QueueHeld: 1, Engines: []EngineHealth{e}}
			}})
	}
	for deadline := time.Now().Add(20 * time.Second); ; <-time.After(20 * time.Millisecond) {
		if v, err = ReadView(ctx, js, Bucket{}, Bucket{}); err == nil && len(v.Nodes) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two statuses within 20 s: %+v %v", v, err)
		}
	}
	if v.Rules == nil || v.Rules.Version != v2 || v.Rules.Digest != rs.Digest || v.Rules.Files != nil {
		t.Fatalf("published set in the view: %+v", v.Rules)
	}
	if v.Behind(v.Nodes[0]) || !v.Behind(v.Nodes[1]) {
		t.Fatalf("behind: %s %v, %s %v", v.Nodes[0].Node, v.Behind(v.Nodes[0]), v.Nodes[1].Node, v.Behind(v.Nodes[1]))
	}
	if e := v.Nodes[1].Engines; v.Nodes[1].QueueHeld != 1 || len(e) != 1 || e[0].Healthy() {
		t.Fatalf("status round trip: %+v", v.Nodes[1])
	}
	if e := v.Nodes[0].Engines; len(e) != 1 || !e[0].FleetSuspect || e[0].Version != "ClamAV 1.4.2/27481" || e[0].Healthy() {
		t.Fatalf("a fleet-suspect engine's round trip: %+v", v.Nodes[0])
	}
}
