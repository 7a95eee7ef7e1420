package milterd

import (
	"context"
	"sync"
	"testing"

	"github.com/emersion/go-milter"

	"github.com/portcullis-mail/portcullis/filter"
)

// Postfix's {auth_authen} and {tls_version} macros reach the filters from
// MAIL on, and the envelope of the message they judge.
func TestAuthAndTLSFromMacros(t *testing.T) {
	var mu sync.Mutex
	seen := map[filter.Stage]filter.Envelope{}
	rec := filter.Func("rec", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		mu.Lock()
		seen[filter.StageOf(ctx)] = m.Envelope
		mu.Unlock()
		return filter.Result{}, nil
	}, filter.Stages()...)
	h := startPipeline(t, Config{}, rec)
	s := h.session()
	wantCode(t, "connect", must(t)(s.Conn("client.example", milter.FamilyInet, 4242, "192.0.2.7")), milter.ActContinue)
	if err := s.Macros(milter.CodeHelo, "{tls_version}", "TLSv1.3", "{cipher}", "TLS_AES_256_GCM_SHA384"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "helo", must(t)(s.Helo("client.example")), milter.ActContinue)
	if err := s.Macros(milter.CodeMail, "{auth_type}", "PLAIN", "{auth_authen}", "alice@example.net"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "mail", must(t)(s.Mail("alice@example.net", nil)), milter.ActContinue)
	wantCode(t, "rcpt", must(t)(s.Rcpt("b@example.org", nil)), milter.ActContinue)
	_, act := message(t, s, "hello\r\n", "Subject", "x")
	wantCode(t, "eom", act, milter.ActAccept)
	mu.Lock()
	defer mu.Unlock()
	for _, st := range []filter.Stage{filter.MailFrom, filter.Rcpt, filter.Data} {
		if env := seen[st]; env.AuthUser != "alice@example.net" || !env.TLS {
			t.Errorf("%v: auth %q tls %v, want alice@example.net and true", st, env.AuthUser, env.TLS)
		}
	}
	if env := seen[filter.Connect]; env.AuthUser != "" || env.TLS {
		t.Errorf("connect saw auth %q tls %v before any macro", env.AuthUser, env.TLS)
	}
}
