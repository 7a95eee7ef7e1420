package drills

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// Incident 4: spam reports showed all zeros. A replayed corpus of known
// verdicts: /metrics counts exactly what happened, per action and per
// filter.
func TestIncident04(t *testing.T) {
	testsvc.Integration(t)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	cfg := baseConfig(t)
	cfg.Relay.Routes["*"] = routeTo(sink.Addr)
	rules := filepath.Join(t.TempDir(), "local.yaml")
	if err := os.WriteFile(rules, []byte("rules:\n  - name: DRILL_PROMO\n    kind: body\n    literal: \"limited offer for drill readers\"\n    score: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Rules.Files = []string{rules}
	g := start(t, cfg)

	enc := testdata(t, "archive/testdata/encrypted-headers.7z")
	zipped := exeInZip(t)
	type class struct {
		name, action, outcome string
		n                     int
		make                  func(id string) string
	}
	corpus := []class{
		{"clean", "accept", "queued", 20, func(id string) string { return text(id, "The minutes of Tuesday's meeting.") }},
		{"promo", "add-header", "queued", 5, func(id string) string { return text(id, "A limited offer for drill readers.") }},
		{"gtube", "reject", "refused", 6, func(id string) string { return text(id, gtube) }},
		{"exezip", "reject", "refused", 5, func(id string) string { return withAttachment(id, "invoice.zip", "application/zip", zipped) }},
		{"encrypted", "quarantine", "held", 4, func(id string) string {
			return withAttachment(id, "secret.7z", "application/x-7z-compressed", enc)
		}},
	}
	l := newLedger()
	var msgs []mail
	var names []string
	wantCode := map[string]int{}
	for _, c := range corpus {
		for i := range c.n {
			id := fmt.Sprintf("drill-04-%s-%d", c.name, i)
			names = append(names, id)
			msgs = append(msgs, mail{from: "sender@example.org", to: []string{"user@example.net"}, data: c.make(id)})
			wantCode[id] = map[string]int{"reject": 550}[c.action]
			if wantCode[id] == 0 {
				wantCode[id] = 250
			}
		}
	}
	for i, r := range sendAll(g.smtp, msgs, 6) {
		l.note(names[i], r)
		if r.code != wantCode[names[i]] {
			t.Errorf("%s: %v, want %d", names[i], r, wantCode[names[i]])
		}
	}
	sink.Wait(25, 30*time.Second)

	m := g.metrics()
	byAction := map[[2]string]float64{}
	for _, c := range corpus {
		byAction[[2]string{c.action, c.outcome}] += float64(c.n)
	}
	for k, want := range byAction {
		if got := metric(m, "portcullis_router_messages_total", "action="+k[0], "outcome="+k[1]); got != want {
			t.Errorf("router %s/%s = %v, want %v", k[0], k[1], got, want)
		}
	}
	total := float64(len(msgs))
	exact := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"portcullis_verdicts_total", []string{"stage=data", "action=accept"}, 20},
		{"portcullis_verdicts_total", []string{"stage=data", "action=add-header"}, 5},
		{"portcullis_verdicts_total", []string{"stage=data", "action=reject"}, 11},
		{"portcullis_verdicts_total", []string{"stage=data", "action=quarantine"}, 4},
		{"portcullis_rules_hits_total", []string{"rule=GTUBE"}, 6},
		{"portcullis_rules_hits_total", []string{"rule=DRILL_PROMO"}, 5},
		{"portcullis_archive_findings_total", []string{"kind=banned-type"}, 5},
		{"portcullis_archive_findings_total", []string{"kind=encrypted"}, 4},
		{"portcullis_queue_enqueued_total", nil, 25},
		{"portcullis_quarantine_held_total", nil, 4},
		{"portcullis_quarantine_size", nil, 4},
		{"portcullis_smtpd_sessions_total", nil, total},
	}
	for _, e := range exact {
		if got := metric(m, e.name, e.labels...); got != e.want {
			t.Errorf("%s%v = %v, want %v", e.name, e.labels, got, e.want)
		}
	}
	// Per filter: every message ran through each filter at DATA once.
	for _, f := range []string{"archive", "rules"} {
		if got := metric(m, "portcullis_filter_seconds_count", "filter="+f, "stage=data"); got != total {
			t.Errorf("portcullis_filter_seconds_count{filter=%s,stage=data} = %v, want %v", f, got, total)
		}
	}
	if t.Failed() {
		for s, v := range m {
			if len(s) > 10 && s[:11] == "portcullis_" {
				t.Logf("%s %v", s, v)
			}
		}
	}
	held := g.held("")
	r := account(l, tally(sink), heldSet(held), nil)
	r.Incident, r.Fault = 4, "replayed corpus of 40 known verdicts"
	if r.Delivered != 25 || r.Held != 4 {
		t.Errorf("delivered %d (want 25), held %d (want 4)", r.Delivered, r.Held)
	}
	report(t, r)
}
