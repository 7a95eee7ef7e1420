package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
)

// The DNS tier: the HTML tier of benchcorpus with its link hosts made
// unique per message, sent from a connecting address unique per message,
// so that no lookup of a run can be answered from a cache (Portcullis's
// or a resolver's). Its lists are served by a local rbldnsd whose zones
// writeZones writes; they list only the RFC 5782 test points and the
// probe address and domain, so every measured lookup is a miss (an
// NXDOMAIN), as most lookups of real mail are.
const (
	dnsblZone = "bl.bench.test"
	uriblZone = "uribl.bench.test"
	// slot stands for the message number in the template's link hosts.
	slot = "QQQQQQQQ"
	// probeK is the message number of the probes: its link domains are
	// listed. Runs never reach it (10^8 messages).
	probeK = 99999999
)

// probeIP is the listed connecting address; clientIP never returns it.
var probeIP = netip.MustParseAddr("127.254.0.1")

// zones are rbldnsd's datasets: ip4set for the DNSBL, dnset for the
// URIBL. 127.0.0.2 and "test" are RFC 5782's listed test points, which
// Portcullis's health check asks for.
var zones = []struct{ name, typ, data string }{
	{dnsblZone, "ip4set", ":127.0.0.2:listed\n127.0.0.2\n" + probeIP.String() + "\n"},
	{uriblZone, "dnset", ":127.0.0.2:listed\ntest\nb" + strconv.Itoa(probeK) + "u.com\n"},
}

// writeZones writes the zone files into dir and returns rbldnsd's zone
// arguments (NAME:TYPE:FILE, relative to dir).
func writeZones(dir string) ([]string, error) {
	var args []string
	for i, z := range zones {
		file := fmt.Sprintf("zone%d", i)
		if err := os.WriteFile(filepath.Join(dir, file), []byte(z.data), 0o644); err != nil {
			return nil, err
		}
		args = append(args, z.name+":"+z.typ+":"+file)
	}
	return args, nil
}

// clientIP is message k's connecting address: 127.1.0.1 upwards, a
// different one for each of 15 million messages (probeIP for probeK).
// Loopback, so that the SMTP client can bind it on Linux without
// configuration.
func clientIP(k int) netip.Addr {
	if k == probeK {
		return probeIP
	}
	return netip.AddrFrom4([4]byte{127, byte(1 + k/62500%250), byte(k / 250 % 250), byte(1 + k%250)})
}

// dnsTier is the HTML tier (30 KB, 30 links, quoted-printable) whose
// message k has six link domains of its own: www.bKn0.com to
// www.bKn4.com for the stories and bKu.com for the unsubscribe link.
func dnsTier() (tier, error) {
	tmpl, slots, err := dnsTemplate()
	if err != nil {
		return tier{}, err
	}
	gen := func(k int) []byte {
		b := bytes.Clone(tmpl)
		d := fmt.Sprintf("%08d", k%100000000)
		for n, i := range slots {
			b[i] = d[n%len(d)]
		}
		return b
	}
	return tier{what: "HTML, 30 KB, 30 links, DNSBL + URIBL on rbldnsd, 6 link domains and the client address new per message",
		msgs: [][]byte{gen(0)}, gen: gen}, nil
}

// dnsTemplate rewrites the HTML part of the HTML tier with slot in every
// link host and re-encodes it; slots are where the slot's bytes are, in
// order, len(slot) per host.
func dnsTemplate() ([]byte, []int, error) {
	raw := benchcorpus.HTML(30<<10, 30)
	if bytes.IndexByte(raw, slot[0]) >= 0 {
		return nil, nil, fmt.Errorf("the HTML tier has a %q already", slot[0])
	}
	const start, end = "Content-Transfer-Encoding: quoted-printable\r\n\r\n", "\r\n--alt-b0undary--"
	i, j := bytes.Index(raw, []byte(start)), bytes.LastIndex(raw, []byte(end))
	if i < 0 || j < i {
		return nil, nil, fmt.Errorf("the HTML tier has no quoted-printable part")
	}
	i += len(start)
	html, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw[i:j])))
	if err != nil {
		return nil, nil, err
	}
	s := string(html)
	links := 0
	for d := range 5 {
		host := fmt.Sprintf("news%d.example.com", d)
		links += strings.Count(s, host)
		s = strings.ReplaceAll(s, host, fmt.Sprintf("www.b%sn%d.com", slot, d))
	}
	links += strings.Count(s, "https://example.com/")
	s = strings.ReplaceAll(s, "https://example.com/", "https://b"+slot+"u.com/")
	var q bytes.Buffer
	w := quotedprintable.NewWriter(&q)
	w.Write([]byte(s))
	w.Close()
	enc := bytes.ReplaceAll(bytes.ReplaceAll(q.Bytes(), []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	out := append(append(append([]byte(nil), raw[:i]...), enc...), raw[j:]...)
	// A soft line break may fall inside a host: the slot's bytes are
	// found one by one (the tier has no other Q: checked above).
	var slots []int
	for k, c := range out {
		if c == slot[0] {
			slots = append(slots, k)
		}
	}
	if len(slots) != links*len(slot) || links < 30 {
		return nil, nil, fmt.Errorf("DNS tier: %d slot bytes for %d link hosts", len(slots), links)
	}
	return out, slots, nil
}

// dnsConfig is the dns section of the in-process and gateway
// configurations: both lists on the rbldnsd at addr, scored so that a
// listing rejects (the probes tell a lookup that happened from one that
// did not), loopback looked up.
func dnsConfig(addr string) config.DNS {
	return config.DNS{
		Resolvers:       []string{addr},
		DNSBL:           []string{dnsblZone + "=20"},
		URIBL:           []string{uriblZone + "=20"},
		LookupNonPublic: []string{"127.0.0.0/8"},
	}
}

// dnsYAML is dnsConfig in the gateway's YAML.
func dnsYAML(addr string) string {
	c := dnsConfig(addr)
	return fmt.Sprintf("dns:\n  resolvers: [%q]\n  dnsbl: [%q]\n  uribl: [%q]\n  lookup_non_public: [%q]\n",
		c.Resolvers[0], c.DNSBL[0], c.URIBL[0], c.LookupNonPublic[0])
}

// inProcessDNS is the default pipeline with dnsConfig, in this process.
func inProcessDNS(ctx context.Context, addr string) (*config.Filters, system, error) {
	cfg := config.Default()
	cfg.DNS = dnsConfig(addr)
	f, err := config.BuildFilters(ctx, cfg, config.Options{})
	if err != nil {
		return nil, system{}, err
	}
	lim := cfg.Limits.FilterLimits()
	check := func(_, k int, raw []byte) error {
		return verdictError(f.Pipeline.CheckAll(ctx, filter.NewMessageBytes(filter.Envelope{ClientIP: clientIP(k)}, raw, lim)))
	}
	return f, system{name: "Portcullis", portcullis: true, check: check, cpu: selfCPU}, nil
}

// probe makes sure that s looks up both lists for the DNS tier t: the
// probe address with an unlisted message, and an unlisted address with
// the message whose link domains are listed, must each be refused
// (errRejected), and a message with neither must pass. The probes'
// message numbers are ones a run never reaches, so nothing they look up
// is in a cache when the run asks.
func probe(t tier, s system) error {
	for _, p := range []struct {
		what string
		k    int
		raw  []byte
	}{
		{"the DNSBL listing of " + probeIP.String(), probeK, t.gen(probeK - 1)},
		{"the URIBL listing of b" + strconv.Itoa(probeK) + "u.com", probeK - 2, t.gen(probeK)},
	} {
		if err := s.check(0, p.k, p.raw); !errors.Is(err, errRejected) {
			return fmt.Errorf("%s did not see %s (answer: %v)", s.name, p.what, err)
		}
	}
	if err := s.check(0, probeK-3, t.gen(probeK-3)); err != nil {
		return fmt.Errorf("%s, a message on no list: %w", s.name, err)
	}
	return nil
}

// rbldnsdQueries is the total of queries rbldnsd has answered, from the
// first line of its statistics file (rbldnsd -s FILE -c 1 writes one a
// second: "TIMESTAMP zone:qtot:qok:qnxd:bin:bout ... *:qtot:...") written
// after t; it waits up to 10 s for that line.
func rbldnsdQueries(file string, t time.Time) (int64, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(file)
		if err != nil {
			return 0, err
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		last := strings.Fields(lines[len(lines)-1])
		if len(last) > 1 {
			ts, _ := strconv.ParseInt(last[0], 10, 64)
			if ts > t.Unix() {
				for _, f := range last[1:] {
					if q, ok := strings.CutPrefix(f, "*:"); ok {
						n, _, _ := strings.Cut(q, ":")
						return strconv.ParseInt(n, 10, 64)
					}
				}
				return 0, fmt.Errorf("%s: no total in %q", file, lines[len(lines)-1])
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: no statistics line after %v", file, t.Format(time.TimeOnly))
		}
		time.Sleep(100 * time.Millisecond) // rbldnsd writes it once a second
	}
}

// queriesPerMessage sends n messages of t to s, one at a time, and
// returns the queries rbldnsd answered per message meanwhile (from its
// statistics file): what tells that every system asks the lists as
// often, and that no cache answered.
func queriesPerMessage(stats string, t tier, s system, n int) (float64, error) {
	q0, err := rbldnsdQueries(stats, time.Now())
	if err != nil {
		return 0, err
	}
	for range n {
		if err := check(s, 0, t); err != nil {
			return 0, err
		}
	}
	q1, err := rbldnsdQueries(stats, time.Now())
	return float64(q1-q0) / float64(n), err
}
