package rules

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// TestShortcutsKeepHits: the default pipeline's rules (the embedded set
// and SpamAssassin's) give the same hits with every shortcut the engine
// takes (the literal prefilter, windows, byte and run checks, anchored
// starts, the DFAs) as without them, on real mail, the speed tiers and a
// message of the scripts and symbols the checks look for. And the DFAs
// alone change nothing: with every other shortcut, the same hits with
// Go's regexp only.
func TestShortcutsKeepHits(t *testing.T) {
	t.Parallel()
	saFiles(t)
	cfg := Config{Default: true, SpamAssassin: "/usr/share/spamassassin"}
	fast := mustBuild(t, cfg)
	cfg.noDFA = true
	regexpOnly := mustBuild(t, cfg)
	cfg.NoPrefilter = true
	plain := mustBuild(t, cfg)
	var msgs []string
	files, _ := filepath.Glob("../filter/testdata/mail/*/*")
	for i, f := range files {
		if i%3 == 0 || testing.Short() && i%9 != 0 {
			continue // a third of the corpus is enough for the shapes of mail
		}
		msgs = append(msgs, readTestdata(t, filepath.Join("..", f)))
	}
	for _, tier := range benchcorpus.Tiers() {
		if len(tier.Raw) < 1<<20 {
			msgs = append(msgs, string(tier.Raw))
		}
	}
	msgs = append(msgs, "From: \"PayPal Сервис\" <service@paypa1.example>\r\nTo: you@example.net\r\nSubject: Ваш счёт $1,000,000 USD\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"+
		"Dear p\u0430ypal cust\u043emer, your acc\u043eunt is l\u043ecked.\r\nClaim €5.000.000,00 or £250,000 now!!! "+
		"Visit http://xn--pypal-4ve.example/login\u200b today. \x00 NUL \xff\xfe invalid bytes.\r\n"+
		"ПОЗДРАВЛЯЕМ ВЫ ВЫИГРАЛИ 1 000 000 РУБЛЕЙ\r\n")
	for i, raw := range msgs {
		a := eval(t, fast, filter.Envelope{}, raw)
		b := eval(t, plain, filter.Envelope{}, raw)
		if !slices.Equal(names(a), names(b)) {
			t.Errorf("message %d: with shortcuts %v, without %v", i, names(a), names(b))
		}
		if r := eval(t, regexpOnly, filter.Envelope{}, raw); !slices.Equal(names(a), names(r)) {
			t.Errorf("message %d: with DFAs %v, with Go's regexp only %v", i, names(a), names(r))
		}
	}
}

// shortcutSets are the sets FuzzShortcutsKeepHits compares, built once
// per process: the default pipeline's rules with every shortcut and with
// none (Config.NoPrefilter).
var shortcutSets = sync.OnceValues(func() ([2]*Set, error) {
	cfg := Config{Default: true, SpamAssassin: "/usr/share/spamassassin"}
	fast, err := Build(cfg)
	if err != nil {
		return [2]*Set{}, err
	}
	cfg.NoPrefilter = true
	plain, err := Build(cfg)
	return [2]*Set{fast, plain}, err
})

// FuzzShortcutsKeepHits is TestShortcutsKeepHits on any message: the
// prefilter, the lazy helpers and the other shortcuts give the symbols
// testing every rule gives.
func FuzzShortcutsKeepHits(f *testing.F) {
	saFiles(f)
	files, _ := filepath.Glob("../filter/testdata/mail/*/*")
	for _, name := range files {
		if raw, err := os.ReadFile(name); err == nil && len(raw) <= 4<<10 {
			f.Add(raw)
		}
	}
	f.Add([]byte("From: \"PayPal Сервис\" <service@paypa1.example>\r\nSubject: Ваш счёт $1,000,000 USD\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Dear cust\u043emer, <a href=\"http://xn--pypal-4ve.example/\">log in</a> now!!!</p>\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 8<<10 {
			return // the shapes of mail, at a few executions a second
		}
		sets, err := shortcutSets()
		if err != nil {
			t.Fatal(err)
		}
		a, b := eval(t, sets[0], filter.Envelope{}, string(raw)), eval(t, sets[1], filter.Envelope{}, string(raw))
		if !slices.Equal(names(a), names(b)) {
			t.Fatalf("with shortcuts %v, without %v", names(a), names(b))
		}
	})
}

// TestPseudoHeadersKeyed: rules on SpamAssassin's relay and envelope
// pseudo-headers are prefiltered by their literals, which the scanned
// header text holds, and still hit.
func TestPseudoHeadersKeyed(t *testing.T) {
	cf := writeRules(t, "p.cf", `
header RELAY_HELO   X-Spam-Relays-Untrusted =~ / helo=spammer /
header ENV_SPAMMER  EnvelopeFrom =~ /\@spammer\.example/
`)
	s := mustBuild(t, Config{Files: []string{cf}})
	for _, c := range s.scans[scopeHeader].always {
		t.Errorf("%s is tested on every message: its literal is not prefiltered", c.Name)
	}
	raw := "Received: from spammer (unknown [203.0.113.5]) by mx.example.org with SMTP id 1\r\n" +
		"Subject: hi\r\n\r\nbody\r\n"
	ev := eval(t, s, filter.Envelope{MailFrom: "bulk@spammer.example"}, raw)
	if got := names(ev); !slices.Equal(got, []string{"ENV_SPAMMER", "RELAY_HELO"}) {
		t.Errorf("hits %v, want ENV_SPAMMER and RELAY_HELO", got)
	}
	ev = eval(t, s, filter.Envelope{MailFrom: "a@example.org"}, strings.Replace(raw, "from spammer", "from friend", 1))
	if len(ev.Symbols) != 0 {
		t.Errorf("hits %v on a message without the literals", ev.Symbols)
	}
}
