package scanner_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/scanner"
	"github.com/portcullis-mail/portcullis/scanner/clamd"
	"github.com/portcullis-mail/portcullis/scanner/icap"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testsvc.StopShared()
	os.Exit(code)
}

// mail builds a message with one base64 attachment.
func mail(name string, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\nTo: b@example.net\r\nSubject: test\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"BOUND\"\r\n\r\n")
	b.WriteString("--BOUND\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n")
	b.WriteString("--BOUND\r\nContent-Type: application/octet-stream; name=\"" + name + "\"\r\n")
	b.WriteString("Content-Disposition: attachment; filename=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--BOUND--\r\n")
	return b.Bytes()
}

func zipOf(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func msg(raw []byte) *filter.Message {
	return filter.NewMessageBytes(filter.Envelope{}, raw, filter.Limits{})
}

func clamdEngine(t *testing.T, name, addr string, timeout time.Duration) *clamd.Client {
	t.Helper()
	c, err := clamd.New(clamd.Config{Addr: addr, Name: name, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func icapEngine(t *testing.T, url string) *icap.Client {
	t.Helper()
	c, err := icap.New(icap.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newFilter(t *testing.T, o scanner.Options, cfg scanner.Config) *scanner.Filter {
	t.Helper()
	m, err := scanner.NewMulti(o)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Scanner = m
	f, err := scanner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func symbols(r filter.Result, name string) []string {
	var out []string
	for _, s := range r.Symbols {
		if s.Name == name {
			out = append(out, s.Detail)
		}
	}
	return out
}

func hasDetail(r filter.Result, name, substr string) bool {
	for _, d := range symbols(r, name) {
		if strings.Contains(d, substr) {
			return true
		}
	}
	return false
}

func TestFilterRealEnginesLeaves(t *testing.T) {
	d := testsvc.SharedClamd(t)
	s := testsvc.SharedICAP(t)
	exe := testsvc.ClamavFile(t, "clam.exe")
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{clamdEngine(t, "clamd", d.Addr, 0), icapEngine(t, s.URL)}},
		scanner.Config{Leaves: scanner.ArchiveLeaves(archive.New(archive.Config{}))})

	res, err := f.Check(t.Context(), msg(mail("invoice.zip", zipOf(t, "eicar.com", testsvc.Eicar()))))
	if err != nil {
		t.Fatal(err)
	}
	want := "clamd: " + testsvc.EicarSignature + ".UNOFFICIAL in invoice.zip/eicar.com"
	if !hasDetail(res, scanner.SymInfected, want) || res.Action != filter.Reject {
		t.Fatalf("eicar in zip: %v, want %q", res, want)
	}
	if !hasDetail(res, scanner.SymInfected, "icap: "+testsvc.EicarSignature) {
		t.Fatalf("eicar in zip: ICAP finding missing: %v", res)
	}
	// Each byte once: the zip reached the engines as its leaves, and the
	// rest of the message without it, so the engines did not find EICAR
	// a second time in the whole message.
	if hasDetail(res, scanner.SymInfected, " in message") {
		t.Fatalf("eicar in zip streamed twice: %v", res)
	}

	res, err = f.Check(t.Context(), msg(mail("setup.zip", zipOf(t, "dir/clam.exe", exe))))
	if err != nil || !hasDetail(res, scanner.SymInfected, "in setup.zip/dir/clam.exe") {
		t.Fatalf("clam.exe in zip: %v %v", res, err)
	}

	res, err = f.Check(t.Context(), msg(mail("report.zip", zipOf(t, "report.txt", []byte("quarterly numbers")))))
	if err != nil || len(res.Symbols) != 0 || res.Action != filter.Accept {
		t.Fatalf("clean: %v %v", res, err)
	}
}

func TestRealCacheByVersion(t *testing.T) {
	d := testsvc.SharedClamd(t)
	c := clamdEngine(t, "clamd", d.Addr, 0)
	m, err := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{c}})
	if err != nil {
		t.Fatal(err)
	}
	// The test clamd has only unofficial signatures: its VERSION names no
	// database version, so nothing would tell a RELOAD apart, and its
	// results are not cached.
	data := testsvc.Eicar()
	for i := range 2 {
		v, err := m.Scan(t.Context(), bytes.NewReader(data), int64(len(data)))
		if err != nil || !v.Infected || v.Cached != 0 {
			t.Fatalf("scan %d: %+v %v", i, v, err)
		}
	}
	if _, err := c.Version(t.Context()); !errors.Is(err, clamd.ErrNoSignatureVersion) {
		t.Fatalf("version: %v, want ErrNoSignatureVersion", err)
	}
	if st := m.States()[0]; st.Version != "" {
		t.Fatalf("version %q", st.Version)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// faulty is an engine after a bad update: it flags everything.
func faulty() scanner.Engine {
	return scanner.EngineFunc("faulty", func(ctx context.Context, r io.Reader) (scanner.Result, error) {
		io.Copy(io.Discard, r)
		return scanner.Result{Signatures: []string{"Bad.Update.Everything"}}, nil
	})
}

func TestFilterQuorumWithFaultyEngine(t *testing.T) {
	d := testsvc.SharedClamd(t)
	s := testsvc.SharedICAP(t)
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{clamdEngine(t, "clamd", d.Addr, 0), icapEngine(t, s.URL), faulty()}, Mode: scanner.Quorum, Quorum: 2},
		scanner.Config{})
	res, err := f.Check(t.Context(), msg(mail("a.txt", []byte("harmless"))))
	if err != nil || res.Action != filter.Quarantine || !hasDetail(res, scanner.SymUnconfirmed, "faulty: Bad.Update.Everything in message") {
		t.Fatalf("faulty alone: %v %v", res, err)
	}
	if len(symbols(res, scanner.SymInfected)) != 0 {
		t.Fatalf("faulty alone rejected: %v", res)
	}
	res, err = f.Check(t.Context(), msg(mail("eicar.com", testsvc.Eicar())))
	if err != nil || res.Action != filter.Reject || len(symbols(res, scanner.SymInfected)) != 3 {
		t.Fatalf("quorum reached: %v %v", res, err)
	}
}

func TestFilterFaultyUpdateGuardSingleEngine(t *testing.T) {
	met := &countMetrics{}
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{faulty()}, Guard: scanner.GuardConfig{Window: 10, MinScans: 5}, Metrics: met},
		scanner.Config{})
	var res filter.Result
	for range 6 {
		var err error
		res, err = f.Check(t.Context(), msg(mail("a.txt", []byte("harmless"))))
		if err != nil {
			t.Fatal(err)
		}
	}
	if res.Action != filter.Quarantine || len(symbols(res, scanner.SymSuspect)) != 1 || met.get("portcullis_scanner_suspect_total") == 0 {
		t.Fatalf("after the jump: %v", res)
	}
}

func TestFilterClamdKilledTempfails(t *testing.T) {
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{})
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{clamdEngine(t, "clamd", d.Addr, 5*time.Second)}}, scanner.Config{})
	if res, err := f.Check(t.Context(), msg(mail("a.txt", []byte("x")))); err != nil || res.Action != filter.Accept {
		t.Fatalf("before: %v %v", res, err)
	}
	d.Kill()
	res, err := f.Check(t.Context(), msg(mail("eicar.com", testsvc.Eicar())))
	if err != nil || res.Action != filter.Tempfail || len(symbols(res, scanner.SymFail)) != 1 {
		t.Fatalf("clamd down: %v %v", res, err)
	}
	// Even a pipeline told to fail open for this filter tempfails: an
	// outage never passes mail.
	p := filter.NewPipeline(filter.Options{Policy: filter.Policy{Filters: map[string]filter.FilterPolicy{"av": {OnError: filter.FailOpen}}}}, f)
	v := p.Check(t.Context(), filter.Data, msg(mail("eicar.com", testsvc.Eicar())))
	if v.Action != filter.Tempfail {
		t.Fatalf("pipeline verdict %v", v)
	}
}

// gateReaderAt blocks reads past 64 KiB until the gate opens.
type gateReaderAt struct {
	data    []byte
	started chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (g *gateReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= 64<<10 {
		g.once.Do(func() { close(g.started) })
		<-g.gate
	}
	return bytes.NewReader(g.data).ReadAt(p, off)
}

func TestFilterClamdKilledMidStream(t *testing.T) {
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{})
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{clamdEngine(t, "clamd", d.Addr, 5*time.Second)}, Cache: scanner.CacheConfig{Entries: -1}}, scanner.Config{})
	raw := mail("big.bin", bytes.Repeat([]byte("B"), 1<<20))
	g := &gateReaderAt{data: raw, started: make(chan struct{}), gate: make(chan struct{})}
	done := make(chan filter.Result, 1)
	go func() {
		res, err := f.Check(t.Context(), filter.NewMessage(filter.Envelope{}, g, int64(len(raw)), filter.Limits{}))
		if err != nil {
			res.Add("CHECK_ERROR", 0, err.Error())
		}
		done <- res
	}()
	<-g.started // the first 64 KiB are with clamd
	d.Kill()
	close(g.gate)
	res := <-done
	if res.Action != filter.Tempfail || len(symbols(res, scanner.SymFail)) != 1 {
		t.Fatalf("clamd killed mid-stream: %v", res)
	}
}

// stalling is a clamd that accepts and never answers.
func stalling(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				go io.Copy(io.Discard, bufio.NewReader(c))
				<-done
			})
		}
	})
	return ln.Addr().String()
}

func TestFilterSlowEngineFailsOver(t *testing.T) {
	d := testsvc.SharedClamd(t)
	slow := clamdEngine(t, "slow", stalling(t), time.Minute)
	spare := clamdEngine(t, "spare", "unix:"+d.Socket, 0)
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{slow}, Backups: []scanner.Engine{spare}, Timeout: 500 * time.Millisecond}, scanner.Config{})
	res, err := f.Check(t.Context(), msg(mail("eicar.com", testsvc.Eicar())))
	if err != nil || res.Action != filter.Reject || !hasDetail(res, scanner.SymInfected, "spare: Eicar") || !hasDetail(res, scanner.SymEngineDown, "slow:") {
		t.Fatalf("failover: %v %v", res, err)
	}
}

func TestFilterStreamMaxLengthIsPartial(t *testing.T) {
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{StreamMaxLength: 4096})
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{clamdEngine(t, "clamd", d.Addr, 0)}}, scanner.Config{})
	res, err := f.Check(t.Context(), msg(mail("big.bin", bytes.Repeat([]byte("A"), 64<<10))))
	if err != nil || res.Action != filter.Quarantine || !hasDetail(res, scanner.SymPartial, "size limit") {
		t.Fatalf("over StreamMaxLength: %v %v", res, err)
	}
}

func TestFilterLeafSpoolAndErrors(t *testing.T) {
	var got [][]byte
	var mu sync.Mutex
	eng := scanner.EngineFunc("fake", func(ctx context.Context, r io.Reader) (scanner.Result, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return scanner.Result{}, err
		}
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
		if bytes.HasPrefix(b, []byte("CORRUPT")) {
			return scanner.Result{}, &scanner.ContentError{Reply: "cannot parse ERROR"}
		}
		return scanner.Result{}, nil
	})
	big := bytes.Repeat([]byte("0123456789"), 10<<10)
	leaves := scanner.LeafFunc(func(ctx context.Context, m *filter.Message, fn func(scanner.Leaf, io.Reader) error) error {
		if err := fn(scanner.Leaf{Path: "a.zip/big.bin"}, bytes.NewReader(big)); err != nil {
			return err
		}
		return fn(scanner.Leaf{Path: "a.zip/bad.doc"}, strings.NewReader("CORRUPT doc"))
	})
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{eng}}, scanner.Config{Leaves: leaves, Targets: scanner.TargetLeaves, SpoolBytes: 1024, TempDir: t.TempDir()})
	res, err := f.Check(t.Context(), msg(mail("a.zip", []byte("x"))))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !bytes.Equal(got[0], big) {
		t.Fatalf("leaves scanned: %d, first intact %v", len(got), len(got) > 0 && bytes.Equal(got[0], big))
	}
	if res.Action != filter.Quarantine || !hasDetail(res, scanner.SymFail, "in a.zip/bad.doc") {
		t.Fatalf("content error escalation: %v", res)
	}
	// A walk stopped by a limit is a partial scan.
	stopped := scanner.LeafFunc(func(ctx context.Context, m *filter.Message, fn func(scanner.Leaf, io.Reader) error) error {
		return errors.Join(scanner.ErrSizeLimit, errors.New("too many entries"))
	})
	f = newFilter(t, scanner.Options{Engines: []scanner.Engine{eng}}, scanner.Config{Leaves: stopped, Targets: scanner.TargetLeaves})
	res, err = f.Check(t.Context(), msg(mail("a.zip", []byte("x"))))
	if err != nil || res.Action != filter.Quarantine || len(symbols(res, scanner.SymPartial)) != 1 {
		t.Fatalf("partial walk: %v %v", res, err)
	}
	if _, err := scanner.New(scanner.Config{Scanner: nil}); err == nil {
		t.Fatal("nil scanner accepted")
	}
}

type countMetrics struct {
	mu sync.Mutex
	m  map[string]float64
}

func (c *countMetrics) Add(name string, d float64, _ ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]float64{}
	}
	c.m[name] += d
}
func (c *countMetrics) Set(string, float64, ...string)     {}
func (c *countMetrics) Observe(string, float64, ...string) {}
func (c *countMetrics) get(name string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name]
}

func TestFilterAllDownStopsLeafWalk(t *testing.T) {
	var scans int
	var mu sync.Mutex
	down := scanner.EngineFunc("down", func(ctx context.Context, r io.Reader) (scanner.Result, error) {
		mu.Lock()
		scans++
		mu.Unlock()
		return scanner.Result{}, errors.New("connection refused")
	})
	leaves := scanner.LeafFunc(func(ctx context.Context, m *filter.Message, fn func(scanner.Leaf, io.Reader) error) error {
		for _, p := range []string{"a", "b", "c"} {
			if err := fn(scanner.Leaf{Path: p}, strings.NewReader(p)); err != nil {
				return err
			}
		}
		return nil
	})
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{down}, Breaker: scanner.BreakerConfig{Failures: 100}},
		scanner.Config{Leaves: leaves, Targets: scanner.TargetLeaves})
	res, err := f.Check(t.Context(), msg(mail("a.zip", []byte("x"))))
	if err != nil || res.Action != filter.Tempfail || scans != 1 {
		t.Fatalf("all down: %v %v, %d scans (want 1: the walk stops)", res, err, scans)
	}
}

func TestFilterArchiveLimitIsPartial(t *testing.T) {
	// A zip member larger than the inspector unpacks is not scanned whole:
	// AV_PARTIAL, quarantine, never a quiet pass.
	eng := scanner.EngineFunc("fake", func(ctx context.Context, r io.Reader) (scanner.Result, error) {
		_, err := io.Copy(io.Discard, r)
		return scanner.Result{}, err
	})
	in := archive.New(archive.Config{Limits: archive.Limits{MaxEntryBytes: 1024}})
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{eng}}, scanner.Config{Leaves: scanner.ArchiveLeaves(in), Targets: scanner.TargetLeaves})
	res, err := f.Check(t.Context(), msg(mail("big.zip", zipOf(t, "big.txt", bytes.Repeat([]byte("z"), 64<<10)))))
	if err != nil || res.Action != filter.Quarantine || len(symbols(res, scanner.SymPartial)) == 0 {
		t.Fatalf("member over MaxEntryBytes: %v %v", res, err)
	}
	res, err = f.Check(t.Context(), msg(mail("small.zip", zipOf(t, "small.txt", []byte("fine")))))
	if err != nil || res.Action != filter.Accept || len(res.Symbols) != 0 {
		t.Fatalf("small member: %v %v", res, err)
	}
}

func TestFilterSlowerThanPipelineTempfails(t *testing.T) {
	// Engines slower than the pipeline's deadline: the filter answers
	// Tempfail itself before the deadline, so even a fail-open policy
	// cannot pass the mail.
	slow := scanner.EngineFunc("slow", func(ctx context.Context, r io.Reader) (scanner.Result, error) {
		<-ctx.Done()
		return scanner.Result{}, ctx.Err()
	})
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{slow}, Timeout: time.Hour}, scanner.Config{})
	p := filter.NewPipeline(filter.Options{Policy: filter.Policy{Timeout: 500 * time.Millisecond, Filters: map[string]filter.FilterPolicy{"av": {OnError: filter.FailOpen}}}}, f)
	v := p.Check(t.Context(), filter.Data, msg(mail("a.txt", []byte("x"))))
	if v.Action != filter.Tempfail || !v.Has(scanner.SymFail) {
		t.Fatalf("verdict %v", v)
	}
}
