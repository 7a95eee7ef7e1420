package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

// "gateway fleet status" marks an engine whose signature version the
// fleet-wide guard doubts in its ENGINES column, apart from one only its
// own node doubts and from a trusted one.
func TestFleetStatusFleetSuspect(t *testing.T) {
	n := natstest.Start(t)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	engines := map[string][]fleet.EngineHealth{
		"gw-a": {{Name: "clamd-1", State: "closed", Version: "ClamAV 1.4.2/27481", FleetSuspect: true}},
		"gw-b": {{Name: "clamd-1", State: "closed", Version: "ClamAV 1.4.2/27481", Suspect: true}},
		"gw-c": {{Name: "clamd-1", State: "closed", Version: "ClamAV 1.4.2/27480"}},
	}
	for id, es := range engines {
		go fleet.Report(ctx, fleet.ReporterConfig{JetStream: js, Node: id, Interval: time.Hour,
			Status: func() fleet.NodeStatus { return fleet.NodeStatus{Ready: true, Engines: es} }})
	}
	want := map[string]string{"gw-a": "clamd-1:fleet-suspect", "gw-b": "clamd-1:suspect", "gw-c": "clamd-1:closed"}
	var out bytes.Buffer
	for deadline := time.Now().Add(20 * time.Second); ; <-time.After(50 * time.Millisecond) {
		out.Reset()
		err := fleetCommand([]string{"fleet", "status", "-nats", n.URL}, &out, &out)
		got := map[string]string{}
		for _, l := range strings.Split(out.String(), "\n") {
			// NODE RULES READY QUEUE HELD ENGINES ...
			if f := strings.Fields(l); len(f) >= 6 {
				got[f[0]] = f[5]
			}
		}
		ok := err == nil
		for id, w := range want {
			ok = ok && got[id] == w
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet status (%v), want ENGINES %v:\n%s", err, want, out.String())
		}
	}
}
