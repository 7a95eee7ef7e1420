package quarantine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/diskfs"
)

func newMsg(env filter.Envelope, raw []byte) *filter.Message {
	return filter.NewMessageBytes(env, raw, filter.Limits{})
}

func verdictQ() filter.Verdict {
	return filter.Verdict{Action: filter.Quarantine, Symbols: []filter.Symbol{{Name: "AV_X", Score: 1}}}
}

func testHeld(t *testing.T, raw []byte) Held {
	t.Helper()
	now := time.Now()
	sum := sha256.Sum256(raw)
	return Held{ID: newID(now), Envelope: testEnv(), Size: int64(len(raw)), Checksum: hex.EncodeToString(sum[:]), HeldAt: now}
}

// TestDirFaults: a failing write or fsync fails the change;
// nothing that failed appears after a restart, and nothing acknowledged
// is lost.
func TestDirFaults(t *testing.T) {
	dir := t.TempDir()
	fs := &diskfs.Fault{}
	d, err := openDir(dir, DirConfig{}, fs)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	okRaw := []byte(testMsg("kept"))
	ok := testHeld(t, okRaw)
	if err := d.Put(ctx, ok, okRaw); err != nil {
		t.Fatal(err)
	}
	for _, fault := range []struct {
		name string
		fail func(error)
		err  error
	}{{"ENOSPC on write", fs.FailWrites, syscall.ENOSPC}, {"EIO on fsync", fs.FailSyncs, syscall.EIO}} {
		fault.fail(fault.err)
		raw := []byte(testMsg(fault.name))
		h := testHeld(t, raw)
		if err := d.Put(ctx, h, raw); !errors.Is(err, fault.err) {
			t.Errorf("%s: put: %v", fault.name, err)
		}
		upd := ok
		upd.Rescans = 5
		if err := d.Update(ctx, upd); !errors.Is(err, fault.err) {
			t.Errorf("%s: update: %v", fault.name, err)
		}
		fault.fail(nil)
	}
	d.Close()
	d, err = OpenDir(dir, DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	all, err := d.All(ctx)
	if err != nil || len(all) != 1 || all[0].ID != ok.ID || all[0].Rescans != 0 {
		t.Fatalf("after faults and a restart: %+v %v, want only the acknowledged record, unchanged", all, err)
	}
	b, err := d.Body(ctx, ok.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make([]byte, b.Size())
	if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, okRaw) {
		t.Errorf("acknowledged message changed: %q %v", got, err)
	}
}

// TestDirRefusals: records that would break the store are
// refused (a duplicate ID, an update that changes the message).
func TestDirRefusals(t *testing.T) {
	d, err := OpenDir(t.TempDir(), DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	raw := []byte(testMsg("x"))
	h := testHeld(t, raw)
	if err := d.Put(ctx, h, raw); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, h, raw); err == nil {
		t.Error("a second Put of one ID succeeded")
	}
	h.Size++
	if err := d.Update(ctx, h); err == nil {
		t.Error("an update that changes the message's size succeeded")
	}
	bad := testHeld(t, raw)
	bad.ID = "../escape"
	if err := d.Put(ctx, bad, raw); err == nil {
		t.Error("an ID with a path separator was stored")
	}
}

// TestLimits: a message over MaxMessageBytes is refused with a
// LimitError, and one without recipients with ErrNoRecipients.
func TestLimits(t *testing.T) {
	d, err := OpenDir(t.TempDir(), DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	q, err := New(Config{Store: d, MaxMessageBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), 101)
	var le *filter.LimitError
	if _, err := q.Hold(ctx, newMsg(testEnv(), big), verdictQ()); !errors.As(err, &le) || le.Max != 100 {
		t.Errorf("101 bytes over a limit of 100: %v", err)
	}
	if _, err := q.Hold(ctx, newMsg(testEnv(), big[:100]), verdictQ()); err != nil {
		t.Errorf("100 bytes at a limit of 100: %v", err)
	}
	env := testEnv()
	env.RcptTo = nil
	if _, err := q.Hold(ctx, newMsg(env, big[:10]), verdictQ()); !errors.Is(err, ErrNoRecipients) {
		t.Errorf("no recipients: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("a quarantine without a store")
	}
}

func testEnv() filter.Envelope {
	return filter.Envelope{MailFrom: "sender@example.org", RcptTo: []string{"rcpt@example.net"}, Helo: "client.example.org"}
}

func testMsg(subject string) string {
	return "From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: " + subject + "\r\n\r\nHello " + subject + ".\r\n"
}
