package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

// fleetSet writes a rule set whose WON rule scores score; its corpus
// expects add-header for a prize mail, so a score under 5 breaks the gate.
func fleetSet(t *testing.T, score string) *fleet.RuleSet {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "spam.eml", "Subject: win\r\n\r\nyou have won a prize\r\n")
	f := writeFile(t, dir, "fleet.yaml", `
thresholds: {add-header: 5, quarantine: 50, reject: 100}
rules:
  - {name: WON, kind: body, regex: '(?i)\byou have won\b', score: `+score+`}
corpus:
  - {file: spam.eml, expect: add-header}
`)
	rs, err := fleet.Bundle(f)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// readyz returns /readyz's status and the version header.
func readyz(t *testing.T, g *proc) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Portcullis-Rules-Version")
}

// waitVersion waits for the gateway's log line about version v.
func waitVersion(t *testing.T, g *proc, what string, v uint64) {
	t.Helper()
	if _, ok := g.waitLine(fmt.Sprintf("fleet: rule set %s\" version=%d ", what, v), 30*time.Second); !ok {
		t.Fatalf("gateway %s: no %q of version %d:\n%s", g.smtp, what, v, g.output())
	}
}

// The fleet's rule set on a 3-node NATS cluster and four gateways: they
// converge on a published set and report it (/readyz, the metric, the
// fleet status, the verdict header), a late node is not ready until it
// has it, a broken set is refused everywhere with the reason in the fleet
// status and the metrics, and killing the rules stream's leader as the
// next set is published does not stop convergence.
func TestFleetRules(t *testing.T) {
	buildBinary(t)
	c := natstest.StartCluster(t, 3)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	bucket := fleet.Bucket{Replicas: 3}
	// publish retries while the cluster fails over (each attempt bounded),
	// for 30 s at most.
	publish := func(rs *fleet.RuleSet) uint64 {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			v, err := fleet.Publish(ctx, js, bucket, rs)
			cancel()
			if err == nil {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish: %v", err)
			}
			t.Logf("publish: %v; again", err)
		}
	}

	dir := t.TempDir()
	conf := func(name, url string) string {
		return writeFile(t, dir, name+".yaml", fmt.Sprintf(
			"rules: {source: nats}\nfleet: {url: %q, node: %s, replicas: 3, status_interval: 300ms}\n", url, name))
	}
	var gws []*proc
	for _, name := range []string{"gw-a", "gw-b", "gw-c"} {
		gws = append(gws, startGateway(t, gatewayArgs(t, sink.Addr, "-config", conf(name, c.URLs()))...))
	}
	// No set published yet: not ready, mail tempfailed.
	if code, v := readyz(t, gws[0]); code != 503 || v != "none" {
		t.Fatalf("before any publication: /readyz %d version %q", code, v)
	}
	if r := send(gws[0].smtp, message("too early", "hi")); r.code != 451 {
		t.Fatalf("mail before any set: %+v, want 451", r)
	}

	v1 := publish(fleetSet(t, "6"))
	for _, g := range gws {
		waitVersion(t, g, "installed", v1)
		if code, v := readyz(t, g); code != 200 || !strings.HasPrefix(v, strconv.FormatUint(v1, 10)+" sha256:") {
			t.Fatalf("%s after v%d: /readyz %d version %q", g.smtp, v1, code, v)
		}
	}
	// ... and report it: the metric, and the fleet's status of all three.
	for _, g := range gws {
		wantMetric(t, g, fmt.Sprintf("portcullis_fleet_rules_version %d", v1))
	}
	fleetStatusUntil(t, c.URLs(), func(out string) bool { return servingCount(out, v1) == 3 })
	if r := send(gws[1].smtp, message("prize", "you have won a prize")); r.code != 250 {
		t.Fatalf("prize mail: %+v", r)
	}
	got := sink.Wait(1, 30*time.Second)
	if len(got) != 1 || !strings.Contains(string(got[0].Data), "WON") || !strings.Contains(string(got[0].Data), fmt.Sprintf("RULESET_V%d", v1)) {
		t.Fatalf("relayed message does not name the rule and the set's version:\n%+v", got)
	}

	// A fourth gateway whose only NATS server is down: not ready, 451;
	// once the server is back it loads the set and accepts.
	late := c.Nodes[2]
	late.Stop()
	d := startGateway(t, gatewayArgs(t, sink.Addr, "-config", conf("gw-d", late.URL))...)
	if code, _ := readyz(t, d); code != 503 {
		t.Fatalf("late node without its set: /readyz %d", code)
	}
	if r := send(d.smtp, message("late", "hi")); r.code != 451 {
		t.Fatalf("late node without its set: %+v, want 451", r)
	}
	late.Start()
	waitVersion(t, d, "installed", v1)
	// Every peer current again before the next node is killed: two of
	// three must stay up for the stream to keep a quorum.
	c.WaitReady(t, 3)
	if r := send(d.smtp, message("late ok", "hi")); r.code != 250 {
		t.Fatalf("late node with the set: %+v", r)
	}
	gws = append(gws, d)

	// A broken set: refused by every node, which keeps v1 and says why.
	v2 := publish(fleetSet(t, "2"))
	for _, g := range gws {
		waitVersion(t, g, "refused, keeping the current one", v2)
		if code, v := readyz(t, g); code != 200 || !strings.HasPrefix(v, strconv.FormatUint(v1, 10)+" ") {
			t.Fatalf("%s after the broken v%d: /readyz %d version %q", g.smtp, v2, code, v)
		}
	}
	for _, g := range gws {
		wantMetric(t, g, fmt.Sprintf("portcullis_fleet_rules_refused_version %d", v2))
		wantMetric(t, g, fmt.Sprintf("portcullis_fleet_rules_version %d", v1))
	}
	out := fleetStatusUntil(t, c.URLs(), func(out string) bool {
		return strings.Count(out, fmt.Sprintf("refused version %d: rules: regression gate", v2)) == 4 &&
			strings.Count(out, " behind") == 4 // serving v1 of a fleet at v2
	})
	for _, n := range []string{"gw-a", "gw-b", "gw-c", "gw-d"} {
		if !strings.Contains(out, n+" ") {
			t.Errorf("fleet status lacks %s:\n%s", n, out)
		}
	}

	// Kill the NATS node that leads the rules stream, then publish at
	// once: the publication straddles the failover (Publish retries until
	// a new leader takes it), and every gateway, whichever server it
	// watched from, still converges on it. gw-d has only the third
	// server, so that one must not be the leader killed.
	leader := rulesLeader(t, nc, c)
	for leader == 2 {
		if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.KV_"+fleet.RulesBucket, nil, 5*time.Second); err != nil {
			t.Logf("step down: %v", err)
		}
		leader = rulesLeader(t, nc, c)
	}
	t.Logf("killing %s, the rules stream's leader", c.Nodes[leader].Server.Name())
	c.Nodes[leader].Stop()
	v3 := publish(fleetSet(t, "7"))
	for _, g := range gws {
		waitVersion(t, g, "installed", v3)
		wantMetric(t, g, fmt.Sprintf("portcullis_fleet_rules_version %d", v3))
	}
	survivor := c.Nodes[(leader+1)%3].URL
	out = fleetStatusUntil(t, survivor, func(out string) bool { return servingCount(out, v3) == 4 })
	if strings.Contains(out, "refused") {
		t.Errorf("a refusal is still reported after the good set:\n%s", out)
	}
	// The verdict header names the new version.
	if r := send(gws[2].smtp, message("prize again", "you have won a prize")); r.code != 250 {
		t.Fatalf("prize mail after v%d: %+v", v3, r)
	}
	got = sink.Wait(3, 30*time.Second)
	if len(got) != 3 || !strings.Contains(string(got[2].Data), fmt.Sprintf("RULESET_V%d", v3)) {
		t.Fatalf("the last relayed message does not name version %d:\n%+v", v3, got)
	}
	t.Logf("gateway fleet status:\n%s", out)
}

// servingCount counts the gateways in a fleet status output that serve
// version v and are ready.
func servingCount(out string, v uint64) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && strings.HasPrefix(f[0], "gw-") && f[1] == strconv.FormatUint(v, 10) && f[2] == "yes" {
			n++
		}
	}
	return n
}

// wantMetric checks that the gateway's /metrics has the line.
func wantMetric(t *testing.T, g *proc, line string) {
	t.Helper()
	if m := httpGet(t, "http://"+g.admin+"/metrics", 200); !strings.Contains(m, "\n"+line+"\n") {
		t.Errorf("%s: /metrics lacks %q", g.smtp, line)
	}
}

// rulesLeader returns the index of the cluster node leading the rules
// bucket's stream, asking until a leader is elected (20 s at most).
func rulesLeader(t *testing.T, nc *nats.Conn, c *natstest.Cluster) int {
	t.Helper()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var leader string
		st, err := js.Stream(ctx, "KV_"+fleet.RulesBucket)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = st.Info(ctx); err == nil && info.Cluster != nil {
				leader = info.Cluster.Leader
			}
		}
		cancel()
		for i, n := range c.Nodes {
			if leader != "" && n.Server != nil && n.Server.Name() == leader {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader of the rules stream: %v", err)
		}
		t.Logf("rules stream leader %q (%v); asking again", leader, err)
		<-time.After(100 * time.Millisecond) // an election takes a few heartbeats
	}
}

// fleetStatusUntil runs "gateway fleet status" until ok accepts its
// output (the statuses follow within an interval), for 20 s at most.
func fleetStatusUntil(t *testing.T, url string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := exec.Command(binary, "fleet", "status", "-nats", url).CombinedOutput()
		if err == nil && ok(string(out)) {
			return string(out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet status never as expected (%v):\n%s", err, out)
		}
		// A status is republished every 300 ms; ask again after one.
		<-time.After(300 * time.Millisecond)
	}
}

// Two gateways on one shared JetStream queue whose next hop refuses:
// the mail one accepted stays queued, and every node's fleet status, the
// console's /api/fleet and the other node's queue commands show the
// shared queue's real depth and entries; the status shows each node's
// clamd breaker, and the one whose clamd died as open.
func TestFleetSharedQueueDepth(t *testing.T) {
	buildBinary(t)
	n := natstest.Start(t)
	clam := testsvc.StartClamd(t, testsvc.ClamdOptions{})
	dir := t.TempDir()
	conf := func(name string) string {
		return writeFile(t, dir, name+".yaml", fmt.Sprintf("queue: {backend: jetstream, url: %q}\nfleet: {url: %q, node: %s, status_interval: 300ms}\n"+
			"av: {clamd: [%q], breaker: {failures: 1}}\n", n.URL, n.URL, name, clam.Addr))
	}
	a := startGateway(t, gatewayArgs(t, "127.0.0.1:1", "-config", conf("gw-a"))...)
	b := startGateway(t, gatewayArgs(t, "127.0.0.1:1", "-config", conf("gw-b"))...)
	for i := range 3 {
		if r := send(a.smtp, message(fmt.Sprint("queued ", i), "hello")); r.code != 250 {
			t.Fatalf("send %d: %+v\n%s", i, r, a.output())
		}
	}
	out := fleetStatusUntil(t, n.URL, func(out string) bool {
		depth := 0
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 6 && (f[0] == "gw-a" || f[0] == "gw-b") && f[3] == "3" && f[4] == "0" &&
				strings.HasSuffix(f[5], ":closed") {
				depth++
			}
		}
		return depth == 2
	})
	t.Logf("gateway fleet status:\n%s", out)

	// The console's fleet API on b says the same.
	dataB := filepath.Dir(field(b.lineWith("gateway started"), "token"))
	token, err := os.ReadFile(filepath.Join(dataB, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+b.admin+"/api/fleet", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var view struct {
		Nodes []fleet.NodeStatus `json:"nodes"`
	}
	err = json.NewDecoder(resp.Body).Decode(&view)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(view.Nodes) != 2 || view.Nodes[0].QueueDepth != 3 || view.Nodes[1].QueueDepth != 3 {
		t.Fatalf("GET /api/fleet on b: %d %v %+v", resp.StatusCode, err, view)
	}

	// b lists what a accepted, and bounces one of them for a.
	queueCmd := func(g *proc, data, verb string, args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command(binary, append([]string{"queue", verb, "-admin", g.admin, "-data", data}, args...)...).CombinedOutput()
		return string(out), err
	}
	list, err := queueCmd(b, dataB, "list")
	if err != nil {
		t.Fatalf("gateway queue list on b: %v\n%s", err, list)
	}
	var ids []string
	for _, l := range strings.Split(list, "\n") {
		if f := strings.Fields(l); len(f) > 2 && strings.Contains(l, "rcpt@example.net") {
			ids = append(ids, f[0])
		}
	}
	if len(ids) != 3 {
		t.Fatalf("gateway queue list on b shows %d of a's 3 entries:\n%s", len(ids), list)
	}
	if out, err := queueCmd(b, dataB, "bounce", ids[0]); err != nil {
		t.Fatalf("gateway queue bounce on b: %v\n%s", err, out)
	}
	dataA := filepath.Dir(field(a.lineWith("gateway started"), "token"))
	if out2, err := queueCmd(a, dataA, "show", ids[0]); err == nil || !strings.Contains(out2, "404 queue: no such entry") {
		t.Fatalf("a still shows the entry b bounced (%v):\n%s", err, out2)
	}

	// clamd dies: the next scan fails, the breaker opens, the node is
	// not ready and its status says why.
	clam.Stop()
	if r := send(a.smtp, message("clamd down", "hello")); r.code != 451 {
		t.Fatalf("with clamd down: %+v, want 451", r)
	}
	out = fleetStatusUntil(t, n.URL, func(out string) bool {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 6 && f[0] == "gw-a" && f[2] == "no" && strings.HasSuffix(f[5], ":open") {
				return true
			}
		}
		return false
	})
	t.Logf("gateway fleet status with clamd down:\n%s", out)
}
