package fleet_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/scanner"
)

// engine is an AV engine with a signature version that flags "X5O!".
type engine struct{ scans int }

func (e *engine) Name() string                            { return "clamd-1" }
func (e *engine) Version(context.Context) (string, error) { return "ClamAV 1.4.6/27463", nil }
func (e *engine) Scan(_ context.Context, r io.Reader) (scanner.Result, error) {
	e.scans++
	b, err := io.ReadAll(r)
	if bytes.Contains(b, []byte("X5O!")) {
		return scanner.Result{Signatures: []string{"Eicar-Test-Signature"}}, err
	}
	return scanner.Result{}, err
}

// Two nodes share AV results and the faulty-update guard's counts: the
// second node takes the first one's answer instead of scanning, and sees
// the fleet's detection count at the engine's signature version.
func Example_avFleet() {
	dir, _ := os.MkdirTemp("", "fleet-av-example")
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	node := func(id string) (*scanner.Multi, *engine, *fleet.AVGuard) {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			panic(err)
		}
		js, _ := jetstream.New(nc)
		cache, _ := fleet.NewAVCache(fleet.AVCacheConfig{JetStream: js})
		guard, _ := fleet.NewAVGuard(fleet.AVGuardConfig{JetStream: js, Node: id, Interval: 50 * time.Millisecond})
		go guard.Run(ctx)
		e := &engine{}
		m, _ := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{e}, SharedCache: cache, FleetRates: guard})
		return m, e, guard
	}
	a, ea, _ := node("a")
	b, eb, guardB := node("b")

	att := []byte("X5O!...")
	va, _ := a.Scan(ctx, bytes.NewReader(att), int64(len(att)))
	vb, _ := b.Scan(ctx, bytes.NewReader(att), int64(len(att)))
	fmt.Println("a:", va.Infected, "b:", vb.Infected, "from the shared cache:", vb.Shared, "scans:", ea.scans+eb.scans)

	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if r, _ := guardB.Rate("clamd-1", "ClamAV 1.4.6/27463"); r.Nodes == 1 && r.Hits == 1 {
			fmt.Println("b sees the fleet's count:", r.Hits, "of", r.Scans)
			break
		}
	}
	// Output:
	// a: true b: true from the shared cache: 1 scans: 1
	// b sees the fleet's count: 1 of 1
}
