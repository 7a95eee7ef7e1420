package rules

import (
	"slices"
	"testing"
)

// addrListCases are address lists plainAddrs parses and ones it leaves
// to net/mail; either way addrList must answer as addrBoth does.
var addrListCases = []string{
	"a@b.example",
	"<a@b.example>",
	"Sender Name <sender@example.org>",
	"Sender Name<sender@example.org>",
	"Sender Name   <sender@example.org>",
	"\"Doe, John\" <john@example.org>",
	"\"Doe\tJohn\" <john@example.org>",
	"J. R. Doe <j.r.doe@example.org>",
	"a@b.example, C D <c@d.example>,<e@f.example>",
	"a@b.example,\t\"x\" <c@d.example>",
	"a@b, c@d, e@f, g@h, i@j, k@l", // more than plainAddrs' stack array
	// Left to net/mail:
	"",
	"   ",
	"a@b.example,",
	",a@b.example",
	"a@b.example,,c@d.example",
	"a@b.example (Sender)",
	"Sender  Name <a@b.example>",
	"Sender\tName <a@b.example>",
	"=?utf-8?q?Jos=C3=A9?= <jose@example.org>",
	"x=?y <a@b.example>",
	"\"\" <a@b.example>",
	"\"a\\\"b\" <a@b.example>",
	"\"unclosed <a@b.example>",
	"José <jose@example.org>",
	".a@b.example",
	"a.@b.example",
	"a..b@c.example",
	"a@b..example",
	"a@.b",
	"a@b.",
	"a@[192.0.2.1]",
	"<a@b.example",
	"<a @b.example>",
	"< a@b.example>",
	"<a@b.example >",
	"<\"q\"@b.example>",
	"a@b.example <c@d.example>",
	"a@b<c@d>",
	"<a@b>c",
	"Name",
	"Name <>",
	"undisclosed-recipients:;",
	"Group: a@b.example;",
	"\"A\" B <a@b.example>",
	"A \"B\" <a@b.example>",
	"a@b\r\n",
	"a@b.example\n c@d.example",
	"@b.example",
	"a@",
}

func TestAddrListMatchesAddrBoth(t *testing.T) {
	plain := 0
	for _, s := range addrListCases {
		if _, _, ok := plainAddrs(s); ok {
			plain++
		}
		checkAddrList(t, s)
	}
	if plain != 11 {
		t.Errorf("plainAddrs parsed %d of the cases, want the first 11", plain)
	}
}

func checkAddrList(t *testing.T, s string) {
	t.Helper()
	wantA, wantN := addrBoth(s)
	gotA, gotN := addrList(s)
	if !slices.Equal(gotA, wantA) || !slices.Equal(gotN, wantN) {
		t.Errorf("addrList(%q) = %q, %q; addrBoth: %q, %q", s, gotA, gotN, wantA, wantN)
	}
	if a, n, ok := plainAddrs(s); ok && (cap(a) != len(a) || len(n) != len(a)) {
		t.Errorf("plainAddrs(%q): lengths %d, %d, cap %d", s, len(a), len(n), cap(a))
	}
}

func TestAddrListAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { addrList("Sender Name <sender@example.org>") }); n != 1 {
		t.Errorf("addrList allocates %v times for one plain address, want 1", n)
	}
}

func FuzzAddrList(f *testing.F) {
	for _, s := range addrListCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkAddrList(t, s) })
}
