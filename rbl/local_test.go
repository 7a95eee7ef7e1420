package rbl

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
)

// memLocal is a Local over a map, loaded or not.
type memLocal struct {
	mu      sync.Mutex
	loaded  bool
	answers map[netip.Addr]LocalAnswer
}

func (m *memLocal) LookupLocal(ip netip.Addr) (LocalAnswer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.loaded || !ip.Is4() {
		return LocalAnswer{}, false
	}
	return m.answers[ip], true
}

func (m *memLocal) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.loaded {
		return errors.New("zone not loaded")
	}
	return nil
}

func (m *memLocal) load(answers map[string]LocalAnswer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loaded = true
	m.answers = map[netip.Addr]LocalAnswer{}
	for k, v := range answers {
		m.answers[netip.MustParseAddr(k)] = v
	}
}

func codes(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, x := range s {
		out = append(out, netip.MustParseAddr(x))
	}
	return out
}

func localChecker(t *testing.T, f *fakeDNS, loc *memLocal, require bool) (*Checker, *memMetrics) {
	t.Helper()
	m := newMemMetrics()
	c, err := NewChecker(Config{Resolvers: []string{f.Addr}, HealthInterval: -1, LookupNonPublic: TestNetworks(), Metrics: m,
		Lists: []List{{Name: "bl", Zone: "bl.test", Local: loc, RequireLocal: require, Codes: []Code{
			{Match: "127.0.0.2", Name: "spam", Score: 4}, {Match: "127.0.0.4/30", Name: "exploited", Score: 3}}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, m
}

// A loaded Local answers without a query; its answers are judged like
// DNS answers; what it does not cover goes to DNS.
func TestLocalAnswers(t *testing.T) {
	f := startFakeDNS(t)
	f.list("5.2.0.192.bl.test", "127.0.0.2")
	loc := &memLocal{}
	c, m := localChecker(t, f, loc, false)
	ctx := context.Background()

	// Not loaded: DNS answers.
	if a := c.Lookup(ctx, "bl", "192.0.2.5"); a.Status != Listed || a.Local || f.queries("5.2.0.192.bl.test") == 0 {
		t.Fatalf("unloaded local: %+v, %d queries", a, f.queries("5.2.0.192.bl.test"))
	}
	if got := m.get("portcullis_rbl_local_fallbacks_total", "list", "bl"); got != 1 {
		t.Errorf("fallbacks = %v, want 1", got)
	}

	// Loaded: the zone wins over the cached DNS answer, and nothing is asked.
	loc.load(map[string]LocalAnswer{
		"192.0.2.1":  {Listed: true, Codes: codes("127.0.0.2"), Reason: "spam from 192.0.2.1"},
		"192.0.2.2":  {Listed: true, Codes: codes("127.0.0.5"), Reason: strings.Repeat("x", 300)},
		"192.0.2.66": {Listed: true, Codes: codes("127.255.255.254")},
		"192.0.2.77": {Listed: true, Codes: codes("127.0.0.128")},
		"192.0.2.88": {Listed: true, Codes: codes("10.0.0.1")},
	})
	before := f.total()
	for _, tc := range []struct {
		ip     string
		status Status
		symbol string
		err    error
	}{
		{"192.0.2.1", Listed, "RBL_BL_SPAM", nil},
		{"192.0.2.2", Listed, "RBL_BL_EXPLOITED", nil},
		{"192.0.2.5", NotListed, "", nil}, // listed over DNS, not in the zone
		{"192.0.2.66", Unknown, "", ErrQueryRefused},
		{"192.0.2.77", Unknown, "", ErrUndefinedCode},
		{"192.0.2.88", Unknown, "", ErrBadAnswer},
	} {
		a := c.Lookup(ctx, "bl", tc.ip)
		if a.Status != tc.status || !a.Local || a.Cached || (tc.err != nil && !errors.Is(a.Err, tc.err)) {
			t.Errorf("%s: %s local=%v cached=%v err=%v, want %s %v", tc.ip, a.Status, a.Local, a.Cached, a.Err, tc.status, tc.err)
		}
		if tc.symbol != "" && (len(a.Symbols) != 1 || a.Symbols[0].Name != tc.symbol) {
			t.Errorf("%s: symbols %+v, want %s", tc.ip, a.Symbols, tc.symbol)
		}
	}
	if a := c.Lookup(ctx, "bl", "192.0.2.2"); len(a.Reason) != 255 {
		t.Errorf("reason of %d bytes, want 255 (one DNS character-string)", len(a.Reason))
	}
	if n := f.total() - before; n != 0 {
		t.Errorf("%d DNS queries with the zone loaded, want 0", n)
	}
	if got := m.get("portcullis_rbl_unknown_total", "list", "bl", "reason", "query-refused"); got != 1 {
		t.Errorf("unknown{query-refused} = %v, want 1", got)
	}
	// IPv6 is not in an ip4set: DNS.
	if a := c.Lookup(ctx, "bl", "2001:db8::1"); a.Local || f.total() == before {
		t.Errorf("IPv6 answered locally: %+v", a)
	}
}

// The connect filter answers from the zone with DNS down; RequireLocal
// keeps the checker not ready until the zone is loaded.
func TestLocalFilterAndReadiness(t *testing.T) {
	f := startFakeDNS(t)
	f.setMode(modeSilent)
	loc := &memLocal{}
	c, _ := localChecker(t, f, loc, true)
	if err := c.Ready(); !errors.Is(err, filter.ErrNotReady) || !strings.Contains(err.Error(), "zone not loaded") {
		t.Fatalf("Ready with the zone not loaded = %v", err)
	}
	loc.load(map[string]LocalAnswer{"192.0.2.1": {Listed: true, Codes: codes("127.0.0.2"), Reason: "r"}})
	if err := c.Ready(); err != nil {
		t.Fatalf("Ready with the zone loaded = %v", err)
	}
	p := filter.NewPipeline(filter.Options{}, c.Filters()...)
	tx := p.Begin(filter.Envelope{ClientIP: netip.MustParseAddr("192.0.2.1")})
	defer tx.Close()
	v := tx.Connect(context.Background())
	var names []string
	for _, s := range v.Symbols {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "RBL_BL_SPAM" {
		t.Fatalf("symbols %v, want RBL_BL_SPAM alone (no RBL_BL_FAIL: DNS was not needed)", names)
	}
	if f.total() != 0 {
		t.Errorf("%d DNS queries", f.total())
	}
}

func TestLocalConfig(t *testing.T) {
	_, err := NewChecker(Config{Resolvers: []string{"127.0.0.1:53"}, HealthInterval: -1,
		Lists: []List{{Zone: "dbl.test", Kind: DomainList, Local: &memLocal{}}}})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("a local zone on a domain list: %v", err)
	}
}
