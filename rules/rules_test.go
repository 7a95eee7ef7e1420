package rules

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

// writeRules writes a YAML rule file into a temporary directory.
func writeRules(t testing.TB, name, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustBuild(t *testing.T, cfg Config) *Set {
	t.Helper()
	s, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func eval(t *testing.T, s *Set, env filter.Envelope, raw string) *Evaluation {
	t.Helper()
	ev, err := s.Evaluate(context.Background(), filter.NewMessageBytes(env, []byte(raw), filter.Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func names(ev *Evaluation) []string {
	var out []string
	for _, s := range ev.Symbols {
		out = append(out, s.Name)
	}
	slices.Sort(out)
	return out
}

const kindRules = `
rules:
  - {name: SUBJ_FREE, kind: header, field: Subject, regex: '(?i)\bfree\b', score: 1}
  - {name: ANY_HDR_XMAILER, kind: header, regex: '(?m)^x-mailer: BulkBlaster', score: 1}
  - {name: HAS_XMAILER, kind: header, field: X-Mailer, test: exists, score: 0.1}
  - {name: NO_DATE, kind: header, field: Date, test: absent, score: 1}
  - {name: FROM_ADDR_EXAMPLE, kind: header, field: 'From:addr', regex: '@example\.com$', score: 1}
  - {name: FROM_NAME_BANK, kind: header, field: 'From:name', literal: 'Bank', nocase: true, score: 1}
  - {name: SUBJ_ENCODED_WORD, kind: header, field: Subject, literal: 'café offer', score: 1}
  - {name: BODY_VIAGRA, kind: body, regex: '(?i)\bviagra\b', score: 1}
  - {name: BODY_JOINED_LINES, kind: body, literal: 'limited time offer', score: 1}
  - {name: BODY_NOT_IN_SCRIPT, kind: body, literal: 'secretscript', score: 1}
  - {name: RAW_TAG, kind: rawbody, regex: '<b></b>', score: 1}
  - {name: FULL_BOUNDARY, kind: full, literal: 'boundary="XYZ"', score: 1}
  - {name: URI_EVIL, kind: uri, field: domain, domains: [evil.example], score: 1}
  - {name: URI_PATH, kind: uri, regex: '/win\.php', score: 1}
  - {name: URI_HOST_NUM, kind: uri, field: host, regex: '^\d+\.\d+\.\d+\.\d+$', score: 1}
  - {name: ATT_EXE, kind: attachment, regex: '(?i)\.exe$', score: 1}
  - {name: ATT_TYPE, kind: attachment, field: type, regex: '^exe$', score: 1}
  - {name: ATT_CT, kind: attachment, field: content-type, literal: application/octet-stream, score: 1}
  - {name: ENV_FROM_DOM, kind: envelope, field: from, domains: [spam.example], score: 1}
  - {name: ENV_RCPT, kind: envelope, field: rcpt, regex: '^postmaster@', score: 1}
  - {name: ENV_HELO, kind: envelope, field: helo, regex: '^\[', score: 1}
  - {name: ENV_IP, kind: envelope, field: ip, cidr: [198.51.100.0/24, '2001:db8::/32'], score: 1}
  - {name: META_TWO, kind: meta, expr: '(BODY_VIAGRA + URI_EVIL + ATT_EXE) >= 2', score: 1}
  - {name: META_NOT, kind: meta, expr: 'BODY_VIAGRA && !(NO_DATE || ENV_IP)', score: 1}
  - {name: __HELPER, kind: body, literal: viagra, nocase: true}
  - {name: META_HELPER, kind: meta, expr: __HELPER, score: 0.5}
`

const kindMessage = "From: \"My Bank\" <alerts@example.com>\r\n" +
	"To: you@example.net\r\n" +
	"Subject: =?utf-8?q?FREE_caf=C3=A9_offer?=\r\n" +
	"X-Mailer: BulkBlaster 3.0\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n" +
	"\r\n" +
	"--XYZ\r\n" +
	"Content-Type: text/html\r\n" +
	"\r\n" +
	"<p>Buy V<b></b>iagra now! This limited time\r\noffer ends soon.</p><script>secretscript</script>\r\n" +
	"<a href=\"http://www.evil.example/win.php\">win</a> <a href=\"http://203.0.113.5/x\">x</a>\r\n" +
	"--XYZ\r\n" +
	"Content-Type: application/octet-stream; name=\"setup.exe\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA4fug4AtAnNIbgBTM0hVGhpcyBwcm9ncmFtIGNhbm5vdCBiZSBydW4gaW4gRE9TIG1vZGUuDQ0KJAAAAAAAAAA=\r\n" +
	"--XYZ--\r\n"

func TestRuleKinds(t *testing.T) {
	file := writeRules(t, "kinds.yaml", kindRules)
	env := filter.Envelope{
		ClientIP: netip.MustParseAddr("198.51.100.20"),
		Helo:     "[198.51.100.20]",
		MailFrom: "bulk@mx.spam.example",
		RcptTo:   []string{"user@example.net", "postmaster@example.net"},
	}
	want := []string{"ANY_HDR_XMAILER", "ATT_CT", "ATT_EXE", "ATT_TYPE", "BODY_JOINED_LINES", "BODY_VIAGRA",
		"ENV_FROM_DOM", "ENV_HELO", "ENV_IP", "ENV_RCPT", "FROM_ADDR_EXAMPLE", "FROM_NAME_BANK", "HAS_XMAILER",
		"META_HELPER", "META_TWO", "NO_DATE", "RAW_TAG", "SUBJ_ENCODED_WORD", "SUBJ_FREE", "URI_EVIL", "URI_HOST_NUM", "URI_PATH", "FULL_BOUNDARY"}
	slices.Sort(want)
	for _, pre := range []bool{true, false} {
		s := mustBuild(t, Config{Files: []string{file}, NoPrefilter: !pre})
		ev := eval(t, s, env, kindMessage)
		if got := names(ev); !slices.Equal(got, want) {
			t.Errorf("prefilter %v:\n got %v\nwant %v", pre, got, want)
		}
		// Nothing hits a plain message with an empty envelope.
		ev = eval(t, s, filter.Envelope{}, "Date: Mon, 3 Mar 2025 09:00:00 +0000\r\nSubject: hi\r\n\r\nhello\r\n")
		if got := names(ev); len(got) != 0 {
			t.Errorf("prefilter %v: plain message hit %v", pre, got)
		}
	}
}

func TestInjectedTypeDetector(t *testing.T) {
	file := writeRules(t, "t.yaml", `rules: [{name: ATT_TYPE, kind: attachment, field: type, literal: custom-exe, score: 1}]`)
	var gotName string
	s := mustBuild(t, Config{Files: []string{file}, DetectType: func(head []byte, name string) string {
		gotName = name
		if strings.HasPrefix(string(head), "MZ") {
			return "custom-exe"
		}
		return "other"
	}})
	if ev := eval(t, s, filter.Envelope{}, kindMessage); !ev.Has("ATT_TYPE") {
		t.Fatalf("injected detector not used: %v", ev.Symbols)
	}
	if gotName != "setup.exe" {
		t.Fatalf("detector got name %q", gotName)
	}
}

func TestScoresAndThresholds(t *testing.T) {
	a := writeRules(t, "a.yaml", `
thresholds: {add-header: 1, quarantine: 2, reject: 3}
rules:
  - {name: A, kind: body, literal: alpha, score: 1}
  - {name: B, kind: body, literal: bravo, score: 1}
`)
	b := writeRules(t, "b.yaml", `scores: {A: 2.5}`)
	s := mustBuild(t, Config{Files: []string{a, b}})
	ev := eval(t, s, filter.Envelope{}, "Subject: x\r\n\r\nalpha\r\n")
	if ev.Score != 2.5 || ev.Action != filter.Quarantine {
		t.Fatalf("score %v action %v, want 2.5 quarantine", ev.Score, ev.Action)
	}
	ev = eval(t, s, filter.Envelope{}, "Subject: x\r\n\r\nalpha bravo\r\n")
	if ev.Action != filter.Reject {
		t.Fatalf("action %v, want reject", ev.Action)
	}
}

func TestMetaExpressions(t *testing.T) {
	vals := map[string]float64{"A": 1, "B": 0, "C": 1}
	for _, tc := range []struct {
		expr string
		want float64
	}{
		{"A && B", 0}, {"A || B", 1}, {"!B", 1}, {"!(A && C)", 0},
		{"(A + B + C) >= 2", 1}, {"A + B + C > 2", 0}, {"A * 3 - C == 2", 1},
		{"-A < 0", 1}, {"C / 0", 0}, {"A != C", 0}, {"A <= B", 0}, {"2 * (A + C) / 4 == 1", 1},
	} {
		n, err := parseMeta(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		ids := map[string]int{"A": 0, "B": 1, "C": 2}
		n.names(func(m *metaNode) { m.id = ids[m.name] })
		if got := n.eval([]float64{vals["A"], vals["B"], vals["C"]}); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{"", "A &&", "(A", "A B", "A & B", "1.2.3", strings.Repeat("(", 200) + "A" + strings.Repeat(")", 200)} {
		if _, err := parseMeta(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestNotReady(t *testing.T) {
	e := New(Config{})
	if err := e.Ready(); !errors.Is(err, filter.ErrNotReady) {
		t.Fatalf("Ready before load: %v", err)
	}
	if _, err := e.Check(context.Background(), filter.NewMessageBytes(filter.Envelope{}, []byte("\r\n"), filter.Limits{})); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Check before load: %v", err)
	}
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err) // an empty set is a set
	}
	if err := e.Ready(); err != nil {
		t.Fatalf("Ready after load: %v", err)
	}
}

func TestTruncated(t *testing.T) {
	file := writeRules(t, "t.yaml", `rules: [{name: TAIL, kind: body, literal: needle, score: 1}, {name: FULL_TAIL, kind: full, literal: needle, score: 1}]`)
	s := mustBuild(t, Config{Files: []string{file}, Limits: Limits{MaxScanBytes: 1000}})
	raw := "Subject: x\r\n\r\n" + strings.Repeat("hay ", 500) + "needle\r\n"
	ev := eval(t, s, filter.Envelope{}, raw)
	if ev.Has("TAIL") || ev.Has("FULL_TAIL") || !ev.Has(TruncatedSymbol) {
		t.Fatalf("a text over MaxScanBytes was not cut visibly: %v", ev.Symbols)
	}
}

func TestStats(t *testing.T) {
	file := writeRules(t, "s.yaml", `rules: [{name: HIT, kind: body, literal: alpha, score: 1}, {name: MISS, kind: body, literal: zulu, score: 1}]`)
	e := New(Config{Files: []string{file}})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		res, err := e.Check(context.Background(), filter.NewMessageBytes(filter.Envelope{}, []byte("Subject: x\r\n\r\nalpha\r\n"), filter.Limits{}))
		if err != nil || len(res.Symbols) != 1 || res.Symbols[0].Name != "HIT" {
			t.Fatalf("%v %v", res, err)
		}
	}
	stats := map[string]RuleStat{}
	for _, st := range e.Stats() {
		stats[st.Name] = st
	}
	if h := stats["HIT"]; h.Hits != 3 || h.Evaluations != 3 || h.Time <= 0 {
		t.Fatalf("HIT stats %+v", h)
	}
	// The prefilter kept MISS from running at all.
	if m := stats["MISS"]; m.Evaluations != 0 || m.Hits != 0 {
		t.Fatalf("MISS stats %+v", m)
	}
}

// TestTimeSample: a rule's first test is timed at weight 1, and the later
// ones one in timeSample at weight timeSample, so that the time stays an
// unbiased estimate; the counts stay exact.
func TestTimeSample(t *testing.T) {
	sc := &scratch{rng: 12345}
	st := &RuleStats{}
	if w, _ := sc.startTimer(st); w != 1 {
		t.Fatalf("first test weight %d, want 1", w)
	}
	sc.stopTimer(st, 1, nanos())
	const n = 80000
	timed := 0
	for range n {
		w, start := sc.startTimer(st)
		switch w {
		case 0:
		case timeSample:
			timed++
		default:
			t.Fatalf("weight %d", w)
		}
		sc.stopTimer(st, w, start)
	}
	if want := n / timeSample; timed < want*9/10 || timed > want*11/10 {
		t.Fatalf("%d of %d tests timed, want about %d", timed, n, want)
	}
	if got := st.Evaluations.Load(); got != n+1 {
		t.Fatalf("Evaluations %d, want %d", got, n+1)
	}
}
