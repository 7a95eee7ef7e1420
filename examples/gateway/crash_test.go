package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

var crashLoops = flag.Int("gateway.crashloops", 200, "how many times TestCrashLoop SIGKILLs the gateway")

var subjectRE = regexp.MustCompile(`(?m)^Subject: (crash-\d+-\d+)\r?$`)

// TestCrashLoop: clients send continuously over several connections while
// the gateway is SIGKILLed at random moments and restarted; every message
// that got a 250 must reach the sink at least once.
func TestCrashLoop(t *testing.T) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	dir := t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	// Durability, not scoring, is under test: without SpamAssassin's 2,500
	// rules a restart takes milliseconds, so 200 kills fit in CI.
	cfg := writeFile(t, dir, "gateway.yaml", "rules:\n  spamassassin: \"\"\nqueue:\n  retry_base: 20ms\n  retry_max: 200ms\n  max_crashes: 100000\n")
	args := []string{"-config", cfg, "-listen", addr, "-admin", "off", "-relay", sink.Addr, "-data", filepath.Join(dir, "data")}

	var mu sync.Mutex
	acked := map[string]bool{}
	refused := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const clients = 4
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("crash-%d-%d", c, n)
				r := send(addr, message(id, "body of "+id))
				mu.Lock()
				switch {
				case r.code == 250:
					acked[id] = true
				case r.err == nil:
					refused++
				}
				mu.Unlock()
				if r.err != nil {
					time.Sleep(2 * time.Millisecond) // the gateway is down: do not spin
				}
			}
		}()
	}

	g := startGateway(t, args...)
	for range *crashLoops {
		time.Sleep(time.Duration(5+rand.IntN(60)) * time.Millisecond) // a random moment to kill at
		g.kill()
		g = startGateway(t, args...)
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	want := len(acked)
	mu.Unlock()
	if want == 0 {
		t.Fatal("no message was accepted")
	}
	deadline := time.Now().Add(60 * time.Second)
	for n := want; ; n++ {
		msgs := sink.Wait(n, time.Until(deadline))
		seen := map[string]int{}
		for _, m := range msgs {
			if s := subjectRE.FindSubmatch(m.Data); s != nil {
				seen[string(s[1])]++
			}
		}
		lost := 0
		for id := range acked {
			if seen[id] == 0 {
				lost++
			}
		}
		if lost == 0 || time.Now().After(deadline) {
			dups := 0
			for _, k := range seen {
				dups += max(0, k-1)
			}
			t.Logf("kills %d, accepted %d, refused %d, delivered %d distinct, duplicates %d, lost %d",
				*crashLoops, want, refused, len(seen), dups, lost)
			if lost != 0 {
				t.Fatalf("%d acknowledged messages lost", lost)
			}
			return
		}
		n = max(n, len(msgs))
	}
}
