package queue

import (
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestEntryRecord: a store's own record embedding EntryRecord keeps every
// field of an entry and its own, and a damaged record is ErrCorrupt.
func TestEntryRecord(t *testing.T) {
	now := time.UnixMilli(time.Now().UnixMilli())
	e := Entry{
		ID: newID(now), Envelope: testEnv("a@example.net", "b@example.net"), Size: 42, Created: now,
		State: Held, Done: []string{"a@example.net"}, Attempts: 3, Inflight: true, Crashes: 1,
		NextAttempt: now.Add(time.Hour), LastError: "451 later",
	}
	e.Envelope.ClientIP = netip.MustParseAddr("192.0.2.7")
	e.Envelope.AuthUser, e.Envelope.TLS = "u", true
	type storeRecord struct {
		EntryRecord
		Extra string `json:"extra"`
	}
	b, err := json.Marshal(storeRecord{NewEntryRecord(e), "chunks"})
	if err != nil {
		t.Fatal(err)
	}
	var r storeRecord
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	got, err := r.Entry()
	if err != nil || r.Extra != "chunks" || !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip:\n got %+v (%q, %v)\nwant %+v", got, r.Extra, err, e)
	}
	for _, damage := range []func(*EntryRecord){
		func(r *EntryRecord) { r.ID = "../x" },
		func(r *EntryRecord) { r.RcptTo = nil },
		func(r *EntryRecord) { r.State = 7 },
		func(r *EntryRecord) { r.Attempts = -1 },
		func(r *EntryRecord) { r.ClientIP = "not an ip" },
		func(r *EntryRecord) { r.RcptTo = make([]string, maxRecipients+1) },
	} {
		r := NewEntryRecord(e)
		damage(&r)
		if _, err := r.Entry(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("damaged record %+v: %v, want ErrCorrupt", r, err)
		}
	}
}
