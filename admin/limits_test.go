package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Every display bound, with a message that exceeds it.
func TestViewLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxTextBytes = 100 })
	var b strings.Builder
	b.WriteString("From: s@example.org\r\nSubject: big\r\nX-Long: " + strings.Repeat("v", maxViewHeaderValue+100) + "\r\n")
	for i := range maxViewHeaders + 20 {
		fmt.Fprintf(&b, "X-H%d: %d\r\n", i, i)
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := range maxViewParts + 10 {
		fmt.Fprintf(&b, "--b\r\nContent-Type: text/plain\r\n\r\npart %d %s\r\n", i, strings.Repeat("x", 150))
	}
	b.WriteString("--b--\r\n")
	id := e.hold("s@example.org", []string{"alice@example.net"}, b.String())
	_, body := e.api("GET", "/api/quarantine/"+string(id), "", nil)
	v := decode[messageView](t, body)
	if len(v.Headers) != maxViewHeaders || v.MoreHeaders != 25 { // 3 + 520 + 2 fields
		t.Errorf("headers: %d shown, %d more", len(v.Headers), v.MoreHeaders)
	}
	if long := v.Headers[2]; long.Name != "X-Long" || len(long.Value) != maxViewHeaderValue+len("…") {
		t.Errorf("a long header value: %q is %d bytes", long.Name, len(long.Value))
	}
	if len(v.Parts) != maxViewParts || v.MoreParts != 11 { // the message, 510 parts
		t.Errorf("parts: %d shown, %d more", len(v.Parts), v.MoreParts)
	}
	texts := 0
	for _, p := range v.Parts {
		if p.Text != "" {
			texts++
			if len(p.Text) != 100 || !p.Truncated {
				t.Fatalf("part %s: %d bytes of text, truncated %v", p.Path, len(p.Text), p.Truncated)
			}
		}
	}
	if texts != maxViewTexts {
		t.Errorf("%d text parts shown", texts)
	}
	br := e.browser()
	br.login("", testToken)
	_, page := br.get("/quarantine/m/" + string(id))
	for _, want := range []string{"25 more header fields not shown", "11 more parts not shown", ">truncated<"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not say %q", want)
		}
	}
}

func TestRequestLimits(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login("", testToken)
	ids := make([]string, maxSelected+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("id%d", i)
	}
	if resp, body := b.post("/quarantine/bulk", url.Values{"action": {"rescan"}, "id": ids}); resp.StatusCode != http.StatusBadRequest ||
		!strings.Contains(body, "Too many") {
		t.Errorf("bulk over %d: %d", maxSelected, resp.StatusCode)
	}
	if resp, _ := b.post("/quarantine/bulk", url.Values{"action": {"release"}, "id": ids}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bulk release over %d: %d", maxSelected, resp.StatusCode)
	}
	if resp, _ := b.post("/quarantine/rescan", url.Values{"pad": {strings.Repeat("x", 1<<20)}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a form over 1 MiB: %d", resp.StatusCode)
	}
	if resp, _ := b.post("/quarantine/login", url.Values{"password": {strings.Repeat("x", 64<<10)}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a login form over 64 KiB: %d", resp.StatusCode)
	}
}

// TestJobsKept: the handler keeps the last 32 re-scans' reports.
func TestJobsKept(t *testing.T) {
	e := newEnv(t)
	var first string
	for i := range 33 {
		resp, body := e.api("POST", "/api/quarantine/rescan", "", nil)
		j := decode[jobStatus](t, body)
		if resp.StatusCode != 200 || j.State != "done" || j.Total != 0 {
			t.Fatalf("re-scan %d: %d %s", i, resp.StatusCode, body)
		}
		if i == 0 {
			first = j.ID
		}
		if i == 1 {
			if resp, _ := e.api("GET", "/api/rescans/"+first, "", nil); resp.StatusCode != 200 {
				t.Fatalf("the first report is gone already: %d", resp.StatusCode)
			}
		}
	}
	if resp, _ := e.api("GET", "/api/rescans/"+first, "", nil); resp.StatusCode != 404 {
		t.Errorf("the 33rd re-scan kept the first report: %d", resp.StatusCode)
	}
}
