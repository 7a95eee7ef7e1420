package scanner_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/relay"
	"github.com/portcullis-mail/portcullis/router"
	"github.com/portcullis-mail/portcullis/scanner"
	"github.com/portcullis-mail/portcullis/scanner/clamd"
)

// The faulty-update incident, end to end with a real clamd: the vendor
// ships a signature that matches ordinary business mail ("Kind regards"),
// swapped into the running clamd with RELOAD. Every message it flags is
// held (AV_INFECTED until the guard notices the jump, AV_SUSPECT_ENGINE
// after), none is rejected or lost. Once the vendor fixes the database,
// the operator re-scans exactly what clamd-1 flagged since the update
// (scanner.EngineSymbol) and every falsely held message is released
// through the real queue and SMTP client to an SMTP sink; real malware
// and another engine's own detections stay held.
func TestDrillFaultyUpdateRealClamd(t *testing.T) {
	testsvc.Integration(t)
	ctx := t.Context()
	d := testsvc.StartClamd(t, testsvc.ClamdOptions{})
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	rl, err := relay.New(relay.Config{Routes: map[string]relay.Route{"*": {Hosts: []string{sink.Addr}}}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(t.TempDir(), queue.Config{Deliverer: rl, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	store, err := quarantine.OpenDir(t.TempDir(), quarantine.DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	held, err := quarantine.New(quarantine.Config{Store: store, Queue: q, RescanRate: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := router.New(router.Config{Queue: q, Quarantine: held})
	if err != nil {
		t.Fatal(err)
	}

	// clamd-1 is the real clamd; vendor-b a second engine that knows
	// EICAR and one sample of its own.
	c1, err := clamd.New(clamd.Config{Addr: d.Addr, Name: "clamd-1"})
	if err != nil {
		t.Fatal(err)
	}
	vendorB := scanner.EngineFunc("vendor-b", func(_ context.Context, r io.Reader) (scanner.Result, error) {
		b, err := io.ReadAll(r)
		switch {
		case err != nil:
			return scanner.Result{}, err
		case bytes.Contains(b, []byte(eicarB64())):
			return scanner.Result{Signatures: []string{"EICAR"}}, nil
		case bytes.Contains(b, []byte("VENDOR-B-SAMPLE")):
			return scanner.Result{Signatures: []string{"VendorB.Sample"}}, nil
		}
		return scanner.Result{}, nil
	})
	multi, err := scanner.NewMulti(scanner.Options{Engines: []scanner.Engine{c1, vendorB},
		Guard: scanner.GuardConfig{Window: 20, MinScans: 10, Multiple: 4, Baseline: 0.05}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { multi.Close() })
	// Quarantine, never reject, on any detection: what a rejected message
	// was cannot be re-scanned.
	av, err := scanner.New(scanner.Config{Scanner: multi, OnInfected: filter.Quarantine})
	if err != nil {
		t.Fatal(err)
	}
	p := filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy()}, av)

	sent := map[string]string{} // Message-ID → kind
	send := func(id, kind string, raw []byte) {
		t.Helper()
		tx := p.Begin(filter.Envelope{ClientIP: netip.MustParseAddr("198.51.100.25"), Helo: "mx.partner.example"})
		defer tx.Close()
		tx.Connect(ctx)
		tx.Helo(ctx, "mx.partner.example")
		tx.Mail(ctx, "orders@partner.example")
		tx.Rcpt(ctx, "alice@example.net")
		if _, err := tx.Data(ctx, bytes.NewReader(raw)); err != nil {
			t.Fatalf("%s: DATA: %v", id, err)
		}
		r := rt.Route(ctx, tx)
		if r.Code != 250 {
			t.Fatalf("%s (%s): %v, want 250 (queued or held)", id, kind, r)
		}
		sent[id] = kind
	}
	business := func(id string) []byte {
		return []byte("From: orders@partner.example\r\nTo: alice@example.net\r\nSubject: order " + id +
			"\r\nMessage-ID: <" + id + ">\r\n\r\nHello Alice,\r\n\r\nyour order " + id + " ships today.\r\n\r\nKind regards\r\nPartner\r\n")
	}
	eicarMail := func(id string) []byte {
		return bytes.Replace(mail("eicar.com", testsvc.Eicar()), []byte("Subject: test\r\n"), []byte("Subject: eicar\r\nMessage-ID: <"+id+">\r\n"), 1)
	}
	vendorBMail := func(id string) []byte {
		return []byte("From: x@partner.example\r\nSubject: sample\r\nMessage-ID: <" + id + ">\r\n\r\nVENDOR-B-SAMPLE\r\n")
	}
	// probe reports what clamd-1 itself says about business mail.
	probe := func() bool {
		res, err := c1.Scan(ctx, bytes.NewReader(business("probe")))
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
		return res.Infected()
	}
	waitProbe := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for probe() != want {
			if time.Now().After(deadline) {
				t.Fatalf("clamd did not load the new signatures (probe infected = %v)", !want)
			}
			select {
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			case <-time.After(20 * time.Millisecond): // polling clamd's reload, not a synchronisation
			}
		}
	}

	// Before the update: business mail is delivered, EICAR and vendor-b's
	// sample are held.
	const n = 20
	for i := range n {
		send(fmt.Sprintf("before-%d@drill", i), "clean", business(fmt.Sprintf("before-%d@drill", i)))
	}
	send("eicar-0@drill", "eicar", eicarMail("eicar-0@drill"))
	send("vendorb-0@drill", "vendor-b", vendorBMail("vendorb-0@drill"))
	if probe() {
		t.Fatal("clamd flags business mail before the update")
	}

	// The faulty update: a body signature for "Kind regards", any file.
	update := time.Now()
	faulty := filepath.Join(d.DBDir, "faulty-update.ndb")
	if err := os.WriteFile(faulty, []byte("Faulty.Update.Regards:0:*:"+hex.EncodeToString([]byte("Kind regards"))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	waitProbe(true)
	for i := range n {
		send(fmt.Sprintf("after-%d@drill", i), "false-positive", business(fmt.Sprintf("after-%d@drill", i)))
	}
	send("eicar-1@drill", "eicar", eicarMail("eicar-1@drill"))
	send("vendorb-1@drill", "vendor-b", vendorBMail("vendorb-1@drill"))

	// Everything the update flagged is held; the guard noticed the jump.
	page, err := held.List(ctx, quarantine.Query{Since: update, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var suspect int
	for _, h := range page.Items {
		if slices.ContainsFunc(h.Symbols, func(s filter.Symbol) bool { return s.Name == scanner.SymSuspect }) {
			suspect++
		}
	}
	if len(page.Items) != n+2 || suspect == 0 || !multi.States()[0].Suspect {
		t.Fatalf("after the update: %d held (want %d), %d suspect, engine states %+v", len(page.Items), n+2, suspect, multi.States())
	}

	// The vendor fixes the database.
	if err := os.Remove(faulty); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	waitProbe(false)

	// Re-scan exactly what clamd-1 flagged since the update.
	rep, err := held.Rescan(ctx, p, quarantine.RescanOptions{Filter: quarantine.Query{Symbol: scanner.EngineSymbol("clamd-1"), Since: update}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("held after the update: %d (%d as AV_SUSPECT_ENGINE); re-scan: %+v", n+2, suspect, rep)
	if rep.Matched != n+1 || rep.Released != n || rep.Kept != 1 || rep.Failed != 0 {
		t.Fatalf("re-scan %+v, want %d matched (not vendor-b's sample), %d released, 1 kept (EICAR)", rep, n+1, n)
	}

	// Every falsely held message arrives, with every message delivered
	// before the update; what is still held is exactly the malware and
	// vendor-b's samples. Nothing lost, nothing twice.
	got := sink.Wait(2*n, 60*time.Second)
	delivered := map[string]int{}
	for _, m := range got {
		delivered[messageID(m.Data)]++
	}
	page, err = held.List(ctx, quarantine.Query{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	stillHeld := map[string]bool{}
	for _, h := range page.Items {
		_, raw, err := held.Get(ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		stillHeld[messageID(raw)] = true
	}
	for id, kind := range sent {
		want := kind == "clean" || kind == "false-positive"
		switch {
		case want && delivered[id] != 1:
			t.Errorf("%s (%s) delivered %d times, want once", id, kind, delivered[id])
		case want && stillHeld[id]:
			t.Errorf("%s (%s) is still held", id, kind)
		case !want && (delivered[id] != 0 || !stillHeld[id]):
			t.Errorf("%s (%s): delivered %d, held %v; want held only", id, kind, delivered[id], stillHeld[id])
		}
	}
	if len(got) != 2*n || len(page.Items) != 4 {
		t.Errorf("%d delivered (want %d), %d held (want 4)", len(got), 2*n, len(page.Items))
	}
}

// eicarB64 is how EICAR starts in a base64 attachment: what vendor-b,
// scanning the raw message, looks for.
func eicarB64() string { return base64.StdEncoding.EncodeToString(testsvc.Eicar())[:40] }

// messageID returns the Message-ID of a raw message, without brackets.
func messageID(raw []byte) string {
	m := filter.NewMessageBytes(filter.Envelope{}, raw, filter.Limits{})
	return strings.Trim(m.Header().Get("Message-ID"), "<> ")
}
