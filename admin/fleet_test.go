package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

// fleetFixture is a real fleet on a NATS server: two rule set versions
// published and three nodes reporting through fleet.Report — gw-a
// serves the newest and is healthy, gw-b refused it and serves the older
// one and its clamd's signature version is suspect fleet-wide, gw-c has none yet and its ICAP engine's breaker is open. It
// returns the Config.Fleet reader and the newest version.
func fleetFixture(t *testing.T) (func(context.Context) (fleet.View, error), uint64) {
	t.Helper()
	n := natstest.Start(t)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rule := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(rule, []byte("rules:\n  - {name: WON, kind: body, literal: you have won, score: 6}\n"), 0o644)
	var versions []uint64
	for range 2 {
		rs, err := fleet.Bundle(rule)
		if err != nil {
			t.Fatal(err)
		}
		rs.Publisher = "rulecheck@build-1"
		v, err := fleet.Publish(ctx, js, fleet.Bucket{}, rs)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	v1, v2 := versions[0], versions[1]
	clamd := fleet.EngineHealth{Name: "clamd-1", State: "closed", Version: "ClamAV 1.4.2/27480"}
	nodes := map[string]fleet.NodeStatus{
		"gw-a": {RulesVersion: v2, RulesDigest: "sha256:0a1b2c3d4e5f60718293a4b5", Ready: true, QueueDepth: 12, QueueHeld: 1,
			Engines: []fleet.EngineHealth{clamd, {Name: "icap-1", State: "closed", Version: "c-icap 0.6"}},
			Zones:   []fleet.ZoneStatus{{Zone: "zen", Version: 5, Entries: 1200}}},
		"gw-b": {RulesVersion: v1, RulesDigest: "sha256:99887766554433221100aabb", Ready: true, QueueDepth: 12, QueueHeld: 1,
			Refused: &fleet.Refusal{Version: v2, Reason: "rules: regression gate: spam.eml: want add-header, got accept"},
			Engines: []fleet.EngineHealth{{Name: "clamd-1", State: "closed", Version: "ClamAV 1.4.2/27481", FleetSuspect: true}},
			Zones: []fleet.ZoneStatus{{Zone: "zen", Version: 4, Entries: 1180,
				Refused: &fleet.Refusal{Version: 5, Reason: "zone: line 7: bad address"}}}},
		"gw-c": {NotReady: "fleet: not ready: no rule set loaded yet", QueueDepth: 12, QueueHeld: 1,
			Engines: []fleet.EngineHealth{clamd, {Name: "icap-1", State: "open"}}},
	}
	for id, st := range nodes {
		go fleet.Report(ctx, fleet.ReporterConfig{JetStream: js, Node: id, Interval: time.Hour,
			Status: func() fleet.NodeStatus { return st }})
	}
	read := func(ctx context.Context) (fleet.View, error) {
		return fleet.ReadView(ctx, js, fleet.Bucket{}, fleet.Bucket{})
	}
	// Each reporter publishes once at its start.
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := read(ctx)
		if err == nil && len(v.Nodes) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fleet never showed 3 nodes: %+v %v", v, err)
		}
		<-time.After(20 * time.Millisecond)
	}
	return read, v2
}

func TestConsoleFleet(t *testing.T) {
	read, v2 := fleetFixture(t)
	e := newEnv(t, func(c *Config) { c.Fleet = read })

	// The page, for an admin: each node's version, readiness, queue and
	// engines, and what is wrong.
	b := e.browser()
	b.login("ops", "ops-pw")
	resp, body := b.get("/quarantine/fleet")
	if resp.StatusCode != 200 {
		t.Fatalf("fleet page: %d %s", resp.StatusCode, body)
	}
	for _, want := range []string{
		fmt.Sprintf("version %d</strong>", v2), "by rulecheck@build-1",
		`<strong id="nodes">3</strong> nodes`, `<strong id="ready">2</strong> ready`,
		`<strong id="current">1</strong> serve version`, `<strong id="refusing">1</strong> refused`,
		`<strong id="troubled">2</strong> with an engine in trouble`,
		`<span class="badge bad" title="signature version ClamAV 1.4.2/27481 doubted across the fleet">clamd-1: suspect update (fleet-wide)</span>`,
		`data-node="gw-b"`, `behind</span>`, fmt.Sprintf("refused version %d: rules: regression gate: spam.eml", v2),
		"not ready</span>", "no rule set loaded yet", `data-depth="12"`, "(1 held)",
		`<span class="badge bad" title="">icap-1: open</span>`, `<span class="badge ok" title="ClamAV 1.4.2/27480">clamd-1: closed</span>`,
		`id="nav-fleet" aria-current="page"`,
		`zen: version 5</span>`, `<span class="badge warn" title="1180 entries ">zen: version 4</span>`,
		"zone zen refused version 5: zone: line 7: bad address",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("fleet page lacks %q", want)
		}
	}
	if strings.Count(body, "<tr id=\"node-") != 3 {
		t.Errorf("fleet page: %d node rows, want 3", strings.Count(body, "<tr id=\"node-"))
	}
	// The list links to it for an admin.
	if _, body := b.get("/quarantine"); !strings.Contains(body, `href="/quarantine/fleet"`) {
		t.Error("the list does not link to the fleet page")
	}

	// The API.
	resp, raw := e.api("GET", "/api/fleet", "", nil)
	type apiFleetResp struct {
		Rules *apiFleetRules     `json:"rules"`
		Nodes []fleet.NodeStatus `json:"nodes"`
	}
	got := decode[apiFleetResp](t, raw)
	if resp.StatusCode != 200 || got.Rules == nil || got.Rules.Version != v2 || len(got.Nodes) != 3 ||
		got.Nodes[1].Node != "gw-b" || got.Nodes[1].Refused == nil || got.Nodes[2].Engines[1].State != "open" ||
		!got.Nodes[1].Engines[0].FleetSuspect || got.Nodes[0].Engines[0].FleetSuspect {
		t.Fatalf("GET /api/fleet: %d %s", resp.StatusCode, raw)
	}

	// Not for users scoped to recipients, nor without a login or token.
	a := e.browser()
	a.login("alice", "alice-pw")
	if resp, _ := a.get("/quarantine/fleet"); resp.StatusCode != 403 {
		t.Errorf("fleet page for alice: %d, want 403", resp.StatusCode)
	}
	if _, body := a.get("/quarantine"); strings.Contains(body, "/quarantine/fleet") {
		t.Error("alice's list links to the fleet page")
	}
	if resp, _ := e.browser().get("/quarantine/fleet"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("fleet page without a login: %d, want a redirect to the login", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/fleet", nil)
	req.SetBasicAuth("alice", "alice-pw")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("GET /api/fleet as alice: %v %v, want 403", resp.StatusCode, err)
	}
	if resp, _ := e.api("GET", "/api/fleet", "-", nil); resp.StatusCode != 401 {
		t.Errorf("GET /api/fleet without a token: %d, want 401", resp.StatusCode)
	}

	// No fleet, or one that cannot be read: 503, saying why.
	none := newEnv(t)
	nb := none.browser()
	nb.login("ops", "ops-pw")
	if resp, _ := nb.get("/quarantine/fleet"); resp.StatusCode != 503 {
		t.Errorf("fleet page without a fleet: %d, want 503", resp.StatusCode)
	}
	if resp, _ := none.api("GET", "/api/fleet", "", nil); resp.StatusCode != 503 {
		t.Errorf("GET /api/fleet without a fleet: %d, want 503", resp.StatusCode)
	}
	down := newEnv(t, func(c *Config) {
		c.Fleet = func(ctx context.Context) (fleet.View, error) {
			return fleet.View{}, errors.New("nats: no servers available")
		}
	})
	db := down.browser()
	db.login("ops", "ops-pw")
	if resp, body := db.get("/quarantine/fleet"); resp.StatusCode != 503 || !strings.Contains(body, "no servers available") {
		t.Errorf("fleet page with NATS down: %d, want 503 and the reason", resp.StatusCode)
	}
}

// TestBrowserFleet drives headless Chromium to the fleet page from the
// list, reads each node's row as the browser renders it, and takes the
// desktop and phone screenshots of docs/img.
func TestBrowserFleet(t *testing.T) {
	testsvc.Integration(t)
	exe := testsvc.LookPath(t, "chromium", "apt-get install chromium", "/usr/bin")
	start := time.Now()
	read, v2 := fleetFixture(t)
	// The real clock: the nodes report their statuses in real time.
	e := newEnv(t, func(c *Config) { c.Fleet, c.Now = read, time.Now })
	e.hold("ap@supplier.example", []string{"alice@example.net"}, plainMsg("Quarterly statement", "EICAR-LIKE"))
	dir := screenshotDir(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
	}
	root, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	alloc, cancel := chromedp.NewExecAllocator(root, opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		must("text of "+sel, err)
		return strings.Join(strings.Fields(s), " ")
	}
	shot := func(name string, width, height int64) {
		t.Helper()
		must("viewport", chromedp.Do(ctx, chromedp.EmulateViewport(width, height)))
		b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		must("screenshot", err)
		cfg, err := png.DecodeConfig(bytes.NewReader(b))
		if err != nil || int64(cfg.Width) != width || int64(cfg.Height) != height {
			t.Fatalf("screenshot %s: %v, %dx%d", name, err, cfg.Width, cfg.Height)
		}
		must("saving a screenshot", os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}

	must("open", chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/quarantine")))
	_, err := chromedp.RunResponse(ctx, chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), testToken),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)))
	must("log in", err)
	must("the list", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("table.held"))))
	_, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("nav-fleet")))
	must("open the fleet page", err)
	must("the fleet table", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("table.fleet"))))

	if got, want := text("#published"), fmt.Sprintf("Published rules: version %d ", v2); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, " by rulecheck@build-1") {
		t.Errorf("published: %q, want %q... by rulecheck@build-1", got, want)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("table.fleet tbody tr")].map(r => r.dataset.node)`))
	must("rows", err)
	if strings.Join(rows, ",") != "gw-a,gw-b,gw-c" {
		t.Fatalf("rows %v, want gw-a, gw-b, gw-c", rows)
	}
	for sel, want := range map[string]string{
		"#node-gw-a td.rules":   fmt.Sprintf("%d sha256:0a1b2c3d4e5f", v2),
		"#node-gw-a td.ready":   "ready",
		"#node-gw-a td.queue":   "12 (1 held)",
		"#node-gw-a td.engines": "clamd-1: closed icap-1: closed",
		"#node-gw-b td.rules":   fmt.Sprintf("%d behind sha256:998877665544", v2-1),
		"#node-gw-b td.notes":   fmt.Sprintf("refused version %d: rules: regression gate: spam.eml: want add-header, got accept zone zen refused version 5: zone: line 7: bad address", v2),
		"#node-gw-b td.engines": "clamd-1: suspect update (fleet-wide)",
		"#node-gw-c td.rules":   "none behind",
		"#node-gw-c td.ready":   "not ready fleet: not ready: no rule set loaded yet",
		"#node-gw-c td.engines": "clamd-1: closed icap-1: open",
		"#node-gw-a td.zones":   "zen: version 5",
		"#node-gw-b td.zones":   "zen: version 4",
		"#node-gw-c td.zones":   "none",
	} {
		if got := text(sel); got != want {
			t.Errorf("%s: %q, want %q", sel, got, want)
		}
	}
	// The phone layout turns rows into cards: no header row shown.
	shot("console-fleet-desktop.png", 1280, 640)
	shot("console-fleet-phone.png", 390, 844)
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("table.fleet thead")).display`))
	must("the phone layout", err)
	if hidden != "none" {
		t.Errorf("at phone width the table header shows (display %s)", hidden)
	}
	if d := time.Since(start); d > 45*time.Second {
		t.Errorf("the fleet browser test took %v; it must stay under 45 s", d)
	}
	t.Logf("fleet browser test took %v; screenshots in %s", time.Since(start), dir)
}

// What nodes report is shown inert and bounded: a status is written by
// any process with access to the bucket.
func TestConsoleFleetHostile(t *testing.T) {
	long := strings.Repeat("x", 1000)
	e := newEnv(t, func(c *Config) {
		c.Fleet = func(context.Context) (fleet.View, error) {
			return fleet.View{Nodes: []fleet.NodeStatus{{
				Node:     `<script>window.__pwned=1</script>`,
				NotReady: "rules \u202Egnidaol " + long,
				Refused:  &fleet.Refusal{Version: 9, Reason: `<img src=x onerror=alert(1)>` + long},
				Engines:  []fleet.EngineHealth{{Name: `<b>clamd</b>`, State: "open", Version: `"><script>`}},
				Zones:    []fleet.ZoneStatus{{Zone: "zen\u200B", Version: 1}},
			}}}, nil
		}
	})
	b := e.browser()
	b.login("ops", "ops-pw")
	resp, body := b.get("/quarantine/fleet")
	if resp.StatusCode != 200 {
		t.Fatalf("fleet page: %d", resp.StatusCode)
	}
	for _, bad := range []string{"<script>window", "<img src=x", "<b>clamd", `"><script>`, "\u202E", "\u200B", strings.Repeat("x", 301)} {
		if strings.Contains(body, bad) {
			t.Errorf("the fleet page contains %q as is", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;window.__pwned=1&lt;/script&gt;", `<span class="ctl">U+202E</span>`, `zen<span class="ctl">U+200B</span>`,
		"&lt;img src=x onerror=alert(1)&gt;", "&lt;b&gt;clamd&lt;/b&gt;: open", strings.Repeat("x", 250) + "…"} {
		if !strings.Contains(body, want) {
			t.Errorf("the fleet page lacks %q", want)
		}
	}
}
