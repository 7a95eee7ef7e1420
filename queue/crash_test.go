package queue

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var crashLoops = flag.Int("queue.crashloops", 200, "SIGKILL rounds in TestCrashLoop (use 1000+ for a long run)")

const (
	crashEnv        = "PORTCULLIS_QUEUE_CRASH_DIR"
	crashDeliverEnv = "PORTCULLIS_QUEUE_CRASH_DELIVER"
)

// TestHelperProcess is the child of TestCrashLoop: it enqueues as fast as
// it can from several producers and prints every acknowledged ID.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		// Not a missing component: this test only runs as the child that
		// TestCrashLoop re-executes; under CI it is that child or a no-op.
		t.Skip("helper process for TestCrashLoop")
	}
	var out sync.Mutex
	cfg := Config{StoreOnly: true, MinFreeBytes: 1, MaxDepth: -1, Spool: SpoolConfig{SegmentBytes: 1 << 20}}
	if os.Getenv(crashDeliverEnv) != "" {
		// Deliver too: a line "DLV id" is the next hop's 250, printed
		// before the queue records the delivery, as a real one would be.
		cfg.Workers = 4
		cfg.Deliverer = DeliverFunc(func(_ context.Context, m *Outgoing) []error {
			out.Lock()
			os.Stdout.WriteString("DLV " + string(m.ID) + "\n")
			out.Unlock()
			return make([]error, len(m.To))
		})
	}
	q, err := Open(dir, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	os.Stdout.WriteString("READY\n")
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				tok := fmt.Sprintf("tok-%d-%d-%d", os.Getpid(), p, n)
				id, err := q.Enqueue(context.Background(), testEnv(), strings.NewReader(testMsg(tok)+strings.Repeat("body ", 50)))
				if err != nil {
					fmt.Fprintln(os.Stderr, "enqueue:", err)
					os.Exit(4)
				}
				out.Lock()
				// One write per line: a line on stdout is an acknowledgment.
				os.Stdout.WriteString("ACK " + string(id) + " " + tok + "\n")
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrashLoop kills an enqueuing process with SIGKILL at random points
// and checks after each restart that every acknowledged message is in the
// spool exactly once, or was delivered (removed) and stays gone.
func TestCrashLoop(t *testing.T) {
	if testing.Short() {
		// Only with -short, which CI never passes.
		t.Skip("crash loop is not short")
	}
	dir := t.TempDir()
	acked := map[ID]string{}   // id → token, present in the spool
	delivered := map[ID]bool{} // removed by the parent after checking
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	start := time.Now()
	totalAcks, totalDelivered, emptyRounds := 0, 0, 0
	for round := range *crashLoops {
		// Odd rounds deliver as well as enqueue, so kills also land
		// between a delivery and its record.
		deliver := round%2 == 1
		// Every third round is killed at a random point from its start,
		// recovery included; the others at a random point of the
		// enqueuing, whatever the start-up costs (the race detector's).
		afterReady := round%3 != 0
		lines := runAndKill(t, dir, deliver, afterReady, time.Duration(rng.IntN(40)+1)*time.Millisecond)
		dlv := map[ID]bool{}
		acks := 0
		for _, l := range lines {
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "ACK":
				acked[ID(f[1])] = f[2]
				acks++
			case len(f) == 2 && f[0] == "DLV":
				dlv[ID(f[1])] = true
				totalDelivered++
			default:
				t.Fatalf("round %d: child printed %q", round, l)
			}
		}
		if acks == 0 {
			emptyRounds++
		}
		totalAcks += acks
		verifyAndDeliver(t, dir, round, acked, dlv, delivered, rng)
	}
	t.Logf("%d rounds in %v: %d acknowledged, %d delivered by the child, %d rounds killed before the first ack, lost 0",
		*crashLoops, time.Since(start).Round(time.Millisecond), totalAcks, totalDelivered, emptyRounds)
	if totalAcks == 0 {
		t.Fatal("no enqueue was ever acknowledged: the crash test tested nothing")
	}
}

// runAndKill starts the helper, kills it after d, and returns the complete
// lines it printed.
func runAndKill(t *testing.T, dir string, deliver, afterReady bool, d time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	if deliver {
		cmd.Env = append(cmd.Env, crashDeliverEnv+"=1")
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	read := make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "READY" {
				close(ready)
			}
			if l := sc.Text(); strings.HasPrefix(l, "ACK ") || strings.HasPrefix(l, "DLV ") {
				lines = append(lines, l)
			}
		}
	}()
	if afterReady {
		select {
		case <-ready:
		case <-read:
		case <-time.After(30 * time.Second):
		}
	}
	time.Sleep(d)
	cmd.Process.Signal(syscall.SIGKILL)
	<-read
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("helper exited by itself (%v): %s", err, stderr.String())
	}
	// Only complete lines count: the scanner returns a last line cut
	// short by the kill too, so require each line's full shape.
	out := lines[:0]
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 3 && strings.Count(f[2], "-") == 3 || len(f) == 2 && f[0] == "DLV" && validID(f[1]) && len(f[1]) >= 32 {
			out = append(out, l)
		}
	}
	return out
}

// verifyAndDeliver checks that every acknowledged message is in the spool
// exactly once or was delivered by the child (dlv); then it removes about
// half of them itself (delivered), and those must never come back.
func verifyAndDeliver(t *testing.T, dir string, round int, acked map[ID]string, dlv, delivered map[ID]bool, rng *rand.Rand) {
	t.Helper()
	s, err := OpenSpool(dir, SpoolConfig{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatalf("round %d: reopen: %v", round, err)
	}
	defer s.Close()
	es, err := s.Entries(bg)
	if err != nil {
		t.Fatal(err)
	}
	present := map[ID]bool{}
	for _, e := range es {
		if present[e.ID] {
			t.Fatalf("round %d: %s present twice", round, e.ID)
		}
		present[e.ID] = true
		if delivered[e.ID] {
			t.Fatalf("round %d: delivered %s came back", round, e.ID)
		}
	}
	lost := 0
	var toDeliver []ID
	for id, tok := range acked {
		if !present[id] && dlv[id] {
			delete(acked, id) // delivered by the child and recorded
			continue
		}
		if !present[id] {
			lost++
			t.Errorf("round %d: acknowledged %s lost", round, id)
			continue
		}
		if b := readAll(t, s, id); !strings.Contains(string(b), tok+"@") {
			t.Fatalf("round %d: %s has the wrong body", round, id)
		}
		if rng.IntN(2) == 0 {
			toDeliver = append(toDeliver, id)
		}
	}
	if lost > 0 {
		t.Fatalf("round %d: lost = %d", round, lost)
	}
	// Deliver (remove) about half, and the unacknowledged extras, so the
	// spool churns and segments are collected between crashes.
	for _, e := range es {
		if _, ok := acked[e.ID]; !ok {
			toDeliver = append(toDeliver, e.ID)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	work := make(chan ID)
	for range 16 {
		wg.Go(func() {
			for id := range work {
				if err := s.Remove(bg, id); err != nil {
					t.Errorf("remove: %v", err)
					continue
				}
				mu.Lock()
				delivered[id] = true
				delete(acked, id)
				mu.Unlock()
			}
		})
	}
	for _, id := range toDeliver {
		work <- id
	}
	close(work)
	wg.Wait()
}
