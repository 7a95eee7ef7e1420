package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/queue"
)

// faulty wraps a quarantine and fails the calls it is told to.
type faulty struct {
	Quarantine
	list, release, del, rescan error
	corrupt                    atomic.Bool // Get reports the message corrupt, with its record
	rescans                    atomic.Int32
}

func (f *faulty) List(ctx context.Context, q query) (page, error) {
	if f.list != nil {
		return page{}, f.list
	}
	return f.Quarantine.List(ctx, q)
}

func (f *faulty) Get(ctx context.Context, id heldID) (held, []byte, error) {
	h, raw, err := f.Quarantine.Get(ctx, id)
	if err == nil && f.corrupt.Load() {
		return h, nil, fmt.Errorf("%w: quarantined %s fails its checksum", errCorrupt, id)
	}
	return h, raw, err
}

func (f *faulty) Release(ctx context.Context, id heldID) (queue.ID, error) {
	if f.release != nil {
		return "", f.release
	}
	return f.Quarantine.Release(ctx, id)
}

func (f *faulty) Delete(ctx context.Context, id heldID) error {
	if f.del != nil {
		return f.del
	}
	return f.Quarantine.Delete(ctx, id)
}

func (f *faulty) Rescan(ctx context.Context, p *filter.Pipeline, o rescanOptions) (rescanReport, error) {
	f.rescans.Add(1)
	if f.rescan != nil {
		return rescanReport{}, f.rescan
	}
	return f.Quarantine.Rescan(ctx, p, o)
}

func faultyEnv(t *testing.T, f *faulty) *env {
	return newEnv(t, func(c *Config) { f.Quarantine = c.Quarantine; c.Quarantine = f })
}

func TestStoreFailures(t *testing.T) {
	f := &faulty{}
	e := faultyEnv(t, f)
	id := e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("x", "x"))
	b := e.browser()
	b.login("", testToken)

	f.list = errors.New("disk on fire")
	if resp, body := e.api("GET", "/api/quarantine", "", nil); resp.StatusCode != 500 || !strings.Contains(string(body), "disk on fire") {
		t.Errorf("API list: %d %s", resp.StatusCode, body)
	}
	if resp, body := b.get("/quarantine"); resp.StatusCode != 500 || !strings.Contains(body, "could not be listed") {
		t.Errorf("console list: %d", resp.StatusCode)
	}
	if !strings.Contains(e.log.String(), "disk on fire") {
		t.Error("the store failure is not logged")
	}
	f.list = nil

	f.release = fmt.Errorf("%w: %s", errInUse, id)
	if resp, _ := e.api("POST", "/api/quarantine/"+string(id)+"/release", "", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("API release of a busy message: %d", resp.StatusCode)
	}
	if resp, body := b.post("/quarantine/m/"+string(id)+"/release", nil); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "busy") {
		t.Errorf("console release of a busy message: %d", resp.StatusCode)
	}
	f.release = nil

	// A corrupt message: shown as such, never released, deletable.
	f.corrupt.Store(true)
	if resp, body := b.get("/quarantine/m/" + string(id)); resp.StatusCode != 500 || !strings.Contains(body, "fails its checksum") {
		t.Errorf("corrupt message view: %d", resp.StatusCode)
	}
	if resp, body := e.api("GET", "/api/quarantine/"+string(id)+"/raw", "", nil); resp.StatusCode != 500 || !strings.Contains(string(body), "checksum") {
		t.Errorf("corrupt raw: %d %s", resp.StatusCode, body)
	}
	if resp, body := e.api("DELETE", "/api/quarantine/"+string(id), "", nil); resp.StatusCode != 200 {
		t.Errorf("deleting a corrupt message: %d %s", resp.StatusCode, body)
	}
	if len(e.held()) != 0 || len(e.sink.released()) != 0 {
		t.Fatal("the corrupt message was released or kept")
	}
}

// TestRescanStopsOnRepeatedFailures: a re-scan whose every call fails
// stops after maxJobErrors of them, and says why.
func TestRescanStopsOnRepeatedFailures(t *testing.T) {
	f := &faulty{rescan: errors.New("store down")}
	e := faultyEnv(t, f)
	for range maxJobErrors + 5 {
		e.hold("s@example.org", []string{"alice@example.net"}, plainMsg("x", "x"))
	}
	resp, body := e.api("POST", "/api/quarantine/rescan", "", nil)
	j := decode[jobStatus](t, body)
	if resp.StatusCode != 200 || j.State != "failed" || j.Processed != maxJobErrors || j.Failed != maxJobErrors ||
		!strings.Contains(j.Error, "10 failures in a row") || f.rescans.Load() != maxJobErrors {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}
