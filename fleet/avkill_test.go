package fleet

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/scanner"
	"github.com/portcullis-mail/portcullis/scanner/clamd"
)

// The fleet-wide faulty-update guard survives the loss of a NATS server:
// three scanner nodes, each connected to its own server of a 3-node
// cluster (the others as reconnect targets), share their counts; the
// server leading the counts' stream, and serving the flooding node, is
// killed; a flood of detections under a faulty signature version on that
// node still reaches the other two through the surviving servers, and
// they quarantine their next detection instead of rejecting it.
func TestAVFleetServerKilled(t *testing.T) {
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{ExtraDB: map[string]string{
		"faulty.ndb": "Faulty.Newsletter.Footer:0:*:" + hex.EncodeToString([]byte(footer)) + "\n"}})
	c := natstest.StartCluster(t, 3)
	var version atomic.Value
	version.Store("ClamAV 1.4.6/27470")
	var mu sync.Mutex
	scans := map[[32]byte]int{}
	var nodes []*avNode
	var conns []*nats.Conn
	for i := range 3 {
		cl, err := clamd.New(clamd.Config{Addr: d.Addr, Name: "clamd-1"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		// Its own server first, then the others.
		urls := []string{c.Nodes[i].URL}
		for j, n := range c.Nodes {
			if j != i {
				urls = append(urls, n.URL)
			}
		}
		nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1),
			nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		eng := counted{Client: cl, version: &version, mu: &mu, scans: scans}
		nodes = append(nodes, newAVNodeJS(t, js, fmt.Sprintf("n%d", i+1), eng, 3, 2*time.Second))
	}
	for i, n := range nodes {
		waitFor(t, 30*time.Second, func() bool { return n.met.get("portcullis_fleet_av_nodes") == 2 }, fmt.Sprintf("node %d seeing the other two", i+1))
	}

	// Kill the server leading the counts' stream; the node connected to
	// it floods.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	js, _ := jetstream.New(conns[0])
	st, err := js.Stream(ctx, "KV_"+AVRatesBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil || info.Config.Replicas != 3 {
		t.Fatalf("the counts' stream: %+v %v, want 3 replicas", info, err)
	}
	killed := -1
	for i, n := range c.Nodes {
		if n.Server.Name() == info.Cluster.Leader {
			killed = i
		}
	}
	if killed < 0 {
		t.Fatalf("no server leads the counts' stream (leader %q)", info.Cluster.Leader)
	}
	c.Nodes[killed].Stop()
	if c.Nodes[killed].Server.Running() {
		t.Fatal("the killed server still runs")
	}
	flooder := nodes[killed]
	var others []*avNode
	for i, n := range nodes {
		if i != killed {
			others = append(others, n)
		}
	}
	t.Logf("killed server %s, the counts' stream leader and node n%d's server", info.Cluster.Leader, killed+1)

	// The faulty update. Before the flood a detection is rejected.
	const faulty = "ClamAV 1.4.6/27471"
	version.Store(faulty)
	if res := others[0].check(t, newsletter(0)); res.Action != filter.Reject {
		t.Fatalf("before the flood: %v %v, want reject", res.Action, res.Symbols)
	}
	const flood = 30
	for i := 1; i <= flood; i++ {
		flooder.check(t, newsletter(i))
	}
	flooded := time.Now()
	for _, n := range others {
		waitFor(t, 30*time.Second, func() bool {
			r, _ := n.guard.Rate("clamd-1", faulty)
			return r.Scans > flood && r.Nodes >= 2
		}, "the fleet's counts of the faulty version after a server was killed")
	}
	t.Logf("with a server killed, the flood reached the other nodes in %v", time.Since(flooded))
	if conns[killed].ConnectedUrl() == c.Nodes[killed].URL {
		t.Fatalf("the flooding node is still connected to the killed server %s", c.Nodes[killed].URL)
	}
	for i, n := range others {
		res := n.check(t, newsletter(100+i))
		if res.Action != filter.Quarantine || !has(res, scanner.SymSuspect, "fleet detection rate") {
			t.Fatalf("node after the flood: %v %v, want quarantine by the fleet's rate", res.Action, res.Symbols)
		}
	}
}
