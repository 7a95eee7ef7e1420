package scanner_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/scanner"
	"github.com/portcullis-mail/portcullis/scanner/clamd"
	"github.com/portcullis-mail/portcullis/scanner/icap"
)

var benchSizes = []struct {
	name string
	size int
}{{"10KB", 10 << 10}, {"5MB", 5 << 20}}

func benchData(size int) []byte {
	b := make([]byte, size)
	rand.Read(b)
	return b
}

func benchEngine(b *testing.B, e scanner.Engine, data []byte) {
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		res, err := e.Scan(b.Context(), bytes.NewReader(data))
		if err != nil || res.Infected() {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkClamd scans through the clamd adapter over TCP and the unix
// socket, with sessions reused (reuse) and a new connection per scan
// (new-conn).
func BenchmarkClamd(b *testing.B) {
	d := testsvc.SharedClamd(b)
	for _, s := range benchSizes {
		data := benchData(s.size)
		for _, mode := range []struct {
			name    string
			maxIdle int
			addr    string
		}{{"tcp/reuse", 4, d.Addr}, {"tcp/new-conn", -1, d.Addr}, {"unix/reuse", 4, "unix:" + d.Socket}, {"unix/new-conn", -1, "unix:" + d.Socket}} {
			b.Run(s.name+"/"+mode.name, func(b *testing.B) {
				c, err := clamd.New(clamd.Config{Addr: mode.addr, MaxIdle: mode.maxIdle})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				benchEngine(b, c, data)
			})
		}
	}
}

// BenchmarkClamdRaw is the least a client can do: one connection, one
// zINSTREAM, 64 KiB chunks, read the reply. The adapter's overhead is
// BenchmarkClamd/new-conn over this.
func BenchmarkClamdRaw(b *testing.B) {
	d := testsvc.SharedClamd(b)
	for _, s := range benchSizes {
		data := benchData(s.size)
		for _, tr := range [][2]string{{"tcp", d.Addr}, {"unix", d.Socket}} {
			b.Run(s.name+"/"+tr[0], func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				buf := make([]byte, 4+64<<10)
				for b.Loop() {
					c, err := net.Dial(tr[0], tr[1])
					if err != nil {
						b.Fatal(err)
					}
					c.Write([]byte("zINSTREAM\x00"))
					for rest := data; len(rest) > 0; {
						n := copy(buf[4:], rest)
						binary.BigEndian.PutUint32(buf, uint32(n))
						c.Write(buf[:4+n])
						rest = rest[n:]
					}
					c.Write([]byte{0, 0, 0, 0})
					reply, err := bufio.NewReader(c).ReadString(0)
					c.Close()
					if err != nil || reply != "stream: OK\x00" {
						b.Fatal(reply, err)
					}
				}
			})
		}
	}
}

// BenchmarkClamdscan runs `clamdscan --stream` per file: the command-line
// client that ships with clamd, process start included.
func BenchmarkClamdscan(b *testing.B) {
	d := testsvc.SharedClamd(b)
	bin := testsvc.LookPath(b, "clamdscan", "apt-get install -y clamdscan")
	for _, s := range benchSizes {
		p := filepath.Join(b.TempDir(), "data")
		if err := os.WriteFile(p, benchData(s.size), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(s.size))
			for b.Loop() {
				out, err := exec.Command(bin, "--config-file="+d.Conf, "--stream", "--no-summary", p).CombinedOutput()
				if err != nil || !strings.Contains(string(out), ": OK") {
					b.Fatal(string(out), err)
				}
			}
		})
	}
}

// BenchmarkICAP scans through c-icap's virus_scan (which asks clamd).
func BenchmarkICAP(b *testing.B) {
	s := testsvc.SharedICAP(b)
	for _, sz := range benchSizes {
		data := benchData(sz.size)
		for _, mode := range []struct {
			name    string
			maxIdle int
		}{{"reuse", 4}, {"new-conn", -1}} {
			b.Run(sz.name+"/"+mode.name, func(b *testing.B) {
				c, err := icap.New(icap.Config{URL: s.URL, MaxIdle: mode.maxIdle})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				benchEngine(b, c, data)
			})
		}
	}
}

// BenchmarkMulti is the policy layer over one clamd (cache off, so every
// scan reaches clamd): its cost over BenchmarkClamd/reuse.
func BenchmarkMulti(b *testing.B) {
	d := testsvc.SharedClamd(b)
	for _, s := range benchSizes {
		data := benchData(s.size)
		b.Run(s.name, func(b *testing.B) {
			c, _ := clamd.New(clamd.Config{Addr: d.Addr})
			defer c.Close()
			m, err := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{c}, Cache: scanner.CacheConfig{Entries: -1}})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				v, err := m.Scan(b.Context(), bytes.NewReader(data), int64(len(data)))
				if err != nil || !v.Clean() {
					b.Fatal(v, err)
				}
			}
		})
	}
}

// BenchmarkPolicyOverhead is the policy layer alone (goroutine, breaker,
// guard, metrics) around an engine that only reads the bytes: what Multi
// adds to each engine scan, without I/O noise. multi-cache-hit is the
// cost of a cache hit: one SHA-256 pass over the bytes and a lookup.
func BenchmarkPolicyOverhead(b *testing.B) {
	data := benchData(10 << 10)
	read := scanner.EngineFunc("read", func(ctx context.Context, r io.Reader) (scanner.Result, error) {
		_, err := io.Copy(io.Discard, r)
		return scanner.Result{}, err
	})
	b.Run("engine-alone", func(b *testing.B) {
		for b.Loop() {
			read.Scan(b.Context(), bytes.NewReader(data))
		}
	})
	for _, c := range []struct {
		name    string
		entries int
	}{{"multi-nocache", -1}, {"multi-cache-hit", 0}} {
		b.Run(c.name, func(b *testing.B) {
			m, err := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{read}, Cache: scanner.CacheConfig{Entries: c.entries}})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := m.Scan(b.Context(), bytes.NewReader(data), int64(len(data))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFilterOnce checks a message with a 1 MiB binary attachment
// through a real clamd: each byte once (ArchiveLeaves, a Coverer) against
// the whole message and then every leaf (the same walk as a LeafFunc).
func BenchmarkFilterOnce(b *testing.B) {
	d := testsvc.SharedClamd(b)
	raw := mail("data.bin", benchData(1<<20))
	walk := scanner.ArchiveLeaves(archive.New(archive.Config{}))
	for _, mode := range []struct {
		name   string
		walker scanner.LeafWalker
	}{{"once", walk}, {"message+leaves", scanner.LeafFunc(walk.Leaves)}} {
		b.Run(mode.name, func(b *testing.B) {
			c, err := clamd.New(clamd.Config{Addr: d.Addr})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			m, err := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{c}, Cache: scanner.CacheConfig{Entries: -1}})
			if err != nil {
				b.Fatal(err)
			}
			f, err := scanner.New(scanner.Config{Scanner: m, Leaves: mode.walker})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if res, err := f.Check(b.Context(), msg(raw)); err != nil || len(res.Symbols) != 0 {
					b.Fatal(res, err)
				}
			}
		})
	}
}
