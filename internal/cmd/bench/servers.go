package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var client = &http.Client{Timeout: time.Minute}

// rspamdSystem is the rspamd at url (its main process pid) as a system;
// ip gives message k's client address (nil: 192.0.2.10 for all).
func rspamdSystem(name, url string, pid int, ip func(k int) netip.Addr) system {
	return system{name: name, check: func(_, k int, raw []byte) error {
		addr := "192.0.2.10"
		if ip != nil {
			addr = ip(k).String()
		}
		return checkRspamd(url, addr, raw)
	}, cpu: func() float64 { return treeCPU(pid) }}
}

// checkRspamd posts raw to rspamd's /checkv2 with the client address ip;
// errRejected when a bench list's symbol (BENCH_*) is in the answer.
func checkRspamd(url, ip string, raw []byte) error {
	req, err := http.NewRequest("POST", url+"/checkv2", bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("IP", ip)
	req.Header.Set("From", "sender@example.org")
	req.Header.Set("Rcpt", "rcpt@example.net")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"action"`)) {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, body)
	}
	if bytes.Contains(body, []byte(`"BENCH_`)) {
		return errRejected
	}
	return nil
}

// checkSpamd sends raw to spamd with the spamc protocol (CHECK, one
// connection per message, as spamc does) and checks that spamd answered
// EX_OK with a Spam header.
func checkSpamd(addr string, raw []byte) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	w := bufio.NewWriter(c)
	fmt.Fprintf(w, "CHECK SPAMC/1.5\r\nContent-length: %d\r\nUser: bench\r\n\r\n", len(raw))
	w.Write(raw)
	if err := w.Flush(); err != nil {
		return err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	reply, err := io.ReadAll(io.LimitReader(c, 64<<10))
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(reply, []byte("SPAMD/1.")) || !bytes.Contains(reply, []byte(" 0 EX_OK")) || !bytes.Contains(reply, []byte("\nSpam: ")) {
		return fmt.Errorf("spamd answered %.200q", reply)
	}
	return nil
}

// procCPU returns utime+stime of /proc/PID in seconds, and with children
// the cutime+cstime of the children it reaped.
func procCPU(pid string, children bool) float64 {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil || bytes.LastIndexByte(b, ')') < 0 {
		return 0
	}
	// Fields after the parenthesised command name; utime, stime, cutime
	// and cstime are fields 14 to 17 of the whole line.
	rest := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(rest) < 15 {
		return 0
	}
	last := 12
	if children {
		last = 14
	}
	t := 0.0
	for _, f := range rest[11 : last+1] {
		v, _ := strconv.ParseFloat(f, 64)
		t += v
	}
	return t / 100 // USER_HZ
}

// treeCPU is procCPU over pid and its descendants, with the children
// they reaped.
func treeCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	parent := map[int]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil || bytes.LastIndexByte(b, ')') < 0 {
			continue
		}
		rest := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		id, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		pp, _ := strconv.Atoi(rest[1])
		parent[id] = pp
	}
	total := 0.0
	for id := range parent {
		for a := id; a != 0; a = parent[a] {
			if a == pid {
				total += procCPU(strconv.Itoa(id), true)
				break
			}
		}
	}
	return total
}
