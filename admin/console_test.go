package admin

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestConsoleLogin(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	resp, _ := b.get("/quarantine")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/quarantine/login" {
		t.Fatalf("no session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := b.get("/quarantine/login")
	if resp.StatusCode != 200 || !strings.Contains(body, `name="password"`) || b.csrf == "" {
		t.Fatalf("login page: %d", resp.StatusCode)
	}
	for _, c := range []struct{ user, pw string }{{"", "wrong-token-0123456789"}, {"alice", "bob-pw"}, {"nobody", "x"}, {"admin", "alice-pw"}} {
		if resp, _ := b.post("/quarantine/login", url.Values{"user": {c.user}, "password": {c.pw}}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("login %q/%q: %d", c.user, c.pw, resp.StatusCode)
		}
	}
	if n := e.count.get("portcullis_admin_logins_total{result,refused}"); n != 4 {
		t.Errorf("logins_total{refused} = %v", n)
	}
	if !strings.Contains(e.log.String(), `msg="admin: login refused" user=alice`) {
		t.Error("a refused login is not logged")
	}
	// The login form's own CSRF token is required.
	if resp, _ := b.post("/quarantine/login", url.Values{"password": {testToken}, "csrf": {"forged"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login with a forged CSRF token: %d", resp.StatusCode)
	}
	fresh := e.browser()
	if resp, _ := fresh.post("/quarantine/login", url.Values{"password": {testToken}, "csrf": {"x"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without the form: %d", resp.StatusCode)
	}

	b.get("/quarantine/login")
	resp, _ = b.post("/quarantine/login", url.Values{"password": {testToken}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("token login: %d", resp.StatusCode)
	}
	var sc *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Secure || sc.Path != "/quarantine" {
		t.Fatalf("session cookie: %+v", sc)
	}
	resp, body = b.get("/quarantine")
	if resp.StatusCode != 200 || !strings.Contains(body, "admin-token") {
		t.Fatalf("list after login: %d", resp.StatusCode)
	}
	old := b.csrf
	if resp, _ := b.post("/quarantine/logout", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	// The old session is gone, even replayed by hand.
	req, _ := http.NewRequest("GET", e.srv.URL+"/quarantine", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sc.Value})
	if resp, _ := b.do(req); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("replayed session after logout: %d", resp.StatusCode)
	}
	_ = old
	if !strings.Contains(e.log.String(), `msg="admin: logged in" who=admin-token via=token`) {
		t.Error("login not logged")
	}
}

func TestConsoleSecureCookieAndBasePath(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SecureCookies = true; c.BasePath = "/admin/" })
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", e.h))
	e.srv.Config.Handler = mux
	b := e.browser()
	b.c.Jar = nil // the jar would not send Secure cookies over http
	resp, body := b.get("/admin/quarantine/login")
	if resp.StatusCode != 200 || !strings.Contains(body, `action="/admin/quarantine/login"`) || !strings.Contains(body, `href="/admin/quarantine/static/style.css"`) {
		t.Fatalf("login page under /admin: %d %s", resp.StatusCode, body)
	}
	c := resp.Cookies()[0]
	if c.Name != loginCookie || !c.Secure || c.Path != "/admin/quarantine" {
		t.Errorf("cookie: %+v", c)
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/admin/quarantine/login", strings.NewReader(url.Values{"password": {testToken}, "csrf": {c.Value}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(c)
	resp, _ = b.do(req)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/quarantine" {
		t.Fatalf("login under /admin: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if s := resp.Cookies(); len(s) == 0 || s[0].Name != sessionCookie || !s[0].Secure {
		t.Errorf("session cookie: %+v", s)
	}
}

func TestConsoleAccessControl(t *testing.T) {
	e := newEnv(t)
	mine := e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("for alice", "x"))
	bobs := e.hold("s@example.org", []string{"bob@example.net"}, plainMsg("for bob", "x"))
	shared := e.hold("s@example.org", []string{"bob@example.net", "ALICE@example.net"}, plainMsg("for both", "x"))

	alice := e.browser()
	alice.login("alice", "alice-pw")
	_, body := alice.get("/quarantine")
	if !strings.Contains(body, "for alice") || !strings.Contains(body, "for both") || strings.Contains(body, "for bob") {
		t.Fatalf("alice's list: %s", body)
	}
	if !strings.Contains(body, `<strong id="matched">2</strong>`) {
		t.Error("alice's counts include others' mail")
	}
	for _, p := range []string{"/quarantine/m/" + string(bobs), "/quarantine/m/" + string(bobs) + "/raw"} {
		if resp, body := alice.get(p); resp.StatusCode != 404 || strings.Contains(body, "for bob") {
			t.Errorf("alice GET %s: %d", p, resp.StatusCode)
		}
	}
	for _, a := range []string{"release", "delete", "rescan"} {
		if resp, _ := alice.post("/quarantine/m/"+string(bobs)+"/"+a, nil); resp.StatusCode != 404 {
			t.Errorf("alice %s bob's: %d", a, resp.StatusCode)
		}
		// A message also addressed to bob: alice sees it, but may not act for bob.
		if resp, _ := alice.post("/quarantine/m/"+string(shared)+"/"+a, nil); resp.StatusCode != 403 {
			t.Errorf("alice %s the shared one: %d", a, resp.StatusCode)
		}
	}
	resp, body := alice.post("/quarantine/bulk", url.Values{"action": {"release"}, "id": {string(bobs), string(shared)}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "failed=2") {
		t.Errorf("alice bulk-releases others': %d %s %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if resp, _ := alice.post("/quarantine/bulk", url.Values{"action": {"rescan"}, "id": {string(bobs)}}); resp.StatusCode != 404 {
		t.Errorf("alice bulk-rescans bob's: %d", resp.StatusCode)
	}
	_, body = alice.get("/quarantine/m/" + string(shared))
	if strings.Contains(body, `id="release"`) || !strings.Contains(body, "ask an administrator") {
		t.Error("the shared message offers alice a release")
	}
	if len(e.sink.released()) != 0 || len(e.held()) != 3 {
		t.Fatalf("alice changed others' mail: %d released, %d held", len(e.sink.released()), len(e.held()))
	}
	// A re-scan by filter covers alice's own mail only.
	e.dirty.Store(false)
	resp, _ = alice.post("/quarantine/rescan", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("alice re-scan: %d", resp.StatusCode)
	}
	st := e.waitJob(strings.TrimPrefix(resp.Header.Get("Location"), "/quarantine/rescan/"))
	if st.Total != 1 || st.Released != 1 || len(e.sink.released()) != 1 || e.sink.released()[0].Env.RcptTo[0] != "alice@example.net" {
		t.Fatalf("alice's re-scan: %+v", st)
	}
	// Bob cannot see alice's job, nor alice's message.
	bob := e.browser()
	bob.login("bob", "bob-pw")
	if resp, _ := bob.get("/quarantine/rescan/" + st.ID); resp.StatusCode != 404 {
		t.Errorf("bob sees alice's job: %d", resp.StatusCode)
	}
	if resp, _ := bob.post("/quarantine/m/"+string(shared)+"/release", nil); resp.StatusCode != 403 {
		t.Errorf("bob releases the shared one: %d", resp.StatusCode)
	}
	// The admin user may.
	ops := e.browser()
	ops.login("ops", "ops-pw")
	if resp, _ := ops.post("/quarantine/m/"+string(shared)+"/release", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("ops releases the shared one: %d", resp.StatusCode)
	}
	if !strings.Contains(e.log.String(), `msg="admin: released" who=ops via=password id=`+string(shared)) {
		t.Error("release not logged with who did it")
	}
	_ = mine
}

func TestConsoleCSRF(t *testing.T) {
	e := newEnv(t)
	id := e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("x", "x"))
	anon := e.browser()
	if resp, _ := anon.post("/quarantine/m/"+string(id)+"/release", url.Values{"csrf": {"x"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no session: %d", resp.StatusCode)
	}
	b := e.browser()
	b.login("", testToken)
	paths := []string{"/quarantine/m/" + string(id) + "/release", "/quarantine/m/" + string(id) + "/delete",
		"/quarantine/m/" + string(id) + "/rescan", "/quarantine/bulk", "/quarantine/rescan", "/quarantine/logout"}
	for _, p := range paths {
		for _, tok := range []string{"", "wrong", b.csrf + "x"} {
			if resp, _ := b.post(p, url.Values{"csrf": {tok}, "action": {"release"}, "id": {string(id)}}); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s with CSRF %q: %d", p, tok, resp.StatusCode)
			}
		}
		// Right token, another site's Origin.
		v := url.Values{"csrf": {b.csrf}, "action": {"release"}, "id": {string(id)}}
		req, _ := http.NewRequest("POST", e.srv.URL+p, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example")
		if resp, _ := b.do(req); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s from another origin: %d", p, resp.StatusCode)
		}
	}
	// Another session's token does not do either.
	other := e.browser()
	other.login("ops", "ops-pw")
	if resp, _ := b.post(paths[0], url.Values{"csrf": {other.csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("another session's token: %d", resp.StatusCode)
	}
	if len(e.held()) != 1 || len(e.sink.released()) != 0 {
		t.Fatal("a refused form changed the quarantine")
	}
	if n := e.count.get("portcullis_admin_refused_total{reason,csrf}"); n != float64(4*len(paths)+1) {
		t.Errorf("refused_total{csrf} = %v", n)
	}
	if _, body := b.get("/quarantine"); !strings.Contains(body, "admin-token") {
		t.Error("a refused logout logged out")
	}
}

func TestConsoleActions(t *testing.T) {
	e := newEnv(t)
	v1 := e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("virus one", "EICAR-LIKE"))
	v2 := e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("virus two", "EICAR-LIKE"))
	ok1 := e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("fine one", "x"))
	ok2 := e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("fine two", "x"))
	del := e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("junk", "x"))
	b := e.browser()
	b.login("ops", "ops-pw")

	// Re-scan one: still dirty, kept; the page says so.
	resp, _ := b.post("/quarantine/m/"+string(v1)+"/rescan", nil)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/quarantine/m/"+string(v1)+"?note=rescan-kept" {
		t.Fatalf("re-scan one: %d %q", resp.StatusCode, loc)
	}
	if _, body := b.get(resp.Header.Get("Location")); !strings.Contains(body, "still flagged") || !strings.Contains(body, "re-scanned 1×") {
		t.Error("the kept note or the re-scan count is missing")
	}
	// Release one from its page.
	if resp, _ := b.post("/quarantine/m/"+string(ok1)+"/release", nil); resp.Header.Get("Location") != "/quarantine?note=released" {
		t.Fatalf("release: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := e.sink.released(); len(got) != 1 || !strings.Contains(string(got[0].Raw), "fine one") {
		t.Fatalf("sink: %d", len(got))
	}
	if resp, _ := b.post("/quarantine/m/"+string(del)+"/delete", nil); resp.Header.Get("Location") != "/quarantine?note=deleted" {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if resp, _ := b.post("/quarantine/m/"+string(del)+"/frobnicate", nil); resp.StatusCode != 404 {
		t.Errorf("unknown action: %d", resp.StatusCode)
	}
	// Bulk release of the selection.
	resp, _ = b.post("/quarantine/bulk", url.Values{"action": {"release"}, "id": {string(ok2), "nonexistent"}})
	_, body := b.get(resp.Header.Get("Location"))
	if !strings.Contains(body, "Released: 1 done, 1 failed.") || len(e.sink.released()) != 2 {
		t.Errorf("bulk release note: %s", body)
	}
	// Bulk re-scan of the selection after the vendor's fix: a job page
	// with the report.
	e.dirty.Store(false)
	resp, _ = b.post("/quarantine/bulk", url.Values{"action": {"rescan"}, "id": {string(v1), string(v2)}})
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/quarantine/rescan/") {
		t.Fatalf("bulk re-scan: %d %q", resp.StatusCode, loc)
	}
	st := e.waitJob(strings.TrimPrefix(loc, "/quarantine/rescan/"))
	_, body = b.get(loc)
	if st.Released != 2 || !strings.Contains(body, `<td id="released">2</td>`) || !strings.Contains(body, `data-state="done"`) ||
		strings.Contains(body, `http-equiv="refresh"`) {
		t.Fatalf("bulk re-scan report: %+v\n%s", st, body)
	}
	if len(e.held()) != 0 || len(e.sink.released()) != 4 {
		t.Fatalf("left %d, released %d", len(e.held()), len(e.sink.released()))
	}
	if e.count.get("portcullis_admin_actions_total{action,release,result,ok}") != 2 ||
		e.count.get("portcullis_admin_actions_total{action,delete,result,ok}") != 1 ||
		e.count.get("portcullis_admin_actions_total{action,rescan,result,ok}") != 1 {
		t.Errorf("action counters: %v", e.count.m)
	}
}

func TestConsoleRescanByFilterProgress(t *testing.T) {
	e := newEnv(t)
	for range 3 {
		e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("virus", "EICAR-LIKE"))
	}
	e.hold("s@example.org", []string{"bob@example.net"}, plainMsg("virus for bob", "EICAR-LIKE"))
	b := e.browser()
	b.login("", testToken)
	e.dirty.Store(false)
	open := e.holdScans()
	resp, _ := b.post("/quarantine/rescan", url.Values{"recipient": {"alice@example.net"}, "engine": {"clamd-1"}})
	loc := resp.Header.Get("Location")
	_, body := b.get(loc)
	if !strings.Contains(body, `http-equiv="refresh" content="1"`) || !strings.Contains(body, `data-state="running"`) ||
		!strings.Contains(body, `<strong id="total">3</strong>`) || !strings.Contains(body, `<progress id="progress" max="3" value="0">`) {
		t.Fatalf("progress page while running: %s", body)
	}
	if resp, body := b.post("/quarantine/rescan", nil); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "already running") {
		t.Errorf("a second re-scan: %d", resp.StatusCode)
	}
	open()
	e.waitJob(strings.TrimPrefix(loc, "/quarantine/rescan/"))
	_, body = b.get(loc)
	if !strings.Contains(body, `value="3"`) || !strings.Contains(body, `<td id="released">3</td>`) {
		t.Fatalf("final report: %s", body)
	}
	if h := e.held(); len(h) != 1 || h[0].Envelope.RcptTo[0] != "bob@example.net" {
		t.Fatalf("held after: %+v", h)
	}
	if !strings.Contains(e.log.String(), `msg="admin: re-scan finished" who=admin-token`) {
		t.Error("the re-scan is not logged")
	}
}

func TestConsoleListAndView(t *testing.T) {
	e := newEnv(t)
	for i := range listPage + 3 {
		e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("msg "+string(rune('A'+i%26))+"-"+time.Duration(i).String(), "x"))
	}
	id := e.hold("s@example.org", []string{"alice@example.net"}, mimeMsg)
	b := e.browser()
	b.login("alice", "alice-pw")
	_, body := b.get("/quarantine")
	for _, want := range []string{`<strong id="matched">54</strong>`, "Résumé", "AV_INFECTED <b>54</b>", `engine=clamd-1">clamd-1 <b>54</b>`, `rel="next"`, "s@example.org", "alice@example.net"} {
		if !strings.Contains(body, want) {
			t.Errorf("list lacks %q", want)
		}
	}
	if n := strings.Count(body, `name="id"`); n != listPage {
		t.Errorf("%d rows on the first page", n)
	}
	next := body[strings.Index(body, `href="/quarantine?before=`)+6:]
	next = strings.ReplaceAll(next[:strings.Index(next, `"`)], "&amp;", "&")
	_, body = b.get(next)
	if n := strings.Count(body, `name="id"`); n != 4 || strings.Contains(body, `rel="next"`) {
		t.Errorf("%d rows on the second page", n)
	}
	_, body = b.get("/quarantine?text=R%C3%A9sum")
	if n := strings.Count(body, `name="id"`); n != 1 || !strings.Contains(body, `<strong id="total">54</strong>`) {
		t.Errorf("text filter: %d rows", n)
	}
	if _, body = b.get("/quarantine?since=nonsense"); !strings.Contains(body, "Filter since:") {
		t.Error("a bad filter is not reported")
	}

	_, body = b.get("/quarantine/m/" + string(id))
	for _, want := range []string{"Résumé", "a.zip", "application/zip", "attachment", "hello there", "HTML source, not rendered",
		"&lt;p onclick=x&gt;hi&lt;/p&gt;", "multipart/mixed", "Eicar-Like in message", "Mime-Version", `href="/quarantine/m/` + string(id) + `/raw"`} {
		if !strings.Contains(body, want) {
			t.Errorf("message view lacks %q", want)
		}
	}
	resp, raw := b.get("/quarantine/m/" + string(id) + "/raw")
	if resp.Header.Get("Content-Type") != "application/octet-stream" || raw != mimeMsg || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		t.Errorf("raw download: %v", resp.Header)
	}
	if resp, _ := b.get("/quarantine/m/nope"); resp.StatusCode != 404 {
		t.Errorf("missing message: %d", resp.StatusCode)
	}
}

func TestConsoleStatic(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	resp, body := b.get("/quarantine/static/style.css")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(body, "@media") {
		t.Fatalf("css: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := b.get("/quarantine/static/app.js"); resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("js: %v", resp.Header)
	}
	for _, p := range []string{"/quarantine/static/nope.css", "/quarantine/static/..%2Ftemplates%2Flist.html", "/quarantine/static/"} {
		if resp, _ := b.get(p); resp.StatusCode != 404 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}

func TestSessionLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxSessions = 2; c.SessionTTL = time.Hour })
	a, b, c := e.browser(), e.browser(), e.browser()
	a.login("alice", "alice-pw")
	e.advance(time.Second)
	b.login("bob", "bob-pw")
	e.advance(time.Second)
	c.login("ops", "ops-pw")
	if resp, _ := a.get("/quarantine"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("the oldest session outlived MaxSessions: %d", resp.StatusCode)
	}
	if resp, _ := b.get("/quarantine"); resp.StatusCode != 200 {
		t.Errorf("a newer session was dropped: %d", resp.StatusCode)
	}
	e.advance(time.Hour)
	if resp, _ := c.get("/quarantine"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("an expired session still works: %d", resp.StatusCode)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.get("/quarantine/login")
	limited := false
	for range 40 {
		resp, _ := b.post("/quarantine/login", url.Values{"user": {"alice"}, "password": {"guess"}})
		if resp.StatusCode == http.StatusTooManyRequests {
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("40 failed logins in a row were never limited")
	}
}

func TestPrincipalScope(t *testing.T) {
	p := userPrincipal(User{Name: "d", Recipients: []string{" @Example.org ", "Bob@Example.net", ""}})
	for addr, want := range map[string]bool{
		"x@example.org": true, "X@EXAMPLE.ORG": true, "bob@example.net": true,
		"x@sub.example.org": false, "x@example.org.evil": false, "xexample.org": false, "bob@example.net.evil": false, "": false,
	} {
		if got := p.owns(addr); got != want {
			t.Errorf("owns(%q) = %v", addr, got)
		}
	}
	mk := func(rcpts ...string) held { h := held{}; h.Envelope.RcptTo = rcpts; return h }
	if !p.canSee(mk("a@x.test", "y@example.org")) || p.canAct(mk("a@x.test", "y@example.org")) || !p.canAct(mk("y@example.org", "bob@example.net")) {
		t.Error("a message to a user's and another's recipient")
	}
	if p.canAct(mk()) || p.canSee(mk()) {
		t.Error("a message without recipients")
	}
	if nobody := userPrincipal(User{Name: "n"}); nobody.canSee(mk("a@x.test")) {
		t.Error("a user without recipients sees mail")
	}
}
