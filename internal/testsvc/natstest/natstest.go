// Package natstest starts in-process nats-servers with JetStream for
// tests: one server, or a cluster for failover. It is apart from testsvc
// so that the test binaries (and fuzzers) of packages that do not need
// NATS do not link nats-server.
package natstest

import (
	"errors"
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

// readyTimeout bounds how long one server may take to accept clients
// (and routes); generous, for a loaded CI machine under -race.
const readyTimeout = 60 * time.Second

// Start starts a single JetStream server; it stops when the test ends.
func Start(t testing.TB) *NATS {
	t.Helper()
	testsvc.Integration(t)
	n := &NATS{t: t, opts: natsOptions(t, "n1")}
	t.Cleanup(n.Stop)
	n.startFresh()
	return n
}

// startFresh starts a new server; when its port was taken meanwhile
// (FreePort closes the port it found, and another process may bind it
// before the server does) it takes another.
func (n *NATS) startFresh() {
	n.t.Helper()
	for i := 0; ; i++ {
		err := n.start()
		var le *listenError
		if err == nil {
			return
		}
		if !errors.As(err, &le) || i == 4 {
			n.t.Fatalf("nats-server: %v", err)
		}
		n.opts.Port = testsvc.FreePort(n.t)
	}
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

// Start restarts the server on its port and store directory, so that a
// test can check what survived a server restart. It fails the test if
// the port stays taken for 10 s or the server is not ready in time.
func (n *NATS) Start() {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := n.start()
		if err == nil {
			return
		}
		var le *listenError
		if !errors.As(err, &le) || time.Now().After(deadline) {
			n.t.Fatalf("nats-server: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // poll until the port is free again
	}
}

// listenError is a server that could not listen on its client or
// cluster port: someone else has it.
type listenError struct{ msg string }

func (e *listenError) Error() string { return e.msg }

// fatalLog is the server's logger. With no logger a server that cannot
// listen (or start JetStream) says nothing and never becomes ready, so
// a caller waiting for it would wait its whole timeout, once per retry;
// fatalLog passes the first fatal error on and drops everything else.
type fatalLog chan string

func (l fatalLog) Fatalf(format string, v ...any) {
	select {
	case l <- fmt.Sprintf(format, v...):
	default:
	}
}
func (fatalLog) Noticef(string, ...any) {}
func (fatalLog) Warnf(string, ...any)   {}
func (fatalLog) Errorf(string, ...any)  {}
func (fatalLog) Debugf(string, ...any)  {}
func (fatalLog) Tracef(string, ...any)  {}

// start makes one attempt to start the server: it returns once the server
// accepts connections, at once with a *listenError when a port is taken,
// and after readyTimeout otherwise.
func (n *NATS) start() error {
	opts := n.opts // NewServer keeps and changes its options
	s, err := server.NewServer(&opts)
	if err != nil {
		return err
	}
	fatal := make(fatalLog, 1)
	s.SetLogger(fatal, false, false)
	go s.Start()
	deadline := time.Now().Add(readyTimeout)
	for !s.ReadyForConnections(100 * time.Millisecond) {
		var err error
		select {
		case msg := <-fatal:
			if strings.Contains(msg, "listening") {
				err = &listenError{msg: fmt.Sprintf("%s: %s", n.opts.ServerName, msg)}
			} else {
				err = fmt.Errorf("%s: %s", n.opts.ServerName, msg)
			}
		default:
			if time.Now().After(deadline) {
				err = fmt.Errorf("%s on port %d not ready after %v", n.opts.ServerName, n.opts.Port, readyTimeout)
			}
		}
		if err != nil {
			s.Shutdown()
			s.WaitForShutdown()
			return err
		}
	}
	select {
	case msg := <-fatal: // ready, but JetStream (say) failed to start
		s.Shutdown()
		s.WaitForShutdown()
		return fmt.Errorf("%s: %s", n.opts.ServerName, msg)
	default:
	}
	n.Server = s
	n.URL = "nats://127.0.0.1:" + strconv.Itoa(n.opts.Port)
	return nil
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
// and waits until it can place a stream of size replicas: a meta leader
// that has heard from every peer (a peer it has no statistics from yet
// is not a placement candidate, and creating a stream before then fails
// with "no suitable peers for placement"), and every node's meta log
// current. It stops when the test ends.
func StartCluster(t testing.TB, size int) *Cluster {
	t.Helper()
	testsvc.Integration(t)
	for attempt := 0; ; attempt++ {
		c, err := startCluster(t, size)
		var le *listenError
		if err == nil {
			c.WaitReady(t, size)
			return c
		}
		// A port taken between FreePort and the listen: every node's
		// routes name every cluster port, so start over with new ones.
		if !errors.As(err, &le) || attempt == 2 {
			t.Fatalf("nats cluster: %v", err)
		}
	}
}

// startCluster makes one attempt to start the nodes of a cluster; on
// failure it stops those it started.
func startCluster(t testing.TB, size int) (*Cluster, error) {
	ports := make([]int, size)
	var urls []*url.URL
	for i := range ports {
		ports[i] = testsvc.FreePort(t)
		urls = append(urls, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(ports[i])})
	}
	c := &Cluster{}
	for i := range size {
		opts := natsOptions(t, "n"+strconv.Itoa(i+1))
		opts.Cluster = server.ClusterOpts{Name: "portcullis-test", Host: "127.0.0.1", Port: ports[i]}
		opts.Routes = urls
		n := &NATS{t: t, opts: opts}
		t.Cleanup(n.Stop)
		if err := n.start(); err != nil {
			for _, n := range c.Nodes {
				n.Stop()
			}
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	return c, nil
}

// WaitReady waits until JetStream in the cluster has a meta leader that
// sees peers online peers with JetStream (statistics received), and every running node's meta
// log is current; it fails the test after 60 s, saying what it saw.
func (c *Cluster) WaitReady(t testing.TB, peers int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var leader *server.Server
		current := 0
		running := 0
		for _, n := range c.Nodes {
			if n.Server == nil || !n.Server.Running() {
				continue
			}
			running++
			if n.Server.JetStreamIsLeader() {
				leader = n.Server
			}
			if n.Server.JetStreamIsCurrent() {
				current++
			}
		}
		seen := 0
		if leader != nil {
			seen = len(leader.JetStreamClusterPeers())
			if seen >= peers && current == running {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats cluster not ready after 60s: meta leader %v, %d of %d peers seen, %d of %d running nodes current",
				leader != nil, seen, peers, current, running)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
