package jetstream

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
)

func seedEntry() (queue.Entry, bodyInfo) {
	e := queue.Entry{
		ID: "18a0f00d00000000abcdef0123456789",
		Envelope: filter.Envelope{ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "h", MailFrom: "a@example.org",
			RcptTo: []string{"b@example.net", "c@example.net"}, AuthUser: "u", TLS: true},
		Size: 300000, Created: time.UnixMilli(1_700_000_000_000), State: queue.Held, Done: []string{"b@example.net"},
		Attempts: 3, Inflight: true, Crashes: 1, NextAttempt: time.UnixMilli(1_700_000_060_000), LastError: "451 later",
	}
	return e, bodyInfo{chunkSize: 256 << 10, chunks: 2, sum: "a3f0000000000000000000000000000000000000000000000000000000000000"}
}

func TestEntryRecordRoundTrip(t *testing.T) {
	e, bi := seedEntry()
	got, gbi, err := decodeEntry(encodeEntry(e, bi), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != e.ID || got.Envelope.ClientIP != e.Envelope.ClientIP || got.State != e.State || !got.NextAttempt.Equal(e.NextAttempt) ||
		got.Inflight != e.Inflight || len(got.Done) != 1 || gbi != bi {
		t.Errorf("round trip: %+v %+v", got, gbi)
	}
	// A body over the limit, a flipped byte, a wrong chunk count: corrupt.
	if _, _, err := decodeEntry(encodeEntry(e, bi), 1000); !errors.Is(err, queue.ErrCorrupt) {
		t.Errorf("size over the limit: %v", err)
	}
	b := encodeEntry(e, bi)
	b[len(b)-3] ^= 1
	if _, _, err := decodeEntry(b, 64<<20); !errors.Is(err, queue.ErrCorrupt) {
		t.Errorf("flipped byte: %v", err)
	}
	bi.chunks = 3
	if _, _, err := decodeEntry(encodeEntry(e, bi), 64<<20); !errors.Is(err, queue.ErrCorrupt) {
		t.Errorf("wrong chunk count: %v", err)
	}
}

// FuzzEntryRecord: the entry decoder never panics, errors match
// queue.ErrCorrupt, and what it accepts re-encodes to the same record.
func FuzzEntryRecord(f *testing.F) {
	e, bi := seedEntry()
	f.Add(encodeEntry(e, bi))
	e.Envelope.ClientIP = netip.Addr{}
	f.Add(encodeEntry(e, bodyInfo{chunkSize: 1, sum: bi.sum}))
	f.Add([]byte("PJE100000000{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, bi, err := decodeEntry(b, 64<<20)
		if err != nil {
			if !errors.Is(err, queue.ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		e2, bi2, err := decodeEntry(encodeEntry(e, bi), 64<<20)
		if err != nil || e2.ID != e.ID || bi2 != bi || e2.Size != e.Size || !e2.Created.Equal(e.Created) {
			t.Fatalf("re-decoding: %+v %v", e2, err)
		}
	})
}

// FuzzQuarantineRecord: the same for the quarantine's records.
func FuzzQuarantineRecord(f *testing.F) {
	h := quarantine.Held{
		ID: "18a0f00d00000000abcdef0123456789", Envelope: filter.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.net"}},
		Size: 10, Checksum: "a3f0000000000000000000000000000000000000000000000000000000000000", HeldAt: time.UnixMilli(1_700_000_000_000),
		Action: filter.Quarantine, Score: 5, Symbols: []filter.Symbol{{Name: "AV_X", Score: 5, Detail: "d"}},
	}
	b, err := encodeHeld(h, 256<<10)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("PJQ100000001PQH100000000{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, bi, err := decodeHeld(b, 64<<20)
		if err != nil {
			if !errors.Is(err, queue.ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		again, err := encodeHeld(h, bi.chunkSize)
		if err != nil {
			t.Fatal(err)
		}
		h2, bi2, err := decodeHeld(again, 64<<20)
		if err != nil || h2.ID != h.ID || bi2 != bi {
			t.Fatalf("re-decoding: %+v %v", h2, err)
		}
	})
}
