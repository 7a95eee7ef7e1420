package drills

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// ledger counts one drill's mail: what was sent, what the gateway
// acknowledged, what the recipients' servers got.
type ledger struct {
	mu    sync.Mutex
	sent  int
	acked map[string]bool
}

func newLedger() *ledger { return &ledger{acked: map[string]bool{}} }

// note records one transaction's reply for message id.
func (l *ledger) note(id string, r reply) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	if r.code == 250 {
		l.acked[id] = true
	}
}

func (l *ledger) ackedIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id := range l.acked {
		out = append(out, id)
	}
	return out
}

var idRE = regexp.MustCompile(`drill-\d+-[a-z0-9-]+`)

// subject returns the Subject of a raw message ("" if none).
func subject(b []byte) string {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	hdr, _, _ := strings.Cut(string(b), "\n\n")
	for _, l := range strings.Split(hdr, "\n") {
		if s, ok := strings.CutPrefix(l, "Subject: "); ok {
			return s
		}
	}
	return ""
}

// tally counts the drill ids the sinks got as messages (by Subject):
// id -> copies.
func tally(sinks ...*testsvc.SMTPSink) map[string]int {
	got := map[string]int{}
	for _, s := range sinks {
		for _, m := range s.Messages() {
			if id := subject(m.Data); idRE.MatchString(id) {
				got[id]++
			}
		}
	}
	return got
}

// dsnIDs returns the drill ids quoted in the DSNs a sink got (the
// returned original header carries the Subject), with the DSNs' text.
func dsnIDs(s *testsvc.SMTPSink) (map[string]int, []string) {
	got := map[string]int{}
	var texts []string
	for _, m := range s.Messages() {
		d := string(m.Data)
		if !strings.Contains(d, "multipart/report") {
			continue
		}
		texts = append(texts, d)
		seen := map[string]bool{}
		for _, id := range idRE.FindAllString(d, -1) {
			if !seen[id] {
				seen[id] = true
				got[id]++
			}
		}
	}
	return got, texts
}

// account fills the row's counts: every acknowledged id is delivered
// (copies beyond the first are duplicates), held (in heldIDs) or bounced
// (in bounced); anything else is lost.
func account(l *ledger, delivered map[string]int, held map[string]bool, bounced map[string]int) (r row) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.Sent, r.Acked = l.sent, len(l.acked)
	for id := range l.acked {
		switch {
		case delivered[id] > 0:
			r.Delivered++
			r.Duplicates += delivered[id] - 1
		case held[id]:
			r.Held++
		case bounced[id] > 0:
			r.Bounced++
		default:
			r.Lost++
			r.lostIDs = append(r.lostIDs, id)
		}
	}
	return r
}

// metrics scrapes /metrics: series text ("name{labels}") -> value.
func (g *gateway) metrics() map[string]float64 {
	g.t.Helper()
	resp, err := http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		g.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			continue
		}
		out[l[:i]] = v
	}
	return out
}

// metric sums the series of name whose labels include every k="v" pair
// given as "k=v".
func metric(m map[string]float64, name string, labels ...string) float64 {
	sum := 0.0
next:
	for series, v := range m {
		n, rest, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		for _, kv := range labels {
			k, val, _ := strings.Cut(kv, "=")
			if !strings.Contains(rest, k+`="`+val+`"`) {
				continue next
			}
		}
		sum += v
	}
	return sum
}

// api calls the admin API with the bearer token and decodes JSON into out
// (nil: discard); it returns the status code.
func (g *gateway) api(method, path string, out any) int {
	g.t.Helper()
	req, err := http.NewRequest(method, "http://"+g.admin+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			g.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		g.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// status returns the HTTP status of GET path (no token).
func (g *gateway) status(path string) (int, string) {
	resp, err := http.Get("http://" + g.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// heldItem is one entry of GET /api/quarantine.
type heldItem struct {
	ID      string   `json:"id"`
	Subject string   `json:"subject"`
	Action  string   `json:"action"`
	To      []string `json:"to"`
	Symbols []struct {
		Name string `json:"name"`
	} `json:"symbols"`
}

// held lists the whole quarantine: subject -> item.
func (g *gateway) held(query string) map[string]heldItem {
	g.t.Helper()
	out := map[string]heldItem{}
	before := ""
	for {
		var page struct {
			Items []heldItem `json:"items"`
			Next  string     `json:"next"`
		}
		q := "/api/quarantine?limit=500" + query
		if before != "" {
			q += "&before=" + before
		}
		if code := g.api("GET", q, &page); code != 200 {
			g.t.Fatalf("GET %s: %d", q, code)
		}
		for _, it := range page.Items {
			out[it.Subject] = it
		}
		if page.Next == "" || len(page.Items) == 0 {
			return out
		}
		before = page.Next
	}
}

func heldSet(m map[string]heldItem) map[string]bool {
	out := map[string]bool{}
	for s := range m {
		out[s] = true
	}
	return out
}

func ids(incident, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("drill-%02d-%d", incident, i)
	}
	return out
}

// raw returns a held message's raw bytes (GET /api/quarantine/{id}/raw).
func (g *gateway) raw(id string) []byte {
	g.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+g.admin+"/api/quarantine/"+id+"/raw", nil)
	req.Header.Set("Authorization", "Bearer "+g.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		g.t.Fatalf("GET raw %s: %d %s", id, resp.StatusCode, b)
	}
	return b
}
