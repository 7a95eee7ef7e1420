package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

func TestHealthReadyMetrics(t *testing.T) {
	var ready error = errors.New("rules not loaded")
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("portcullis_up 1\n"))
	})
	e := newEnv(t, func(c *Config) {
		c.Ready = func(context.Context) error { return ready }
		c.MetricsHandler = metrics
	})
	resp, body := e.api("GET", "/healthz", "-", nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
	resp, body = e.api("GET", "/readyz", "-", nil)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "rules not loaded") {
		t.Fatalf("readyz while not ready: %d %q", resp.StatusCode, body)
	}
	ready = nil
	if resp, body = e.api("GET", "/readyz", "-", nil); resp.StatusCode != 200 {
		t.Fatalf("readyz when ready: %d %q", resp.StatusCode, body)
	}
	resp, body = e.api("GET", "/metrics", "-", nil)
	if resp.StatusCode != 200 || string(body) != "portcullis_up 1\n" {
		t.Fatalf("metrics: %d %q", resp.StatusCode, body)
	}
	for _, hd := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"} {
		if resp.Header.Get(hd) == "" {
			t.Errorf("no %s header", hd)
		}
	}

	// Unconfigured parts: no metrics handler is a 404, no quarantine a 503.
	bare, err := New(Config{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 404, "/api/quarantine": 503} {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		bare.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("bare %s: %d, want %d", path, rec.Code, want)
		}
	}
}

func TestAPIRequiresToken(t *testing.T) {
	e := newEnv(t)
	id := e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("hi", "body"))
	routes := []struct{ method, path string }{
		{"GET", "/api/quarantine"},
		{"GET", "/api/quarantine/" + string(id)},
		{"GET", "/api/quarantine/" + string(id) + "/raw"},
		{"POST", "/api/quarantine/" + string(id) + "/release"},
		{"DELETE", "/api/quarantine/" + string(id)},
		{"POST", "/api/quarantine/rescan"},
		{"GET", "/api/rescans/x"},
	}
	for _, tok := range []string{"-", "wrong-token-0123456789", testToken + "x", strings.ToUpper(testToken)} {
		for _, rt := range routes {
			resp, body := e.api(rt.method, rt.path, tok, nil)
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with token %q: %d %s", rt.method, rt.path, tok, resp.StatusCode, body)
			}
		}
	}
	if len(e.held()) != 1 || len(e.sink.released()) != 0 {
		t.Fatal("a refused request changed the quarantine")
	}
	if !strings.Contains(e.log.String(), "no valid bearer token") {
		t.Error("refusals are not logged")
	}
}

type apiList struct {
	Items []struct {
		ID      string          `json:"id"`
		From    string          `json:"from"`
		To      []string        `json:"to"`
		Subject string          `json:"subject"`
		Symbols []filter.Symbol `json:"symbols"`
	} `json:"items"`
	Matched int    `json:"matched"`
	Next    string `json:"next"`
	Symbols []struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	} `json:"symbols"`
	Engines []struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	} `json:"engines"`
}

func (l apiList) subjects() []string {
	var out []string
	for _, it := range l.Items {
		out = append(out, it.Subject)
	}
	return out
}

func TestAPIListFilters(t *testing.T) {
	e := newEnv(t)
	rules := filter.Symbol{Name: "RULE_SPAMMY", Score: 6, Detail: "rules: spammy words"}
	av2 := filter.Symbol{Name: "AV_INFECTED", Score: 10, Detail: "sophie: Troj.X in 1.2"}
	e.hold("a@example.org", []string{"alice@example.net"}, plainMsg("one", "x"))
	e.advance(time.Hour)
	start := e.now()
	e.hold("b@example.org", []string{"bob@example.net"}, plainMsg("two", "x"), rules)
	e.hold("c@example.org", []string{"alice@example.net", "bob@example.net"}, plainMsg("three invoice", "x"), av2)
	e.hold("d@example.org", []string{"carol@example.net"}, plainMsg("four", "x"))

	list := func(q string) apiList {
		t.Helper()
		resp, body := e.api("GET", "/api/quarantine?"+q, "", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("list %q: %d %s", q, resp.StatusCode, body)
		}
		return decode[apiList](t, body)
	}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"", []string{"four", "three invoice", "two", "one"}}, // newest first
		{"symbol=AV_INFECTED", []string{"four", "three invoice", "one"}},
		{"symbol=RULE_*", []string{"two"}},
		{"recipient=ALICE@example.net", []string{"three invoice", "one"}},
		{"sender=b@example.org", []string{"two"}},
		{"engine=clamd-1", []string{"four", "one"}},
		{"engine=sophie", []string{"three invoice"}},
		{"text=invoice", []string{"three invoice"}},
		{"text=carol", []string{"four"}},
		{"text=spammy", []string{"two"}},
		{"since=" + url.QueryEscape(start.Format(time.RFC3339)), []string{"four", "three invoice", "two"}},
		{"until=" + url.QueryEscape(start.Format(time.RFC3339)), []string{"one"}},
		{"since=30m", []string{"four", "three invoice", "two"}}, // a duration back from the clock
		{"since=1d&symbol=AV_INFECTED&recipient=bob@example.net", []string{"three invoice"}},
	} {
		l := list(c.q)
		if got := l.subjects(); !slices.Equal(got, c.want) || l.Matched != len(c.want) {
			t.Errorf("%q: %v (matched %d), want %v", c.q, got, l.Matched, c.want)
		}
	}

	// Paging: two a page, newest first, the cursor continues.
	p1 := list("limit=2")
	p2 := list("limit=2&before=" + p1.Next)
	if !slices.Equal(p1.subjects(), []string{"four", "three invoice"}) || !slices.Equal(p2.subjects(), []string{"two", "one"}) ||
		p2.Next != "" || p1.Matched != 4 || p2.Matched != 4 {
		t.Fatalf("pages: %v next %q, %v next %q", p1.subjects(), p1.Next, p2.subjects(), p2.Next)
	}
	if l := list(""); len(l.Symbols) != 2 || l.Symbols[0] != (struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}{"AV_INFECTED", 3}) {
		t.Errorf("symbol counts: %+v", l.Symbols)
	}
	if l := list(""); len(l.Engines) != 2 || l.Engines[0].Name != "clamd-1" || l.Engines[0].Count != 2 || l.Engines[1].Name != "sophie" {
		t.Errorf("engine counts: %+v", l.Engines)
	}

	for _, bad := range []string{"since=yesterday", "limit=0", "limit=501", "before=../x", "text=" + strings.Repeat("x", 513)} {
		if resp, body := e.api("GET", "/api/quarantine?"+bad, "", nil); resp.StatusCode != 400 {
			t.Errorf("%q: %d %s", bad, resp.StatusCode, body)
		}
	}
}

// TestListScanLimit: a quarantine bigger than MaxScan is listed within
// the first MaxScan records, and the answer says so.
func TestListScanLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxScan = 3 })
	for i := range 5 {
		e.hold("a@example.org", []string{"alice@example.net"}, plainMsg(string(rune('a'+i)), "x"))
	}
	resp, body := e.api("GET", "/api/quarantine", "", nil)
	l := decode[struct {
		Matched   int  `json:"matched"`
		Truncated bool `json:"truncated"`
	}](t, body)
	if resp.StatusCode != 200 || l.Matched != 3 || !l.Truncated {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	b := e.browser()
	b.login("", testToken)
	if _, page := b.get("/quarantine"); !strings.Contains(page, "covers the oldest 3; narrow it with a since filter") {
		t.Error("the console does not say the listing stopped at MaxScan")
	}
}

const mimeMsg = "From: s@example.org\r\nTo: alice@example.net\r\nSubject: =?utf-8?q?R=C3=A9sum=C3=A9?=\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello there\r\n" +
	"--b\r\nContent-Type: text/html\r\n\r\n<p onclick=x>hi</p>\r\n" +
	"--b\r\nContent-Type: application/zip; name=\"a.zip\"\r\nContent-Disposition: attachment; filename=\"a.zip\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n\r\nUEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==\r\n--b--\r\n"

func TestAPIMessageRawReleaseDelete(t *testing.T) {
	e := newEnv(t)
	id := e.hold("s@example.org", []string{"alice@example.net"}, mimeMsg)
	other := e.hold("s@example.org", []string{"bob@example.net"}, plainMsg("other", "x"))

	resp, body := e.api("GET", "/api/quarantine/"+string(id), "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("get: %d %s", resp.StatusCode, body)
	}
	m := decode[struct {
		ID      string     `json:"id"`
		Subject string     `json:"subject"`
		Headers []field    `json:"headers"`
		Parts   []partView `json:"parts"`
	}](t, body)
	if m.ID != string(id) || m.Subject != "Résumé" || len(m.Headers) != 5 || len(m.Parts) != 4 {
		t.Fatalf("message: %s", body)
	}
	zip := m.Parts[3]
	if zip.Path != "3" || zip.Type != "application/zip" || !zip.Attachment || len(zip.Names) != 1 || zip.Names[0] != "a.zip" || zip.Size != 22 {
		t.Errorf("attachment: %+v", zip)
	}
	if m.Parts[1].Text != "hello there" || !m.Parts[2].HTML || !strings.Contains(m.Parts[2].Text, "<p onclick=x>") {
		t.Errorf("text parts: %+v %+v", m.Parts[1], m.Parts[2])
	}

	resp, body = e.api("GET", "/api/quarantine/"+string(id)+"/raw", "", nil)
	if resp.StatusCode != 200 || string(body) != mimeMsg || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="quarantine-`+string(id)+`.eml"` {
		t.Fatalf("raw: %d %v", resp.StatusCode, resp.Header)
	}

	for _, p := range []string{"/api/quarantine/nope", "/api/quarantine/a%2F..%2Fb", "/api/quarantine/" + strings.Repeat("a", 65)} {
		if resp, _ := e.api("GET", p, "", nil); resp.StatusCode != 404 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}

	resp, body = e.api("POST", "/api/quarantine/"+string(id)+"/release", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("release: %d %s", resp.StatusCode, body)
	}
	rel := decode[map[string]string](t, body)
	got := e.sink.released()
	if rel["id"] != string(id) || rel["queue_id"] == "" || len(got) != 1 || string(got[0].Raw) != mimeMsg ||
		!slices.Equal(got[0].Env.RcptTo, []string{"alice@example.net"}) {
		t.Fatalf("release: %v, sink %d", rel, len(got))
	}
	if resp, _ := e.api("POST", "/api/quarantine/"+string(id)+"/release", "", nil); resp.StatusCode != 404 {
		t.Errorf("second release: %d", resp.StatusCode)
	}
	if resp, body := e.api("DELETE", "/api/quarantine/"+string(other), "", nil); resp.StatusCode != 200 {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	if len(e.held()) != 0 || len(e.sink.released()) != 1 {
		t.Fatalf("after delete: %d held, %d released", len(e.held()), len(e.sink.released()))
	}
	if resp, _ := e.api("DELETE", "/api/quarantine/"+string(other), "", nil); resp.StatusCode != 404 {
		t.Errorf("second delete: %d", resp.StatusCode)
	}
	logs := e.log.String()
	for _, want := range []string{"admin: released", "admin: deleted", "who=admin-token", "admin: raw message downloaded"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

type apiJob struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Total     int    `json:"total"`
	Processed int    `json:"processed"`
	Released  int    `json:"released"`
	Kept      int    `json:"kept"`
	Failed    int    `json:"failed"`
}

func TestAPIRescan(t *testing.T) {
	e := newEnv(t)
	eicar := plainMsg("virus?", "EICAR-LIKE")
	for range 3 {
		e.hold("s@example.org", []string{"alice@example.net"}, eicar)
	}
	e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("spam", "x"),
		filter.Symbol{Name: "RULE_X", Score: 6, Detail: "rules: x"})

	// Still dirty: kept, with the run's verdict.
	resp, body := e.api("POST", "/api/quarantine/rescan?engine=clamd-1", "", nil)
	j := decode[apiJob](t, body)
	if resp.StatusCode != 200 || j.State != "done" || j.Total != 3 || j.Processed != 3 || j.Kept != 3 || j.Released != 0 {
		t.Fatalf("dirty re-scan: %d %s", resp.StatusCode, body)
	}
	if !strings.HasPrefix(resp.Header.Get("Location"), "/api/rescans/") {
		t.Errorf("Location %q", resp.Header.Get("Location"))
	}

	// The vendor fixed the signature: released; the spam (another
	// engine's symbol) is not touched.
	e.dirty.Store(false)
	open := e.holdScans()
	resp, body = e.api("POST", "/api/quarantine/rescan", "", strings.NewReader("engine=clamd-1&async=true"))
	j = decode[apiJob](t, body)
	if resp.StatusCode != 202 || j.State != "running" || j.Total != 3 {
		t.Fatalf("async re-scan: %d %s", resp.StatusCode, body)
	}
	// A second one while the first runs is refused.
	if resp, body := e.api("POST", "/api/quarantine/rescan?async=true", "", nil); resp.StatusCode != 409 {
		t.Errorf("second re-scan: %d %s", resp.StatusCode, body)
	}
	resp, body = e.api("GET", "/api/rescans/"+j.ID, "", nil)
	if st := decode[apiJob](t, body); resp.StatusCode != 200 || st.State != "running" || st.Processed != 0 {
		t.Errorf("progress before the first scan: %s", body)
	}
	open()
	e.waitJob(j.ID)
	resp, body = e.api("GET", "/api/rescans/"+j.ID, "", nil)
	if st := decode[apiJob](t, body); resp.StatusCode != 200 || st.State != "done" || st.Processed != 3 || st.Released != 3 {
		t.Fatalf("report: %s", body)
	}
	if n := len(e.sink.released()); n != 3 {
		t.Fatalf("released %d", n)
	}
	if h := e.held(); len(h) != 1 || h[0].Symbols[0].Name != "RULE_X" {
		t.Fatalf("left: %+v", h)
	}
	if resp, _ := e.api("GET", "/api/rescans/nope", "", nil); resp.StatusCode != 404 {
		t.Errorf("unknown job: %d", resp.StatusCode)
	}

	// No pipeline: 503.
	e2 := newEnv(t, func(c *Config) { c.Pipeline = nil })
	if resp, _ := e2.api("POST", "/api/quarantine/rescan", "", nil); resp.StatusCode != 503 {
		t.Errorf("no pipeline: %d", resp.StatusCode)
	}
}

// TestRescanCloseCancels: Close stops a running re-scan, which reports
// itself cancelled and leaves the rest held.
func TestRescanCloseCancels(t *testing.T) {
	e := newEnv(t)
	for range 2 {
		e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("v", "EICAR-LIKE"))
	}
	open := e.holdScans()
	_, body := e.api("POST", "/api/quarantine/rescan?async=1", "", nil)
	j := decode[apiJob](t, body)
	done := make(chan struct{})
	go func() { e.h.Close(); close(done) }()
	<-e.h.ctx.Done()
	open() // the scan in flight finishes, its context cancelled
	<-done
	st := e.h.jobs.get(j.ID).status()
	if st.State != "cancelled" || st.Processed > 1 {
		t.Fatalf("%+v", st)
	}
	if len(e.held()) != 2 {
		t.Fatalf("held %d", len(e.held()))
	}
	// After Close no re-scan starts.
	if resp, body := e.api("POST", "/api/quarantine/rescan", "", nil); resp.StatusCode != 503 || !strings.Contains(string(body), "closed") {
		t.Errorf("re-scan after Close: %d %s", resp.StatusCode, body)
	}
}

func TestTokens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	tok, path, created, err := EnsureToken(dir)
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("%q %v %v", tok, created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	tok2, _, created2, err := EnsureToken(dir)
	if err != nil || created2 || tok2 != tok {
		t.Fatalf("second start: %q %v %v", tok2, created2, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left over files: %v", ents)
	}
	h, err := New(Config{TokenFile: path})
	if err != nil || !h.tokenOK(tok) || h.tokenOK(tok[:63]) {
		t.Fatalf("New with the file: %v", err)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadToken(path); !errors.Is(err, ErrConfig) {
		t.Errorf("world-readable token file: %v", err)
	}
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("abc\n"), 0o600)
	if _, err := LoadToken(short); !errors.Is(err, ErrConfig) {
		t.Errorf("short token: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, []byte(strings.Repeat("a", maxTokenFile+1)), 0o600)
	if _, err := LoadToken(big); !errors.Is(err, ErrConfig) {
		t.Errorf("token file over the limit: %v", err)
	}
	for _, c := range []Config{
		{Token: "short"},
		{Token: testToken, TokenFile: path},
		{Users: []User{{Name: "x", PasswordHash: "plain"}}},
		{Users: []User{{Name: "x", PasswordHash: mustHash(t, "a")}, {Name: "x", PasswordHash: mustHash(t, "a")}}},
		{BasePath: "admin"},
	} {
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestAPIUsers: a user on the API (HTTP Basic) sees and acts on their
// own recipients' mail only.
func TestAPIUsers(t *testing.T) {
	e := newEnv(t)
	mine := e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("for alice", "x"))
	bobs := e.hold("s@example.org", []string{"bob@example.net"}, plainMsg("for bob", "x"))
	as := func(user, pw, method, path string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, e.srv.URL+path, nil)
		req.SetBasicAuth(user, pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = io.Copy(b, resp.Body)
		return resp, []byte(b.String())
	}
	resp, body := as("alice", "alice-pw", "GET", "/api/quarantine")
	if l := decode[apiList](t, body); resp.StatusCode != 200 || l.Matched != 1 || l.Items[0].Subject != "for alice" {
		t.Fatalf("alice's list: %d %s", resp.StatusCode, body)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/quarantine/" + string(bobs)}, {"GET", "/api/quarantine/" + string(bobs) + "/raw"},
		{"POST", "/api/quarantine/" + string(bobs) + "/release"}, {"DELETE", "/api/quarantine/" + string(bobs)},
	} {
		if resp, _ := as("alice", "alice-pw", c.method, c.path); resp.StatusCode != 404 {
			t.Errorf("alice %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	for _, c := range [][2]string{{"alice", "bob-pw"}, {"nobody", "x"}, {"admin", testToken}, {"alice", ""}} {
		if resp, _ := as(c[0], c[1], "GET", "/api/quarantine"); resp.StatusCode != 401 {
			t.Errorf("Basic %s/%s: %d", c[0], c[1], resp.StatusCode)
		}
	}
	if resp, body := as("alice", "alice-pw", "POST", "/api/quarantine/"+string(mine)+"/release"); resp.StatusCode != 200 {
		t.Fatalf("alice releases hers: %d %s", resp.StatusCode, body)
	}
	if got := e.sink.released(); len(got) != 1 || got[0].Env.RcptTo[0] != "alice@example.net" {
		t.Fatalf("released: %+v", got)
	}
	if !strings.Contains(e.log.String(), `msg="admin: released" who=alice via=password`) {
		t.Error("the release is not logged as alice's")
	}
}
