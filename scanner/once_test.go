package scanner_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/scanner"
)

// counting is an engine that counts the bytes streamed to it and keeps
// what it saw.
type counting struct {
	bytes atomic.Int64
	seen  atomic.Value // [][]byte
}

func (c *counting) Name() string { return "count" }
func (c *counting) Scan(_ context.Context, r io.Reader) (scanner.Result, error) {
	b, err := io.ReadAll(r)
	c.bytes.Add(int64(len(b)))
	old, _ := c.seen.Load().([][]byte)
	c.seen.Store(append(old, b))
	return scanner.Result{}, err
}

func (c *counting) saw(s []byte) bool {
	all, _ := c.seen.Load().([][]byte)
	for _, b := range all {
		if bytes.Contains(b, s) {
			return true
		}
	}
	return false
}

// Each byte reaches the engine once: the leaves, then the message without
// the attachment bodies they stand for; measured against streaming the
// whole message and then every leaf.
func TestEachByteOnce(t *testing.T) {
	random := make([]byte, 100<<10)
	rand.Read(random)
	text := bytes.Repeat([]byte("quarterly numbers, all of them\n"), 4000)
	inspector := archive.New(archive.Config{})
	plain := scanner.ArchiveLeaves(inspector)
	run := func(raw []byte, walker scanner.LeafWalker) (*counting, filter.Result) {
		c := &counting{}
		m, err := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{c}, Cache: scanner.CacheConfig{Entries: -1}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := scanner.New(scanner.Config{Scanner: m, Leaves: walker})
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.Check(t.Context(), msg(raw))
		if err != nil {
			t.Fatal(err)
		}
		return c, res
	}
	for _, tc := range []struct {
		name string
		raw  []byte
		leaf int64 // decoded bytes of the leaves
	}{
		{"100 KiB binary attachment", mail("data.bin", random), int64(len(random))},
		{"zip of 124 KB text", mail("report.zip", zipOf(t, "report.txt", text)), int64(len(text))},
	} {
		once, res := run(tc.raw, plain)
		if len(res.Symbols) != 0 {
			t.Fatalf("%s: %v", tc.name, res)
		}
		// The same walk without Coverer: message and leaves, as before.
		twice, _ := run(tc.raw, scanner.LeafFunc(plain.Leaves))
		rest := once.bytes.Load() - tc.leaf
		t.Logf("%s: message %d bytes; streamed once %d (leaves %d + rest %d); message then leaves %d (%.2fx)",
			tc.name, len(tc.raw), once.bytes.Load(), tc.leaf, rest, twice.bytes.Load(), float64(twice.bytes.Load())/float64(once.bytes.Load()))
		if twice.bytes.Load() != int64(len(tc.raw))+tc.leaf {
			t.Fatalf("%s: message and leaves streamed %d, want %d", tc.name, twice.bytes.Load(), int64(len(tc.raw))+tc.leaf)
		}
		// The rest is the headers, the text part and the MIME structure:
		// the attachment's base64 is not streamed again.
		b64 := tc.raw[bytes.Index(tc.raw, []byte("base64\r\n\r\n"))+10:][:76]
		if once.saw(b64) || !once.saw([]byte("see attached")) || !once.saw([]byte("Subject: test")) || !once.saw([]byte("--BOUND--")) {
			t.Fatalf("%s: the rest holds the attachment, or lacks the headers, text or structure", tc.name)
		}
		if rest <= 0 || rest > 600 {
			t.Fatalf("%s: rest of the message %d bytes", tc.name, rest)
		}

		// A walk that stops early covered less: the whole message follows.
		stops := scanner.LeafFunc(func(ctx context.Context, m *filter.Message, fn func(scanner.Leaf, io.Reader) error) error {
			return errors.Join(plain.Leaves(ctx, m, fn), &archive.LimitError{Limit: "entries", Max: "1"})
		})
		partial, res := run(tc.raw, coverer{stops})
		if partial.bytes.Load() != int64(len(tc.raw))+tc.leaf || len(res.Symbols) != 1 {
			t.Fatalf("%s: after a partial walk streamed %d (%v), want the whole message too (%d)", tc.name, partial.bytes.Load(), res, int64(len(tc.raw))+tc.leaf)
		}
	}
}

// coverer makes a LeafFunc a Coverer like ArchiveLeaves.
type coverer struct{ scanner.LeafFunc }

func (c coverer) Covered(m *filter.Message) []scanner.Span {
	return scanner.ArchiveLeaves(archive.New(archive.Config{})).(scanner.Coverer).Covered(m)
}

// With a real clamd: what the leaves do not hold still reaches it, an
// inline text part beside a clean attachment.
func TestOnceRealClamdInlineText(t *testing.T) {
	marker := "PORTCULLIS-INLINE-MARKER-" + strings.Repeat("7", 8)
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{ExtraDB: map[string]string{"marker.ndb": "Inline.Marker:0:*:" + hex.EncodeToString([]byte(marker)) + "\n"}})
	f := newFilter(t, scanner.Options{Engines: []scanner.Engine{clamdEngine(t, "clamd", d.Addr, 0)}},
		scanner.Config{Leaves: scanner.ArchiveLeaves(archive.New(archive.Config{}))})
	raw := bytes.Replace(mail("report.zip", zipOf(t, "report.txt", []byte("quarterly numbers"))), []byte("see attached"), []byte(marker), 1)
	res, err := f.Check(t.Context(), msg(raw))
	if err != nil || !hasDetail(res, scanner.SymInfected, "clamd: Inline.Marker.UNOFFICIAL in message") || res.Action != filter.Reject {
		t.Fatalf("inline marker beside a zip: %v %v", res, err)
	}
	res, err = f.Check(t.Context(), msg(mail("setup.zip", zipOf(t, "dir/clam.exe", testsvc.ClamavFile(t, "clam.exe")))))
	if err != nil || !hasDetail(res, scanner.SymInfected, "in setup.zip/dir/clam.exe") || hasDetail(res, scanner.SymInfected, "in message") {
		t.Fatalf("clam.exe in zip: %v %v", res, err)
	}
}

// A leaf larger than the inspector hands out was not streamed whole: the
// whole message follows, so the engine still sees the attachment.
func TestOnceOversizedLeafSendsMessage(t *testing.T) {
	c := &counting{}
	m, err := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{c}, Cache: scanner.CacheConfig{Entries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	in := archive.New(archive.Config{Limits: archive.Limits{MaxEntryBytes: 1024}})
	f, err := scanner.New(scanner.Config{Scanner: m, Leaves: scanner.ArchiveLeaves(in)})
	if err != nil {
		t.Fatal(err)
	}
	raw := mail("big.zip", zipOf(t, "big.txt", bytes.Repeat([]byte("z"), 64<<10)))
	res, err := f.Check(t.Context(), msg(raw))
	if err != nil || res.Action != filter.Quarantine || len(symbols(res, scanner.SymPartial)) == 0 {
		t.Fatalf("%v %v", res, err)
	}
	b64 := raw[bytes.Index(raw, []byte("base64\r\n\r\n"))+10:][:76]
	if !c.saw(b64) || !c.saw(raw) {
		t.Fatal("the whole message did not follow an oversized leaf")
	}
}
