package scanner_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/scanner"
)

// fakeAV finds "X5O!" in anything, like a real engine finds EICAR.
func fakeAV(name string) scanner.Engine {
	return scanner.EngineFunc(name, func(ctx context.Context, r io.Reader) (scanner.Result, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return scanner.Result{}, err
		}
		if bytes.Contains(b, []byte("X5O!")) {
			return scanner.Result{Signatures: []string{"Test-Signature"}}, nil
		}
		return scanner.Result{}, nil
	})
}

func Example() {
	multi, err := scanner.NewMulti(scanner.Options{
		Engines: []scanner.Engine{fakeAV("primary")},
		Backups: []scanner.Engine{fakeAV("spare")},
	})
	if err != nil {
		panic(err)
	}
	av, err := scanner.New(scanner.Config{Scanner: multi})
	if err != nil {
		panic(err)
	}
	raw := []byte("Subject: hi\r\n\r\nX5O!...\r\n")
	res, err := av.Check(context.Background(), filter.NewMessageBytes(filter.Envelope{}, raw, filter.Limits{}))
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Action)
	for _, s := range res.Symbols {
		fmt.Println(s.Name, s.Detail)
	}
	// Output:
	// reject
	// AV_INFECTED primary: Test-Signature in message
	// AV_PRIMARY_INFECTED primary: Test-Signature in message
}

func ExampleMulti_quorum() {
	faulty := scanner.EngineFunc("faulty", func(ctx context.Context, r io.Reader) (scanner.Result, error) {
		return scanner.Result{Signatures: []string{"Everything.Is.A.Virus"}}, nil
	})
	multi, _ := scanner.NewMulti(scanner.Options{
		Engines: []scanner.Engine{fakeAV("a"), fakeAV("b"), faulty},
		Mode:    scanner.Quorum, // a majority: 2 of 3
	})
	clean := []byte("hello")
	v, err := multi.Scan(context.Background(), bytes.NewReader(clean), int64(len(clean)))
	fmt.Println(v.Infected, v.Unconfirmed, err)
	// Output: false true <nil>
}

// A re-scan after a faulty update of clamd-1 selects exactly the messages
// clamd-1 flagged, by the per-engine symbol every detection carries.
func ExampleEngineSymbol() {
	// The re-scan's query: quarantine.Query{Symbol: scanner.EngineSymbol("clamd-1"), Since: update}
	fmt.Println(scanner.EngineSymbol("clamd-1"))
	fmt.Println(scanner.EngineSymbol("icap-2"))
	// Output:
	// AV_CLAMD_1_INFECTED
	// AV_ICAP_2_INFECTED
}

// An engine whose limit is known only from its manual still cannot vouch
// for more bytes than it reads.
func ExampleWithLimit() {
	clean := scanner.EngineFunc("vendor", func(_ context.Context, r io.Reader) (scanner.Result, error) {
		_, err := io.Copy(io.Discard, r)
		return scanner.Result{}, err
	})
	multi, _ := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{scanner.WithLimit(clean, 8)}})
	for _, s := range []string{"short", "longer than eight bytes"} {
		v, _ := multi.Scan(context.Background(), strings.NewReader(s), int64(len(s)))
		fmt.Println(len(s), v.Clean(), v.Partial())
	}
	// Output:
	// 5 true false
	// 23 false true
}

// versioned is an engine with a signature version, counting its scans.
type versioned struct {
	scanner.Engine
	scans int
}

func (v *versioned) Version(context.Context) (string, error) { return "sigs-27463", nil }
func (v *versioned) Scan(ctx context.Context, r io.Reader) (scanner.Result, error) {
	v.scans++
	return v.Engine.Scan(ctx, r)
}

// memShared is a SharedCache in memory; package fleet's AVCache is the
// one on JetStream KV that a fleet shares.
type memShared map[scanner.CacheKey]scanner.Result

func (m memShared) Get(_ context.Context, k scanner.CacheKey) (scanner.Result, bool, error) {
	r, ok := m[k]
	return r, ok, nil
}
func (m memShared) Put(_ context.Context, k scanner.CacheKey, r scanner.Result) error {
	m[k] = r
	return nil
}

// Two nodes share their results: an attachment fanned out to both is
// scanned once.
func ExampleOptions_sharedCache() {
	shared := memShared{}
	a, b := &versioned{Engine: fakeAV("clamd-1")}, &versioned{Engine: fakeAV("clamd-1")}
	nodeA, _ := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{a}, SharedCache: shared})
	nodeB, _ := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{b}, SharedCache: shared})
	att := []byte("X5O!...")
	va, _ := nodeA.Scan(context.Background(), bytes.NewReader(att), int64(len(att)))
	vb, _ := nodeB.Scan(context.Background(), bytes.NewReader(att), int64(len(att)))
	fmt.Println(va.Infected, vb.Infected, vb.Shared, a.scans+b.scans)
	// Output: true true 1 1
}
