package drills

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

const cnnRules = `rules:
  - name: DRILL_CNN_ALERT
    kind: header
    field: Subject
    regex: '(?i)cnn alert'
    score: 8
  - name: DRILL_CNN_LINK
    kind: body
    literal: "cnn-breaking.example"
    score: 8
corpus:
  - file: corpus/cnn.eml
    expect: reject
  - file: corpus/ham.eml
    expect: accept
`

// Incident 9: a rule update disabled other rules and let junk through.
// SIGHUP with a rule file whose new rule offsets the CNN rules (flipping a
// regression sample's verdict) is refused: the old set keeps serving, the
// log and a metric say why. A harmless update afterwards is taken.
func TestIncident09(t *testing.T) {
	testsvc.Integration(t)
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "corpus"), 0o700)
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cnn := func(id string) string {
		return "From: news@cnn-breaking.example\r\nTo: rcpt@example.net\r\nSubject: CNN Alert: " + id + "\r\n\r\nRead at http://cnn-breaking.example/story\r\n"
	}
	write("corpus/cnn.eml", cnn("sample"))
	write("corpus/ham.eml", text("ham", "Lunch on Friday?"))
	write("local.yaml", cnnRules)
	cfg := baseConfig(t)
	cfg.Relay.Routes["*"] = routeTo(sink.Addr)
	cfg.Rules.Files = []string{filepath.Join(dir, "local.yaml")}
	g := start(t, cfg)

	l := newLedger()
	try := func(id, data string, want int) {
		t.Helper()
		r := send(g.smtp, mail{from: "sender@example.org", to: []string{"user@example.net"}, data: data})
		l.note(id, r)
		if r.code != want {
			t.Errorf("%s: %v, want %d", id, r, want)
		}
	}
	try("drill-09-cnn-before", cnn("drill-09-cnn-before"), 550)
	try("drill-09-ham-before", text("drill-09-ham-before", "Lunch on Friday?"), 250)

	// The bad update: a "whitelist" rule that offsets every CNN rule.
	write("local.yaml", strings.Replace(cnnRules, "corpus:", `  - name: DRILL_NEWS_WHITELIST
    kind: header
    field: From
    regex: '@cnn-breaking\.example'
    score: -20
corpus:`, 1))
	g.signal(syscall.SIGHUP)
	line, ok := g.waitLine("reload refused", 20*time.Second)
	if !ok {
		t.Fatalf("no refusal logged:\n%s", g.output())
	}
	if !strings.Contains(line, "regression gate") || !strings.Contains(line, "cnn.eml") {
		t.Errorf("the refusal does not say which sample flipped: %s", line)
	}
	try("drill-09-cnn-after-refused", cnn("drill-09-cnn-after-refused"), 550)
	try("drill-09-ham-after-refused", text("drill-09-ham-after-refused", "Lunch on Friday?"), 250)
	m := g.metrics()
	if v := metric(m, "portcullis_gateway_reloads_total", "result=refused"); v != 1 {
		t.Errorf("portcullis_gateway_reloads_total{refused} = %v, want 1", v)
	}
	if v := metric(m, "portcullis_rules_reloads_total", "result=failed"); v != 1 {
		t.Errorf("portcullis_rules_reloads_total{failed} = %v, want 1", v)
	}

	// A harmless update is taken: a new rule, the corpus unchanged.
	write("local.yaml", strings.Replace(cnnRules, "corpus:", `  - name: DRILL_WSJ_SCAM
    kind: body
    literal: "wall street subscription renewal"
    score: 20
corpus:`, 1))
	g.signal(syscall.SIGHUP)
	if _, ok := g.waitLine("rules reloaded", 20*time.Second); !ok {
		t.Fatalf("the good update was not taken:\n%s", g.output())
	}
	try("drill-09-wsj", text("drill-09-wsj", "Your wall street subscription renewal is due"), 550)
	try("drill-09-cnn-last", cnn("drill-09-cnn-last"), 550)
	try("drill-09-ham-last", text("drill-09-ham-last", "Lunch on Friday?"), 250)
	if v := metric(g.metrics(), "portcullis_gateway_reloads_total", "result=ok"); v != 1 {
		t.Errorf("portcullis_gateway_reloads_total{ok} = %v, want 1", v)
	}
	sink.Wait(3, 20*time.Second)
	r := account(l, tally(sink), nil, nil)
	r.Incident, r.Fault = 9, "SIGHUP with a rule that offsets the CNN rules (flips a regression sample)"
	report(t, r)
}
