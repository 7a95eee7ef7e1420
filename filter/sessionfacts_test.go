package filter

import (
	"context"
	"strings"
	"testing"
)

// SetAuth and SetTLS, called after Begin and before Mail, reach the
// later stages and the envelope, and survive Reset; the stages already
// run saw what Begin knew.
func TestTransactionSetAuthTLS(t *testing.T) {
	type saw struct {
		stage Stage
		auth  string
		tls   bool
	}
	var seen []saw
	rec := &fake{name: "rec", stages: Stages(), check: func(ctx context.Context, m *Message) (Result, error) {
		seen = append(seen, saw{StageOf(ctx), m.Envelope.AuthUser, m.Envelope.TLS})
		return Result{}, nil
	}}
	p := NewPipeline(Options{}, rec)
	tx := p.Begin(Envelope{})
	defer tx.Close()
	tx.Connect(ctx)
	tx.Helo(ctx, "client.example")
	tx.SetAuth("alice@example.net")
	tx.SetTLS(true)
	tx.Mail(ctx, "alice@example.net")
	tx.Rcpt(ctx, "bob@example.org")
	_, err := tx.Data(ctx, strings.NewReader(smallMsg))
	if err != nil {
		t.Fatal(err)
	}
	want := []saw{{Connect, "", false}, {Helo, "", false}, {MailFrom, "alice@example.net", true},
		{Rcpt, "alice@example.net", true}, {Data, "alice@example.net", true}}
	if len(seen) != len(want) {
		t.Fatalf("filters ran %d times: %+v", len(seen), seen)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("run %d: %+v, want %+v", i, seen[i], want[i])
		}
	}
	if env := tx.Envelope(); env.AuthUser != "alice@example.net" || !env.TLS {
		t.Errorf("envelope: %+v", env)
	}
	if m := tx.Message(); m == nil || m.Envelope.AuthUser != "alice@example.net" {
		t.Errorf("the spooled message's envelope lacks the auth user")
	}
	// The next transaction on the session keeps them; SetAuth("") clears.
	tx.Reset()
	seen = nil
	tx.Mail(ctx, "alice@example.net")
	if len(seen) != 1 || seen[0].auth != "alice@example.net" || !seen[0].tls {
		t.Errorf("after Reset: %+v", seen)
	}
	tx.SetAuth("")
	tx.SetTLS(false)
	seen = nil
	tx.Mail(ctx, "anon@example.net")
	if len(seen) != 1 || seen[0].auth != "" || seen[0].tls {
		t.Errorf("after clearing: %+v", seen)
	}
}
