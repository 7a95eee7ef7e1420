package admin

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/portcullis-mail/portcullis/filter"
)

const checkMsg = "From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\n"

func TestCheckJudgesWithoutRouting(t *testing.T) {
	e := newEnv(t)
	resp, b := e.api("POST", "/api/check?ip=192.0.2.7&from=%3Ca@example.org%3E&rcpt=b@example.net", "", strings.NewReader(checkMsg+"BUY NOW\r\n"))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
	v := decode[filter.Verdict](t, b)
	assert.Equal(t, filter.Quarantine, v.Action)
	require.NotEmpty(t, v.Symbols)
	assert.Equal(t, "RULE_SHOUTING", v.Symbols[0].Name)
	assert.Equal(t, 250, v.Reply.Code)
	assert.Equal(t, 1.0, e.count.get("portcullis_admin_checks_total{action,quarantine}"))

	resp, b = e.api("POST", "/api/check", "", strings.NewReader(checkMsg+"hello\r\n"))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	assert.Equal(t, filter.Accept, decode[filter.Verdict](t, b).Action)
	// A check holds and queues nothing: the caller carries the verdict out.
	assert.Empty(t, e.held())
	assert.Empty(t, e.sink.released())
}

func TestCheckEnvelope(t *testing.T) {
	var mu sync.Mutex
	var got filter.Envelope
	seen := filter.Func("env", func(_ context.Context, m *filter.Message) (filter.Result, error) {
		mu.Lock()
		got = m.Envelope
		mu.Unlock()
		return filter.Result{}, nil
	})
	p := filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy()}, seen)
	e := newEnv(t, func(c *Config) { c.Pipeline = func() *filter.Pipeline { return p } })
	q := url.Values{"ip": {"::ffff:192.0.2.9"}, "helo": {"mx.example.org"}, "hostname": {"mx.example.org"},
		"from": {"<s@example.org>"}, "rcpt": {"<r1@example.net>", "r2@example.net"}, "user": {"u"}, "tls": {"true"}}
	resp, b := e.api("POST", "/api/check?"+q.Encode(), "", strings.NewReader(checkMsg+"x\r\n"))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, "192.0.2.9", got.ClientIP.String(), "an IPv4-mapped address is the IPv4 one")
	assert.Equal(t, "mx.example.org", got.Helo)
	assert.Equal(t, "mx.example.org", got.Hostname)
	assert.Equal(t, "s@example.org", got.MailFrom)
	assert.Equal(t, []string{"r1@example.net", "r2@example.net"}, got.RcptTo)
	assert.Equal(t, "u", got.AuthUser)
	assert.True(t, got.TLS)

	for _, bad := range []string{"ip=not-an-ip", "tls=maybe"} {
		resp, b := e.api("POST", "/api/check?"+bad, "", strings.NewReader(checkMsg))
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", bad, b)
	}
}

func TestCheckRefuses(t *testing.T) {
	e := newEnv(t)
	resp, _ := e.api("POST", "/api/check", "-", strings.NewReader(checkMsg))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no token")
	resp, _ = e.api("POST", "/api/check", "wrong-token-0123456789", strings.NewReader(checkMsg))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a wrong token")
	resp, _ = e.api("GET", "/api/check", "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	// A user who is not an admin may not check; an admin user may.
	for user, want := range map[string]int{"alice": http.StatusForbidden, "ops": http.StatusOK} {
		req, err := http.NewRequest("POST", e.srv.URL+"/api/check", strings.NewReader(checkMsg))
		require.NoError(t, err)
		req.SetBasicAuth(user, user+"-pw")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, want, resp.StatusCode, user)
	}

	none := newEnv(t, func(c *Config) { c.Pipeline = nil })
	resp, _ = none.api("POST", "/api/check", "", strings.NewReader(checkMsg))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "no pipeline")
}

// A message over Limits.MaxMessageBytes is refused whole (413), not
// judged on its first bytes.
func TestCheckMessageLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxMessageBytes = 1000 })
	resp, b := e.api("POST", "/api/check", "", strings.NewReader(checkMsg+strings.Repeat("x", 1000)))
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "%s", b)
	assert.Contains(t, string(b), "over 1000 bytes")
	assert.Equal(t, 1.0, e.count.get("portcullis_admin_checks_total{action,too_large}"))
	resp, b = e.api("POST", "/api/check", "", strings.NewReader(checkMsg+strings.Repeat("x", 1000-len(checkMsg))))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "exactly at the limit: %s", b)
}

// MaxChecks bounds the checks judged at once: while the one slot is
// held by a check whose filter waits, a second never reaches the filters;
// it waits until its client gives up, and then nothing is judged.
func TestCheckConcurrencyBound(t *testing.T) {
	var entered atomic.Int32
	in, release := make(chan struct{}, 4), make(chan struct{})
	gate := filter.Func("gate", func(ctx context.Context, _ *filter.Message) (filter.Result, error) {
		entered.Add(1)
		in <- struct{}{}
		<-release
		return filter.Result{}, nil
	})
	p := filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy()}, gate)
	e := newEnv(t, func(c *Config) {
		c.MaxChecks = 1
		c.Pipeline = func() *filter.Pipeline { return p }
	})
	first := make(chan int)
	go func() {
		resp, _ := e.api("POST", "/api/check", "", strings.NewReader(checkMsg+"one\r\n"))
		first <- resp.StatusCode
	}()
	<-in // the first check holds the slot, inside its filter
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/api/check", strings.NewReader(checkMsg+"two\r\n"))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the second check answered %d while the only slot was held", resp.StatusCode)
	}
	// The handler sees its client go, and counts the check abandoned.
	require.Eventually(t, func() bool { return e.count.get("portcullis_admin_checks_total{action,abandoned}") == 1 },
		10*time.Second, time.Millisecond)
	close(release)
	assert.Equal(t, http.StatusOK, <-first)
	assert.Equal(t, int32(1), entered.Load(), "the second check reached the filters")
	// The slot is free again.
	resp, b := e.api("POST", "/api/check", "", strings.NewReader(checkMsg+"three\r\n"))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	assert.Equal(t, int32(2), entered.Load())
}
