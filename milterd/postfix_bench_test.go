package milterd

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

// BenchmarkPostfix measures messages per second through a real Postfix
// relaying to a sink, without a milter and with this package's milter
// (the archive inspector and the default policy) in a separate process
// whose CPU time per message it reports. Run it with a fixed count, e.g.
//
//	go test ./milterd -run XXX -bench Postfix -benchtime 400x
func BenchmarkPostfix(b *testing.B) {
	for _, withMilter := range []bool{false, true} {
		name := "without-milter"
		if withMilter {
			name = "with-milter"
		}
		b.Run(name, func(b *testing.B) { benchPostfix(b, withMilter) })
	}
}

func benchPostfix(b *testing.B, withMilter bool) {
	sink := testsvc.StartSMTPSink(b, testsvc.SMTPSinkConfig{})
	cfg := testsvc.PostfixConfig{Relay: sink.Addr}
	var pid int
	if withMilter {
		addr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(b))
		pid = startHelper(b, addr)
		cfg.Milter = "inet:" + addr
	}
	pf := testsvc.StartPostfix(b, cfg)
	raw := benchMessage()
	const clients = 4
	cpu0 := procCPU(b, pid)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan struct{})
	errs := make(chan error, b.N)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if err := sendBench(pf.Addr, raw); err != nil {
					errs <- err
				}
			}
		}()
	}
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	got := sink.Wait(b.N, time.Minute)
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatalf("send: %v", err)
	}
	if len(got) != b.N {
		b.Fatalf("sink got %d of %d", len(got), b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if withMilter {
		b.ReportMetric(float64((procCPU(b, pid)-cpu0).Microseconds())/float64(b.N), "milter-cpu-µs/msg")
		if !strings.HasPrefix(string(got[0].Data), "X-Spam-Status: ") {
			b.Fatalf("the milter did not judge the message: %.200q", got[0].Data)
		}
	}
}

// benchMessage is a 5 KB message with a text body and a small zip.
func benchMessage() string {
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("report.txt")
	w.Write([]byte(strings.Repeat("quarter,revenue,cost\n", 50)))
	zw.Close()
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n", 40)
	return "From: a@example.org\r\nTo: b@example.net\r\nSubject: monthly report\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n" + body +
		"--B\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"report.zip\"\r\n\r\n" +
		base64.StdEncoding.EncodeToString(zb.Bytes()) + "\r\n--B--\r\n"
}

func sendBench(addr, raw string) error {
	c, err := smtpDial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail("a@example.org"); err != nil {
		return err
	}
	if err := c.Rcpt("b@example.net"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(raw)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// startHelper runs the milter helper process (TestMilterHelperProcess
// without its blocking filter) and returns its PID.
func startHelper(b *testing.B, addr string) int {
	child := exec.Command(os.Args[0], "-test.run=^TestMilterHelperProcess$")
	child.Env = append(os.Environ(), milterHelperEnv+"="+addr, milterHelperModeEnv+"=plain")
	out, err := child.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { child.Process.Kill(); child.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == "LISTENING" {
			go func() {
				for sc.Scan() {
				}
			}()
			return child.Process.Pid
		}
	}
	b.Fatalf("helper ended: %v", sc.Err())
	return 0
}

// procCPU is a process's user+system CPU time from /proc (0 for pid 0).
func procCPU(b *testing.B, pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command: state is field 3, utime 14,
	// stime 15, in clock ticks (USER_HZ, 100 on Linux).
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
