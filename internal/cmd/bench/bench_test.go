package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/benchcorpus"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// fakeClamd answers PING and INSTREAM (in or out of a session) like
// clamd, reading every chunk.
func fakeClamd(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					if _, err := r.ReadByte(); err != nil {
						return
					}
					cmd, err := r.ReadBytes(0)
					if err != nil {
						return
					}
					switch string(cmd) {
					case "PING\x00":
						c.Write([]byte("PONG\x00"))
					case "INSTREAM\x00":
						for {
							var h [4]byte
							if _, err := io.ReadFull(r, h[:]); err != nil {
								return
							}
							n := binary.BigEndian.Uint32(h[:])
							if n == 0 {
								break
							}
							io.CopyN(io.Discard, r, int64(n))
						}
						c.Write([]byte("stream: OK\x00"))
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRelayCountsInstreamPayload(t *testing.T) {
	addr := fakeClamd(t)
	if err := waitClamd(addr, 0); err != nil {
		t.Fatal(err)
	}
	r, err := newRelay(addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, chunks := range [][]int{{1000, 24}, {7}} {
		c.Write([]byte("zINSTREAM\x00"))
		for _, n := range chunks {
			var h [4]byte
			binary.BigEndian.PutUint32(h[:], uint32(n))
			c.Write(h[:])
			c.Write(make([]byte, n))
		}
		c.Write([]byte{0, 0, 0, 0})
		reply := make([]byte, len("stream: OK\x00"))
		if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "stream: OK\x00" {
			t.Fatalf("reply %q, %v", reply, err)
		}
	}
	c.Write([]byte("zPING\x00"))
	pong := make([]byte, 5)
	if _, err := io.ReadFull(c, pong); err != nil || string(pong) != "PONG\x00" {
		t.Fatalf("PING through the relay: %q, %v", pong, err)
	}
	c.Close()
	r.Close()
	if p, n := r.payload.Load(), r.scans.Load(); p != 1031 || n != 2 {
		t.Errorf("counted %d bytes in %d scans, want 1031 in 2", p, n)
	}
}

func TestCPUOfThisProcess(t *testing.T) {
	c0 := procCPU("self", false)
	x := 0
	for i := range 50_000_000 {
		x ^= i * i
	}
	if x == 1 {
		t.Log(x)
	}
	if c := treeCPU(os.Getpid()); c < c0 || c <= 0 {
		t.Errorf("treeCPU %v after procCPU %v", c, c0)
	}
	if procCPU("0", false) != 0 {
		t.Error("CPU of a missing process")
	}
}

func TestLeafBytesExpandsTheZip(t *testing.T) {
	raw := benchcorpus.Zip(160 << 10)
	n := leafBytes(raw)
	// The zip's members are mostly text that deflates about 3:1; the
	// leaves and the rest must be well over the message and under 4×.
	if n < len(raw)*5/4 || n > 4*len(raw) {
		t.Errorf("leafBytes %d for a %d-byte message with a zip", n, len(raw))
	}
	if txt := benchcorpus.Text(2 << 10); leafBytes(txt) != len(txt) {
		t.Errorf("leafBytes %d for a %d-byte text message", leafBytes(txt), len(txt))
	}
}

func TestDNSTierIsNewPerMessage(t *testing.T) {
	tr, err := dnsTier()
	if err != nil {
		t.Fatal(err)
	}
	html := func(k int) string {
		m, err := mail.ReadMessage(bytes.NewReader(tr.gen(k)))
		if err != nil {
			t.Fatal(err)
		}
		_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
		r := multipart.NewReader(m.Body, params["boundary"])
		var last []byte
		for {
			p, err := r.NextPart() // decodes quoted-printable
			if err == io.EOF {
				return string(last)
			}
			if err != nil {
				t.Fatal(err)
			}
			last, _ = io.ReadAll(p)
		}
	}
	a, b := html(1), html(12345678)
	if a == b {
		t.Fatal("messages 1 and 12345678 are the same")
	}
	for d := range 5 {
		host := fmt.Sprintf(`"https://www.b12345678n%d.com/story/`, d)
		if n := strings.Count(b, host); n != 6 {
			t.Errorf("%s: %d links, want 6", host, n)
		}
	}
	if !strings.Contains(b, `"https://b12345678u.com/unsubscribe"`) || strings.Contains(b, "example.com") {
		t.Error("the unsubscribe link is not message 12345678's own, or an example.com link is left")
	}
	if got, want := len(tr.gen(7)), len(benchcorpus.HTML(30<<10, 30)); got < want || got > want+400 {
		t.Errorf("the DNS tier's message is %d bytes, the HTML tier's %d", got, want)
	}
	seen := map[netip.Addr]bool{}
	for k := range 200_000 {
		ip := clientIP(k)
		if seen[ip] || ip == probeIP || !ip.IsLoopback() || ip.As4()[3] == 0 {
			t.Fatalf("clientIP(%d) = %v: repeated, the probe's, not loopback or .0", k, ip)
		}
		seen[ip] = true
	}
	if clientIP(probeK) != probeIP {
		t.Error("the probe's address")
	}
}

// gatewayBin is examples/gateway, built once for the tests that run it.
var (
	gatewayBin  string
	gatewayOnce sync.Once
	gatewayErr  error
)

// buildGateway builds examples/gateway into a directory TestMain removes.
func buildGateway(t *testing.T) string {
	t.Helper()
	testsvc.Integration(t)
	gatewayOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portcullis-bench-test-")
		if err != nil {
			gatewayErr = err
			return
		}
		gatewayBin = filepath.Join(dir, "gateway")
		if out, err := exec.Command("go", "build", "-o", gatewayBin, "github.com/portcullis-mail/portcullis/examples/gateway").CombinedOutput(); err != nil {
			gatewayErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if gatewayErr != nil {
		t.Fatal(gatewayErr)
	}
	return gatewayBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if gatewayBin != "" {
		os.RemoveAll(filepath.Dir(gatewayBin))
	}
	os.Exit(code)
}

// figures returns the ms/msg columns of a table's rows.
func figures(t *testing.T, table string, columns int) [][]float64 {
	t.Helper()
	var rows [][]float64
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| tier") || strings.HasPrefix(line, "| ---") {
			continue
		}
		var row []float64
		for _, c := range cells[3 : 3+columns] {
			v, err := strconv.ParseFloat(strings.TrimSpace(c), 64)
			if err != nil {
				t.Fatalf("cell %q of %q: %v", c, line, err)
			}
			row = append(row, v)
		}
		rows = append(rows, row)
	}
	return rows
}

func TestGatewayOverSMTP(t *testing.T) {
	bin := buildGateway(t)
	ts, err := tiers("../../../rules/default/corpus,../../../testdata", false)
	if err != nil {
		t.Fatal(err)
	}
	ts = ts[:2] // the real mail (spam among it: rejections are answers) and 2 KB of text
	// What the measurement counts as answers: a 250 for clean mail and
	// errRejected for a 5xx, on a session that goes on after it.
	g, err := startGateway(bin, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	gtube, err := os.ReadFile("../../../rules/default/corpus/gtube.eml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []system{g.system("Portcullis SMTP", 1, false), g.httpSystem("Portcullis HTTP", nil)} {
		for i, c := range []struct {
			raw  []byte
			want error
		}{{benchcorpus.Text(2 << 10), nil}, {gtube, errRejected}, {benchcorpus.Text(2 << 10), nil}} {
			if err := s.check(0, i, c.raw); !errors.Is(err, c.want) {
				t.Errorf("%s, message %d: %v, want %v", s.name, i, err, c.want)
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), &out, ts, options{gateway: bin, conns: 3, reps: 1, budget: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if !strings.Contains(out.String(), "| Portcullis SMTP ms/msg | Portcullis HTTP ms/msg | Portcullis ms/msg |") {
		t.Fatalf("no SMTP and HTTP columns:\n%s", out.String())
	}
	rows := figures(t, out.String(), 3)
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	for i, r := range rows {
		// The gateway parses, filters and spools what the in-process
		// pipeline only filters: its CPU per message cannot be nil.
		if r[0] <= 0 || r[1] <= 0 || r[2] <= 0 {
			t.Errorf("tier %d: SMTP %v ms, HTTP %v ms, in process %v ms per message", i, r[0], r[1], r[2])
		}
	}
}

// countingDNS forwards UDP queries to upstream and counts them.
type countingDNS struct {
	addr    string
	queries atomic.Int64
}

func startCountingDNS(t *testing.T, upstream string) *countingDNS {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	d := &countingDNS{addr: pc.LocalAddr().String()}
	go func() {
		for {
			buf := make([]byte, 4096)
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			d.queries.Add(1)
			go func() {
				c, err := net.Dial("udp", upstream)
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
				m, err := c.Read(buf)
				if err == nil {
					pc.WriteTo(buf[:m], from)
				}
			}()
		}
	}()
	return d
}

func TestDNSTierMissesEveryCache(t *testing.T) {
	bin := buildGateway(t)
	var rz []testsvc.RBLZone
	for _, z := range zones {
		rz = append(rz, testsvc.RBLZone{Name: z.name, Type: z.typ, Data: z.data})
	}
	rbl := startCountingDNS(t, testsvc.StartRBLDNSD(t, rz...).Addr)
	var out bytes.Buffer
	// runDNS probes the gateway (over SMTP and HTTP) and the in-process
	// pipeline first: each must refuse the listed address and the listed
	// link domain.
	n, err := runDNS(context.Background(), &out, options{gateway: bin, conns: 2, rbldnsd: rbl.addr, reps: 1, budget: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Every message asks for its client address and its six link
	// domains anew, though the messages are the same but for them.
	if q := rbl.queries.Load(); n == 0 || q < 7*n {
		t.Errorf("%d queries for %d messages, want at least 7 each", q, n)
	} else {
		t.Logf("%d queries for %d messages", q, n)
	}
	t.Log("\n" + out.String())
	if !strings.Contains(out.String(), "| Portcullis SMTP ms/msg | Portcullis HTTP ms/msg | Portcullis ms/msg |") {
		t.Fatalf("no SMTP and HTTP columns:\n%s", out.String())
	}
	rows := figures(t, out.String(), 3)
	if len(rows) != 1 || rows[0][0] <= 0 || rows[0][1] <= 0 || rows[0][2] <= 0 {
		t.Errorf("DNS tier figures %v", rows)
	}
}

func TestRBLDNSDQueriesReadsTheTotal(t *testing.T) {
	f := filepath.Join(t.TempDir(), "stats")
	now := time.Now().Unix()
	os.WriteFile(f, []byte(fmt.Sprintf("%d\n%d bl.bench.test:2:2:0:84:116 *:3:2:1:120:152\n%d bl.bench.test:9:2:0:84:116 uribl.bench.test:1:0:1:36:36 *:10:2:1:120:152\n",
		now-5, now-4, now+1)), 0o644)
	if n, err := rbldnsdQueries(f, time.Unix(now, 0)); n != 10 || err != nil {
		t.Errorf("rbldnsdQueries = %d, %v; want the last line's total, 10", n, err)
	}
	os.WriteFile(f, []byte(fmt.Sprintf("%d bl.bench.test:2:2:0:84:116\n", now+1)), 0o644)
	if _, err := rbldnsdQueries(f, time.Unix(now, 0)); err == nil {
		t.Error("a line without a total")
	}
}
