// Package natstest starts in-process nats-servers with JetStream for
// tests: one server, or a cluster for failover. It is apart from testsvc
// so that the test binaries (and fuzzers) of packages that do not need
// NATS do not link nats-server.
package natstest

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// NATS is an in-process nats-server with JetStream on a temp dir and a free
// loopback port. Its file store syncs every write (sync_interval: always),
// the setting under which an acknowledged publish survives a power loss.
type NATS struct {
	URL    string
	Server *server.Server
	opts   server.Options
	t      testing.TB
}

// Start starts a single JetStream server; it stops when the test ends.
func Start(t testing.TB) *NATS {
	t.Helper()
	testsvc.Integration(t)
	n := &NATS{t: t, opts: natsOptions(t, "n1")}
	n.Start()
	t.Cleanup(n.Stop)
	return n
}

// natsOptions are one JetStream server's: a free loopback port, a temp
// store directory, every write synced.
func natsOptions(t testing.TB, name string) server.Options {
	return server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		Port:       testsvc.FreePort(t),
		JetStream:  true,
		StoreDir:   t.TempDir(),
		SyncAlways: true,
		NoLog:      true,
		NoSigs:     true,
		MaxPayload: 1 << 20,
	}
}

// Start (re)starts the server on its port and store directory, so that a
// test can check what survived a server restart.
func (n *NATS) Start() {
	n.t.Helper()
	opts := n.opts // NewServer keeps and changes its options
	var err error
	for range 100 { // the port may linger for a moment after Stop
		n.Server, err = server.NewServer(&opts)
		if err != nil {
			n.t.Fatalf("nats-server: %v", err)
		}
		go n.Server.Start()
		if n.Server.ReadyForConnections(10 * time.Second) {
			break
		}
		n.Server.Shutdown()
		err = fmt.Errorf("nats-server on port %d not ready", n.opts.Port)
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatal(err)
	}
	n.URL = "nats://127.0.0.1:" + strconv.Itoa(n.opts.Port)
}

// Stop shuts the server down and waits until it has.
func (n *NATS) Stop() {
	if n.Server != nil {
		n.Server.Shutdown()
		n.Server.WaitForShutdown()
	}
}

// Cluster is a JetStream cluster of in-process servers on loopback.
type Cluster struct {
	Nodes []*NATS
}

// URLs returns every node's client URL, comma separated, as nats.Connect
// takes them.
func (c *Cluster) URLs() string {
	var u []string
	for _, n := range c.Nodes {
		u = append(u, n.URL)
	}
	return strings.Join(u, ",")
}

// StartCluster starts a cluster of size nodes (3 for a failover test)
// and waits until JetStream has a meta leader; it stops when the test ends.
func StartCluster(t testing.TB, size int) *Cluster {
	t.Helper()
	testsvc.Integration(t)
	ports := make([]int, size)
	var routes []string
	for i := range ports {
		ports[i] = testsvc.FreePort(t)
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	var urls []*url.URL
	for _, r := range routes {
		u, err := url.Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, u)
	}
	c := &Cluster{}
	for i := range size {
		opts := natsOptions(t, "n"+strconv.Itoa(i+1))
		opts.Cluster = server.ClusterOpts{Name: "portcullis-test", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = urls
		c.Nodes = append(c.Nodes, &NATS{t: t, opts: opts})
	}
	for _, n := range c.Nodes {
		n.Start()
		t.Cleanup(n.Stop)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, n := range c.Nodes {
			if n.Server.JetStreamIsLeader() {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("nats cluster: no JetStream meta leader after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
