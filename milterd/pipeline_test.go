package milterd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-milter"

	"github.com/portcullis-mail/portcullis/filter"
)

// startPipeline serves the milter in front of a real pipeline.
func startPipeline(t *testing.T, cfg Config, filters ...filter.Filter) *harness {
	t.Helper()
	metrics := &countMetrics{}
	opts := filter.Options{Metrics: metrics, Logger: cfg.Logger, Spool: filter.SpoolConfig{Dir: t.TempDir(), MemoryBytes: 1024, MaxBytes: 200 << 10}}
	cfg.Pipeline = filter.NewPipeline(opts, filters...)
	cfg.Metrics = metrics
	cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 5*time.Second
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		if n := metrics.Get("portcullis_milter_panics_total"); n != 0 {
			t.Errorf("%v panics", n)
		}
		if p := cfg.Pipeline.Panics(); p != 0 {
			t.Errorf("%d filter panics", p)
		}
	})
	return &harness{t: t, b: &fakeBegin{}, srv: srv, addr: ln.Addr().String(), metrics: metrics}
}

// scoreBody scores 6 (add-header) for "spammy" and reads the whole
// message, as a content filter does.
var scoreBody = filter.Func("body", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
	var r filter.Result
	b, err := io.ReadAll(m.Reader())
	if err != nil {
		return r, err
	}
	if strings.Contains(string(b), "spammy") {
		r.Add("BODY_SPAMMY", 6, "")
	}
	return r, nil
})

func TestPipelineCrossStageScoreAddsHeaders(t *testing.T) {
	// 3 at connect + 3 in the body reach add-header (5): the DATA verdict
	// weighs every stage.
	conn := filter.Func("conn", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		if m.Envelope.ClientIP.String() == "192.0.2.7" {
			r.Add("CLIENT_DUBIOUS", 3, "")
		}
		return r, nil
	}, filter.Connect)
	half := filter.Func("half", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		r.Add("BODY_HALF", 3, "")
		return r, nil
	})
	h := startPipeline(t, Config{}, conn, half)
	s := h.session()
	envelope(t, s, "b@example.net")
	mods, act := message(t, s, "hello\r\n", "Subject", "x", "X-Spam-Status", "No")
	wantCode(t, "eom", act, milter.ActAccept)
	var inserted []string
	deleted := 0
	for _, m := range mods {
		switch m.Code {
		case milter.ActInsertHeader:
			inserted = append(inserted, m.HeaderName+": "+m.HeaderValue)
		case milter.ActChangeHeader:
			if m.HeaderName == "X-Spam-Status" && m.HeaderValue == "" && m.HeaderIndex == 1 {
				deleted++
			}
		}
	}
	if deleted != 1 || len(inserted) != 2 || !strings.HasPrefix(inserted[0], "X-Spam-Status: Yes, score=6.00") ||
		!strings.Contains(inserted[0], "BODY_HALF,CLIENT_DUBIOUS") || inserted[1] != "X-Portcullis-Verdict: add-header; score=6.00" {
		t.Fatalf("modifications %+v", mods)
	}
}

func TestPipelineSizeLimitIs552(t *testing.T) {
	h := startPipeline(t, Config{}, scoreBody)
	s := h.session()
	envelope(t, s, "b@example.net")
	wantCode(t, "eoh", must(t)(s.HeaderEnd()), milter.ActContinue)
	chunk := []byte(strings.Repeat("spammy ", milter.MaxBodyChunk/7))
	var act *milter.Action
	for range 10 { // 10 chunks of 64 KiB against a 200 KiB limit
		if act = must(t)(s.BodyChunk(chunk)); act.Code != milter.ActContinue {
			break
		}
	}
	wantCode(t, "body over the limit", act, milter.ActReplyCode)
	if act.SMTPCode != 552 || !strings.HasPrefix(act.SMTPText, "5.3.4 ") {
		t.Fatalf("%d %q", act.SMTPCode, act.SMTPText)
	}
	// The spool of the refused message is gone, the next one works.
	wantCode(t, "mail", must(t)(s.Mail("a@example.org", nil)), milter.ActContinue)
	wantCode(t, "rcpt", must(t)(s.Rcpt("b@example.net", nil)), milter.ActContinue)
	mods, act := message(t, s, "spammy\r\n", "Subject", "second")
	wantCode(t, "second", act, milter.ActAccept)
	if len(mods) != 2 {
		t.Fatalf("second message: %+v, want the two verdict headers", mods)
	}
}

func TestPipelineFilterErrorTempfails(t *testing.T) {
	broken := filter.Func("broken", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		return filter.Result{}, io.ErrUnexpectedEOF
	})
	h := startPipeline(t, Config{}, broken)
	s := h.session()
	envelope(t, s, "b@example.net")
	_, act := message(t, s, "x\r\n", "Subject", "x")
	wantCode(t, "eom", act, milter.ActReplyCode)
	if act.SMTPCode/100 != 4 {
		t.Fatalf("a failing filter answered %d %q, want 4xx", act.SMTPCode, act.SMTPText)
	}
}

func TestPipelineNotReadyTempfails(t *testing.T) {
	h := startPipeline(t, Config{}, notReady{})
	s := h.session()
	act := must(t)(s.Conn("c", milter.FamilyInet, 1, "192.0.2.1"))
	wantCode(t, "connect", act, milter.ActReplyCode)
	if act.SMTPCode != 451 || !strings.HasPrefix(act.SMTPText, "4.3.2") {
		t.Fatalf("%d %q", act.SMTPCode, act.SMTPText)
	}
}

type notReady struct{}

func (notReady) Name() string { return "notready" }
func (notReady) Check(context.Context, *filter.Message) (filter.Result, error) {
	return filter.Result{}, nil
}
func (notReady) Ready() error { return filter.ErrNotReady }

func TestPipelineDiscardAtRcpt(t *testing.T) {
	trap := filter.Func("trap", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		if filter.RecipientOf(ctx) == "trap@example.net" {
			r.Demand(filter.Discard)
		}
		return r, nil
	}, filter.Rcpt)
	h := startPipeline(t, Config{}, trap)
	s := h.session()
	envelope(t, s, "b@example.net")
	wantCode(t, "trap rcpt", must(t)(s.Rcpt("trap@example.net", nil)), milter.ActDiscard)
	// An MTA that goes on anyway gets discard for the rest of the message.
	wantCode(t, "eoh", must(t)(s.HeaderEnd()), milter.ActDiscard)
	_, act, err := s.End()
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, "eom", act, milter.ActDiscard)
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestVerdictLogLineNamesTheMessageAndPostfixQueueID(t *testing.T) {
	var logs syncBuffer
	h := startPipeline(t, Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, scoreBody)
	s := h.session()
	envelope(t, s, "b@example.net")
	if err := s.Macros(milter.CodeEOB, "i", "4XyZ12AbC"); err != nil {
		t.Fatal(err)
	}
	_, act := message(t, s, "spammy\r\n", "Subject", "x")
	wantCode(t, "eom", act, milter.ActAccept)
	s.Close()
	h.srv.Close() // the session's last line is written
	var line map[string]any
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"msg":"milter verdict"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil {
		t.Fatalf("no verdict line in:\n%s", logs.String())
	}
	if id, _ := line[filter.LogMessageID].(string); id == "" || line["queue_id"] != "4XyZ12AbC" || line["action"] != "add-header" {
		t.Fatalf("verdict line %v", line)
	}
	// The pipeline's own result line carries the same ID.
	if n := strings.Count(logs.String(), `"`+filter.LogMessageID+`":"`+line[filter.LogMessageID].(string)+`"`); n < 2 {
		t.Fatalf("the ID is on %d lines, want the pipeline's too:\n%s", n, logs.String())
	}
}
