package quarantine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/quarantine/quarantinetest"
	"github.com/portcullis-mail/portcullis/queue"
)

func TestDirConformance(t *testing.T) {
	quarantinetest.Run(t, func(t *testing.T) quarantinetest.Opener {
		dir := t.TempDir()
		return func() (quarantine.Store, error) {
			return quarantine.OpenDir(dir, quarantine.DirConfig{})
		}
	})
}

// TestQuarantineDrillLocal is the faulty-update drill on the local
// quarantine and the local spool.
func TestDrillLocal(t *testing.T) {
	dir := t.TempDir()
	quarantinetest.RunDrill(t, func() (quarantine.Store, error) {
		return quarantine.OpenDir(dir, quarantine.DirConfig{})
	}, func(t *testing.T, d queue.Deliverer) queue.Enqueuer {
		q, err := queue.Open(t.TempDir(), queue.Config{Deliverer: d, MinFreeBytes: 1, RetryBase: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			q.Shutdown(ctx)
		})
		return q
	})
}

func TestDirRecovery(t *testing.T) {
	dir := t.TempDir()
	s, err := quarantine.OpenDir(dir, quarantine.DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	good, raw := quarantinetest.Held(1, 100)
	bad, badRaw := quarantinetest.Held(2, 100)
	for _, p := range []struct {
		h   quarantine.Held
		raw []byte
	}{{good, raw}, {bad, badRaw}} {
		if err := s.Put(context.Background(), p.h, p.raw); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := quarantine.OpenDir(dir, quarantine.DirConfig{}); err == nil {
		t.Error("a second process opened a quarantine directory in use")
	}
	s.Close()
	msg := filepath.Join(dir, "msg")
	// A damaged record, an orphan message (a put cut short), a stray file.
	if err := os.WriteFile(filepath.Join(msg, string(bad.ID)+".rec"), []byte("PQH1deadbeef{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(msg, "orphan.eml"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(msg, "stray.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = quarantine.OpenDir(dir, quarantine.DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all, err := s.All(context.Background())
	if err != nil || len(all) != 1 || all[0].ID != good.ID {
		t.Fatalf("after recovery: %v %v, want only the good record", all, err)
	}
	for _, name := range []string{string(bad.ID) + ".rec", string(bad.ID) + ".eml", "stray.txt"} {
		if _, err := os.Stat(filepath.Join(dir, "corrupt", name)); err != nil {
			t.Errorf("%s not moved to corrupt/: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(msg, "orphan.eml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphan message not cleaned: %v", err)
	}
}

// FuzzHeldRecord feeds arbitrary bytes to the record decoder: it
// never panics, and what it accepts encodes back to an equal record.
func FuzzHeldRecord(f *testing.F) {
	h, _ := quarantinetest.Held(1, 10)
	b, err := h.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	h.Releasing, h.RescanRun, h.RescannedAt = true, "run", h.HeldAt
	b, _ = h.MarshalBinary()
	f.Add(b)
	f.Add([]byte("PQH100000000{}"))
	f.Add([]byte("PQH1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h quarantine.Held
		if err := h.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, quarantine.ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		again, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encoding an accepted record: %v", err)
		}
		var h2 quarantine.Held
		if err := h2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		quarantinetest.CheckHeld(t, h2, h)
	})
}

// TestHoldLogLine: the hold line names the held message and the
// transaction that sent it there, so the two stories join.
func TestHoldLogLine(t *testing.T) {
	d, err := quarantine.OpenDir(t.TempDir(), quarantine.DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var logs bytes.Buffer
	m, err := quarantine.New(quarantine.Config{Store: d, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	msg := filter.NewMessageBytes(filter.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.net"}}, []byte("Subject: x\r\n\r\nx\r\n"), filter.Limits{})
	id, err := m.Hold(context.Background(), msg, filter.Verdict{Action: filter.Quarantine, MessageID: "tx-1",
		Symbols: []filter.Symbol{{Name: "AV_CLAMAV", Score: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("%q: %v", logs.String(), err)
	}
	if line["msg"] != "quarantine: held" || line["id"] != string(id) || line[filter.LogMessageID] != "tx-1" || line["symbols"] != "AV_CLAMAV" {
		t.Errorf("hold line %v", line)
	}
}
