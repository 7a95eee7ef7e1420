package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/queue/jetstream"
)

// The local queue is what the gateway passes.
var _ Queue = (*queue.Queue)(nil)

type apiQueueList struct {
	Items []apiEntry `json:"items"`
	Total int        `json:"total"`
	Held  int        `json:"held"`
	Next  string     `json:"next"`
}

// openQueue opens a real queue over a temporary spool; d nil means
// store-only (nothing is attempted).
func openQueue(t *testing.T, d queue.Deliverer) *queue.Queue {
	t.Helper()
	q, err := queue.Open(t.TempDir(), queue.Config{Deliverer: d, StoreOnly: d == nil, MinFreeBytes: 1, Hostname: "gw.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q.Shutdown(ctx)
	})
	return q
}

func enqueue(t *testing.T, q *queue.Queue, from, to, subject string) queue.ID {
	t.Helper()
	id, err := q.Enqueue(context.Background(), filter.Envelope{MailFrom: from, RcptTo: []string{to}}, strings.NewReader(plainMsg(subject, "hi")))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestAPIQueue(t *testing.T) {
	q := openQueue(t, nil)
	e := newEnv(t, func(c *Config) { c.Queue = q })
	var ids []queue.ID
	for i := range 5 {
		ids = append(ids, enqueue(t, q, "s@example.org", fmt.Sprintf("r%d@example.net", i), fmt.Sprint("queued ", i)))
	}

	// Paged in ID order, every entry once.
	var seen []string
	after := ""
	for range 10 {
		resp, b := e.api("GET", "/api/queue?limit=2&after="+after, "", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("list: %d %s", resp.StatusCode, b)
		}
		l := decode[apiQueueList](t, b)
		if l.Total != 5 || len(l.Items) > 2 {
			t.Fatalf("page: total %d, %d items", l.Total, len(l.Items))
		}
		for _, it := range l.Items {
			seen = append(seen, it.ID)
		}
		if l.Next == "" {
			break
		}
		after = l.Next
	}
	if len(seen) != 5 {
		t.Fatalf("paged through %d entries, want 5: %v", len(seen), seen)
	}
	for i := range seen {
		if seen[i] != string(ids[i]) {
			t.Errorf("entry %d: %s, want %s (enqueue order)", i, seen[i], ids[i])
		}
	}
	// Over the page limit, and other bad parameters.
	for _, p := range []string{"?limit=501", "?limit=0", "?after=a%20b", "?state=lost"} {
		if resp, b := e.api("GET", "/api/queue"+p, "", nil); resp.StatusCode != 400 {
			t.Errorf("GET /api/queue%s: %d %s, want 400", p, resp.StatusCode, b)
		}
	}

	// One entry; an unknown one; one that cannot be an ID.
	resp, b := e.api("GET", "/api/queue/"+string(ids[0]), "", nil)
	if got := decode[apiEntry](t, b); resp.StatusCode != 200 || got.From != "s@example.org" || got.State != "queued" || len(got.Pending) != 1 {
		t.Errorf("show: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.api("GET", "/api/queue/0000", "", nil); resp.StatusCode != 404 {
		t.Errorf("unknown entry: %d, want 404", resp.StatusCode)
	}
	if resp, _ := e.api("POST", "/api/queue/"+strings.Repeat("x", 65)+"/retry", "", nil); resp.StatusCode != 400 {
		t.Errorf("a 65-byte ID: %d, want 400", resp.StatusCode)
	}

	// Retry and bounce.
	if resp, b := e.api("POST", "/api/queue/"+string(ids[1])+"/retry", "", nil); resp.StatusCode != 200 {
		t.Errorf("retry: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.api("POST", "/api/queue/"+string(ids[2])+"/bounce", "", nil); resp.StatusCode != 200 {
		t.Errorf("bounce: %d %s", resp.StatusCode, b)
	}
	if _, err := q.Entry(ids[2]); err == nil {
		t.Error("the bounced entry is still queued")
	}
	dsn := 0
	for _, en := range q.Entries() {
		if len(en.Envelope.RcptTo) == 1 && en.Envelope.RcptTo[0] == "s@example.org" && en.Envelope.MailFrom == "" {
			dsn++
		}
	}
	if dsn != 1 {
		t.Errorf("%d DSNs to the sender queued, want 1", dsn)
	}
	if resp, _ := e.api("POST", "/api/queue/"+string(ids[2])+"/bounce", "", nil); resp.StatusCode != 404 {
		t.Errorf("bouncing it again: %d, want 404", resp.StatusCode)
	}
	if l := e.log.String(); !strings.Contains(l, "admin: queue bounce") || !strings.Contains(l, "who=admin-token") {
		t.Errorf("bounce not logged with who did it:\n%s", l)
	}
	if got := e.count.get("portcullis_admin_actions_total{action,queue_bounce,result,ok}"); got != 1 {
		t.Errorf("queue_bounce actions counted %v, want 1", got)
	}
}

func TestAPIQueueAccess(t *testing.T) {
	q := openQueue(t, nil)
	id := enqueue(t, q, "s@example.org", "alice@example.net", "alice's")
	e := newEnv(t, func(c *Config) { c.Queue = q })
	basic := func(user, pw, method, path string) int {
		req, _ := http.NewRequest(method, e.srv.URL+path, nil)
		req.SetBasicAuth(user, pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/api/queue", "/api/queue/" + string(id)} {
		if resp, _ := e.api("GET", path, "-", nil); resp.StatusCode != 401 {
			t.Errorf("GET %s without a token: %d, want 401", path, resp.StatusCode)
		}
		if code := basic("alice", "alice-pw", "GET", path); code != 403 {
			t.Errorf("GET %s as a recipient-scoped user: %d, want 403", path, code)
		}
		if code := basic("ops", "ops-pw", "GET", path); code != 200 {
			t.Errorf("GET %s as an admin user: %d, want 200", path, code)
		}
	}
	if code := basic("alice", "alice-pw", "POST", "/api/queue/"+string(id)+"/bounce"); code != 403 {
		t.Errorf("bounce by a recipient-scoped user: %d, want 403", code)
	}
	if _, err := q.Entry(id); err != nil {
		t.Errorf("the refused bounce bounced: %v", err)
	}

	noq := newEnv(t)
	if resp, _ := noq.api("GET", "/api/queue", "", nil); resp.StatusCode != 503 {
		t.Errorf("without a queue: %d, want 503", resp.StatusCode)
	}
}

// An entry an attempt holds answers 409 to retry and bounce.
func TestAPIQueueInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	q := openQueue(t, queue.DeliverFunc(func(ctx context.Context, m *queue.Outgoing) []error {
		close(started)
		<-release
		return make([]error, len(m.To))
	}))
	id := enqueue(t, q, "s@example.org", "r@example.net", "busy")
	e := newEnv(t, func(c *Config) { c.Queue = q })
	<-started
	for _, a := range []string{"retry", "bounce"} {
		if resp, b := e.api("POST", "/api/queue/"+string(id)+"/"+a, "", nil); resp.StatusCode != 409 {
			t.Errorf("%s while delivering: %d %s, want 409", a, resp.StatusCode, b)
		}
	}
	close(release)
}

// The shared JetStream queue is what a fleet's gateways pass.
var _ Queue = (*jetstream.Queue)(nil)

// The API over the shared queue: what another gateway enqueued is
// listed, shown, retried and bounced here.
func TestAPIQueueJetStream(t *testing.T) {
	srv := natstest.Start(t)
	open := func() *jetstream.Queue {
		s, err := jetstream.Open(context.Background(), srv.URL, jetstream.Config{Name: "adminq"})
		if err != nil {
			t.Fatal(err)
		}
		q, err := jetstream.NewQueue(context.Background(), s, jetstream.QueueConfig{Delivery: queue.Config{StoreOnly: true, Hostname: "gw.test"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			q.Shutdown(ctx)
			s.Close()
		})
		return q
	}
	other, here := open(), open()
	var ids []queue.ID
	for i := range 3 {
		id, err := other.Enqueue(context.Background(), filter.Envelope{MailFrom: "s@example.org", RcptTo: []string{fmt.Sprintf("r%d@example.net", i)}},
			strings.NewReader(plainMsg("shared", "hi")))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	sync := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := here.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	e := newEnv(t, func(c *Config) { c.Queue = here })
	resp, b := e.api("GET", "/api/queue?limit=2", "", nil)
	l := decode[apiQueueList](t, b)
	if resp.StatusCode != 200 || l.Total != 3 || len(l.Items) != 2 || l.Items[0].ID != string(ids[0]) || l.Next != string(ids[1]) {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	resp, b = e.api("GET", "/api/queue/"+string(ids[2]), "", nil)
	if got := decode[apiEntry](t, b); resp.StatusCode != 200 || got.To[0] != "r2@example.net" {
		t.Fatalf("show: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.api("POST", "/api/queue/"+string(ids[0])+"/retry", "", nil); resp.StatusCode != 200 {
		t.Fatalf("retry: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.api("POST", "/api/queue/"+string(ids[1])+"/bounce", "", nil); resp.StatusCode != 200 {
		t.Fatalf("bounce: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.api("GET", "/api/queue/"+string(ids[1]), "", nil); resp.StatusCode != 404 {
		t.Fatalf("the bounced entry: %d, want 404", resp.StatusCode)
	}
	sync()
	resp, b = e.api("GET", "/api/queue", "", nil)
	l = decode[apiQueueList](t, b)
	if resp.StatusCode != 200 || l.Total != 3 || l.Items[2].To[0] != "s@example.org" {
		t.Fatalf("after the bounce (r0, r2 and the DSN): %d %s", resp.StatusCode, b)
	}
}
