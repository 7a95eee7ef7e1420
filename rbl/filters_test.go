package rbl

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

func TestLinksCapped(t *testing.T) {
	f := startFakeDNS(t)
	f.list("spam0.example.dbl.test", "127.0.1.2")
	h := newHarness(t, Config{Resolvers: []string{f.Addr}, MaxLinks: 5,
		Lists: []List{{Name: "dbl", Zone: "dbl.test", Kind: DomainList, Score: 3}}})
	var body strings.Builder
	body.WriteString("From: a@b.example\r\nContent-Type: text/plain\r\n\r\n")
	for i := range 60 {
		// Two hosts of each registrable domain: one lookup each.
		fmt.Fprintf(&body, "http://www.spam%d.example/ http://img.spam%d.example/x\r\n", i, i)
	}
	m := filter.NewMessageBytes(filter.Envelope{}, []byte(body.String()), filter.Limits{})
	fs := h.Filters()
	if len(fs) != 1 || fs[0].Name() != DataFilterName {
		t.Fatalf("filters %v", fs)
	}
	res, err := fs[0].Check(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range res.Symbols {
		got = append(got, fmt.Sprintf("%s:%g:%s", s.Name, s.Score, s.Detail))
	}
	want := []string{
		"RBL_LINKS_CAPPED:0:checked 5 of 60 link hosts",
		"RBL_DBL:3:spam0.example listed in dbl: 127.0.1.2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("symbols:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var asked int
	for i := range 60 {
		if f.queries(fmt.Sprintf("spam%d.example.dbl.test", i)) > 0 {
			asked++
		}
	}
	if asked != 5 {
		t.Fatalf("%d link domains asked, want 5", asked)
	}
	if h.m.get("portcullis_rbl_links_capped_total") != 1 {
		t.Fatal("cap not counted")
	}
}

func TestSenderDomains(t *testing.T) {
	f := startFakeDNS(t)
	f.list("evil.example.dbl.test", "127.0.1.2")
	h := newHarness(t, Config{Resolvers: []string{f.Addr},
		Lists: []List{{Name: "dbl", Zone: "dbl.test", Kind: DomainList, Score: 3, Targets: SenderDomain | HeloDomain | FromDomain}}})
	fs := h.Filters()
	if len(fs) != 2 || fs[0].Name() != MailFromFilterName || fs[1].Name() != DataFilterName {
		t.Fatalf("filters %v", fs)
	}
	for _, tc := range []struct {
		env  filter.Envelope
		raw  string
		f    int
		want string
	}{
		{filter.Envelope{MailFrom: "x@mail.EVIL.example", Helo: "[192.0.2.1]"}, "", 0, "RBL_DBL"},
		{filter.Envelope{MailFrom: "", Helo: "host.evil.example."}, "", 0, "RBL_DBL"},
		{filter.Envelope{MailFrom: "x@good.example", Helo: "localhost"}, "", 0, ""},
		{filter.Envelope{}, "From: \"Bank\" <alert@evil.example>\r\n\r\nhi\r\n", 1, "RBL_DBL"},
		{filter.Envelope{}, "From: broken <<alert@EVIL.example>\r\n\r\nhi\r\n", 1, "RBL_DBL"},
		{filter.Envelope{}, "From: ok@good.example\r\n\r\nhi\r\n", 1, ""},
	} {
		var m *filter.Message
		if tc.raw == "" {
			m = filter.NewMessage(tc.env, nil, 0, filter.Limits{})
		} else {
			m = filter.NewMessageBytes(tc.env, []byte(tc.raw), filter.Limits{})
		}
		res, err := fs[tc.f].Check(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range res.Symbols {
			names = append(names, s.Name)
		}
		if strings.Join(names, " ") != tc.want {
			t.Errorf("%+v %q: symbols %v, want %q", tc.env, tc.raw, res.Symbols, tc.want)
		}
	}
}
