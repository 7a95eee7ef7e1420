package natstest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// TestStartPortTaken: a server whose port someone else holds fails at
// once with a *listenError (it used to say nothing and wait out its
// readiness timeout, a hundred times over), and startFresh moves to
// another port.
func TestStartPortTaken(t *testing.T) {
	testsvc.Integration(t) // starts nats-servers: skipped under -short only, never in CI
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	n := &NATS{t: t, opts: natsOptions(t, "busy")}
	t.Cleanup(n.Stop)
	n.opts.Port = taken
	start := time.Now()
	err = n.start()
	var le *listenError
	if !errors.As(err, &le) {
		t.Fatalf("start on a taken port: %v, want a *listenError", err)
	}
	if d := time.Since(start); d >= readyTimeout {
		t.Errorf("start on a taken port took %v, the whole readiness timeout", d)
	}
	n.startFresh()
	if n.opts.Port == taken || n.Server == nil || !n.Server.Running() {
		t.Fatalf("startFresh: port %d (taken %d), server %v", n.opts.Port, taken, n.Server)
	}
}

// TestRestart: Stop and Start keep the port, so clients reconnect.
func TestRestart(t *testing.T) {
	n := Start(t)
	url := n.URL
	n.Stop()
	n.Start()
	if n.URL != url || !n.Server.Running() {
		t.Fatalf("restarted on %s, was %s", n.URL, url)
	}
}

// TestClusterPlacesReplicas: as soon as StartCluster returns, a stream
// with a replica on every node can be placed (no "no suitable peers for
// placement" from a meta leader that has not heard from every peer yet).
func TestClusterPlacesReplicas(t *testing.T) {
	c := StartCluster(t, 3)
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3}); err != nil {
		t.Fatalf("a stream with 3 replicas right after StartCluster: %v", err)
	}
	if _, err := js.Publish(ctx, "r3.x", []byte("x")); err != nil {
		t.Fatalf("publish: %v", err)
	}
}
