package fleet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/portcullis-mail/portcullis/fleet"
)

// ExampleReadView is the fleet at a glance, as "gateway fleet status"
// and the console's fleet page read it: the published rule set and each
// node's report, a node on an older version behind.
func ExampleReadView() {
	dir, err := os.MkdirTemp("", "fleet-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	js, stop := exampleJetStream(dir)
	defer stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	rule := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rule, []byte("rules:\n  - {name: WON, kind: body, literal: you have won, score: 6}\n"), 0o644)
	rs, err := fleet.Bundle(rule)
	if err != nil {
		panic(err)
	}
	v1, _ := fleet.Publish(ctx, js, fleet.Bucket{}, rs)
	v2, _ := fleet.Publish(ctx, js, fleet.Bucket{}, rs)

	// Two nodes report: one serves v2, one is still on v1.
	for node, v := range map[string]uint64{"gw-a": v2, "gw-b": v1} {
		go fleet.Report(ctx, fleet.ReporterConfig{JetStream: js, Node: node, Interval: time.Hour,
			Status: func() fleet.NodeStatus { return fleet.NodeStatus{RulesVersion: v, Ready: true, QueueDepth: 4} }})
	}
	var view fleet.View
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); <-time.After(20 * time.Millisecond) {
		if view, err = fleet.ReadView(ctx, js, fleet.Bucket{}, fleet.Bucket{}); err == nil && len(view.Nodes) == 2 {
			break
		}
	}
	fmt.Println("published version", view.Rules.Version)
	for _, n := range view.Nodes {
		fmt.Println(n.Node, "serves", n.RulesVersion, "queue", n.QueueDepth, "behind", view.Behind(n))
	}
	// Output:
	// published version 2
	// gw-a serves 2 queue 4 behind false
	// gw-b serves 1 queue 4 behind true
}
