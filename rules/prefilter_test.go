package rules

import (
	"path/filepath"
	"slices"
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
