package config

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

func TestAVFleetNeedsURL(t *testing.T) {
	c, err := Parse("t.yaml", []byte("av: {fleet: {cache: true}}\n"))
	if err == nil {
		err = c.Check()
	}
	if err == nil || !strings.Contains(err.Error(), "av: fleet cache and guard need fleet.url") {
		t.Fatalf("err %v", err)
	}
}

// cmetrics counts what the filters add.
type cmetrics struct {
	mu sync.Mutex
	m  map[string]float64
}

func (c *cmetrics) Add(name string, d float64, labels ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]float64{}
	}
	c.m[name+strings.Join(labels, ",")] += d
}
func (c *cmetrics) Set(string, float64, ...string)     {}
func (c *cmetrics) Observe(string, float64, ...string) {}
func (c *cmetrics) get(name string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n float64
	for k, v := range c.m {
		if strings.HasPrefix(k, name) {
			n += v
		}
	}
	return n
}

// av.fleet wires the shared cache: two nodes built from the file over a
// real c-icap (its ISTag is the signature version) and NATS; the second
// node takes the first one's answer for the attachment they share.
func TestAVFleetBuild(t *testing.T) {
	icap := testsvc.SharedICAP(t)
	n := natstest.Start(t)
	msg := "From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: text/plain\r\n\r\nhi %d\r\n--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=r.pdf\r\n\r\n" +
		"%%PDF-1.4 quarterly figures\r\n--B--\r\n"
	var nodes []*cmetrics
	for i, node := range []string{"a", "b"} {
		c, err := Parse("t.yaml", fmt.Appendf(nil, "av: {icap: [%q], fleet: {cache: true, guard: true}}\nfleet: {url: %q, node: %s}\nrules: {default: false, spamassassin: \"\"}\n",
			icap.URL, n.URL, node))
		if err != nil {
			t.Fatal(err)
		}
		met := &cmetrics{}
		f, err := BuildFilters(context.Background(), c, Options{Metrics: met})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		v := f.Pipeline.CheckAll(t.Context(), filter.NewMessageBytes(filter.Envelope{}, fmt.Appendf(nil, msg, i), filter.Limits{}))
		if v.Action != filter.Accept {
			t.Fatalf("node %s: %v %v (filters %v)", node, v.Action, v.Symbols, f.Names())
		}
		nodes = append(nodes, met)
	}
	if h := nodes[1].get("portcullis_scanner_shared_cache_hits_total"); h < 1 {
		t.Fatalf("node b: %v shared cache hits, want the attachment's; metrics %v", h, nodes[1].m)
	}
	if e := nodes[0].get("portcullis_scanner_shared_cache_errors_total") + nodes[1].get("portcullis_scanner_shared_cache_errors_total"); e != 0 {
		t.Fatalf("shared cache errors: %v", e)
	}
}

// NATS never reachable: the node builds, scans locally and shows the
// outage in its metrics.
func TestAVFleetNATSUnreachable(t *testing.T) {
	icap := testsvc.SharedICAP(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", testsvc.FreePort(t))
	c, err := Parse("t.yaml", fmt.Appendf(nil, "av: {icap: [%q], fleet: {cache: true, guard: true}}\nfleet: {url: %q, node: a}\nrules: {default: false, spamassassin: \"\"}\n", icap.URL, url))
	if err != nil {
		t.Fatal(err)
	}
	met := &cmetrics{}
	f, err := BuildFilters(context.Background(), c, Options{Metrics: met})
	if err != nil {
		t.Fatalf("build with NATS down: %v", err)
	}
	defer f.Close()
	raw := "From: a@example.org\r\nSubject: x\r\n\r\nhello\r\n"
	v := f.Pipeline.CheckAll(t.Context(), filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{}))
	if v.Action != filter.Accept || met.get("portcullis_scanner_scans_total") == 0 {
		t.Fatalf("with NATS down: %v %v, scans %v; want a local scan", v.Action, v.Symbols, met.get("portcullis_scanner_scans_total"))
	}
	if met.get("portcullis_scanner_shared_cache_errors_total") == 0 {
		t.Fatalf("outage not counted: %v", met.m)
	}
}
