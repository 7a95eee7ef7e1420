package fleet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/fleet"
)

// Example publishes a rule set to JetStream and has a node's Rules filter
// pick it up: not ready before, ready and serving the version after.
func Example() {
	dir, err := os.MkdirTemp("", "fleet-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: filepath.Join(dir, "nats"), NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		panic("nats-server not ready")
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A node: not ready until it has the fleet's set.
	node := fleet.NewRules(fleet.RulesConfig{JetStream: js, Dir: filepath.Join(dir, "node")})
	go node.Run(ctx)
	fmt.Println("before:", node.Ready() != nil)

	// The publisher (rulecheck publish gates it first).
	rule := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rule, []byte("rules:\n  - {name: WON, kind: body, literal: you have won, score: 6}\n"), 0o644)
	rs, err := fleet.Bundle(rule)
	if err != nil {
		panic(err)
	}
	v, err := fleet.Publish(ctx, js, fleet.Bucket{}, rs)
	if err != nil {
		panic(err)
	}
	select {
	case <-node.Changed():
	case <-time.After(time.Minute):
	}
	fmt.Println("published:", v, "served:", node.Served().Version, "ready:", node.Ready() == nil)
	// Output:
	// before: true
	// published: 1 served: 1 ready: true
}

// exampleJetStream starts an in-process JetStream server storing in dir
// and connects to it, as Example does step by step; the other Examples
// use it. stop closes the connection and shuts the server down.
func exampleJetStream(dir string) (js jetstream.JetStream, stop func()) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: filepath.Join(dir, "nats"), NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		panic("nats-server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	js, _ = jetstream.New(nc)
	return js, func() { nc.Close(); srv.Shutdown() }
}
