package main

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/internal/testsvc"
	"golang.org/x/crypto/bcrypt"
)

// The queue commands through the built binary: a next hop that defers
// leaves two messages queued for an hour; one is retried now and
// delivered, the other bounced, and its DSN reaches the sender.
func TestQueueCommands(t *testing.T) {
	var accept atomic.Bool
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{OnRcpt: func(string) error {
		if !accept.Load() {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "not now"}
		}
		return nil
	}})
	dir := t.TempDir()
	cfg := writeFile(t, dir, "gateway.yaml", "queue:\n  retry_base: 1h\n  retry_max: 1h\n")
	args := gatewayArgs(t, sink.Addr, "-config", cfg)
	data := args[len(args)-3]
	g := startGateway(t, args...)
	for _, s := range []string{"retry me", "bounce me"} {
		if r := send(g.smtp, message(s, "hello")); r.code != 250 {
			t.Fatalf("%s: %+v", s, r)
		}
	}
	op := func(args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command(binary, append([]string{"queue", args[0], "-admin", g.admin, "-data", data}, args[1:]...)...).CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := op(args...)
		if err != nil {
			t.Fatalf("gateway queue %v: %v\n%s", args, err, out)
		}
		return out
	}
	// Both deferred once (the attempt lines), then listed.
	deadline := time.Now().Add(20 * time.Second)
	var list string
	for {
		list = must("list")
		if strings.Count(list, " 1 attempts ") == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling the gateway's queue through its API
	}
	if !strings.Contains(list, "2 shown, 2 queued in all (0 held)") || strings.Count(list, "rcpt@example.net") != 2 {
		t.Fatalf("queue list:\n%s\n%s", list, g.output())
	}
	lines := strings.Split(list, "\n")
	first, second := strings.Fields(lines[0])[0], strings.Fields(lines[1])[0]
	if show := must("show", first); !strings.Contains(show, `"from": "sender@example.org"`) || !strings.Contains(show, "not now") {
		t.Errorf("queue show %s:\n%s", first, show)
	}
	if paged := must("list", "-limit", "1"); !strings.Contains(paged, "1 shown, 2 queued in all") || !strings.Contains(paged, first) {
		t.Errorf("queue list -limit 1:\n%s", paged)
	}

	accept.Store(true)
	if out := must("retry", first); !strings.Contains(out, "retrying "+first) {
		t.Errorf("queue retry:\n%s", out)
	}
	got := sink.Wait(1, 20*time.Second)
	if len(got) != 1 || !strings.Contains(string(got[0].Data), "Subject: retry me") {
		t.Fatalf("retried message not delivered within seconds: sink has %d\n%s", len(got), g.output())
	}
	if out := must("bounce", second); !strings.Contains(out, "bounced "+second) {
		t.Errorf("queue bounce:\n%s", out)
	}
	got = sink.Wait(2, 20*time.Second)
	if len(got) != 2 || got[1].To[0] != "sender@example.org" || !strings.Contains(string(got[1].Data), "bounced by the operator") {
		t.Fatalf("no DSN to the sender: sink has %d\n%s", len(got), g.output())
	}
	// An ID that is gone, and one that cannot be an ID.
	if out, err := op("bounce", second); err == nil || !strings.Contains(out, "404") {
		t.Errorf("bouncing a gone entry: %v\n%s", err, out)
	}
	if out, err := op("show", strings.Repeat("x", 65)); err == nil || !strings.Contains(out, "400") {
		t.Errorf("show of a 65-byte ID: %v\n%s", err, out)
	}
	deadline = time.Now().Add(20 * time.Second)
	for !strings.Contains(list, "0 shown, 0 queued") && time.Now().Before(deadline) {
		list = must("list")
		time.Sleep(50 * time.Millisecond) // polling until the DSN is delivered and gone
	}
	if !strings.Contains(list, "0 shown, 0 queued") {
		t.Errorf("queue after retry and bounce:\n%s", list)
	}
}

// admin.users from the configuration reach the admin API: an admin user
// by HTTP Basic sees the queue, a recipient-scoped one does not.
func TestConfiguredUsers(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("ops-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, t.TempDir(), "gateway.yaml", fmt.Sprintf("admin:\n  users:\n    - {name: ops, password_hash: %q, admin: true}\n"+
		"    - {name: alice, password_hash: %q, recipients: [alice@example.net]}\n", h, h))
	g := startGateway(t, gatewayArgs(t, "127.0.0.1:1", "-config", cfg)...)
	for _, c := range []struct {
		user, pw string
		want     int
	}{{"ops", "ops-password", 200}, {"ops", "wrong", 401}, {"alice", "ops-password", 403}} {
		req, _ := http.NewRequest("GET", "http://"+g.admin+"/api/queue", nil)
		req.SetBasicAuth(c.user, c.pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s/%s: %d, want %d", c.user, c.pw, resp.StatusCode, c.want)
		}
	}
}
