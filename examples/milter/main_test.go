package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-milter"

	"github.com/portcullis-mail/portcullis/internal/testsvc"
)

type started struct {
	milter, admin string
	data          string
}

// start runs the binary's run in-process on free ports and a temp data
// dir, relaying released mail to relay.
func start(t *testing.T, relay string, args ...string) started {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	data := t.TempDir()
	up := make(chan started, 1)
	done := make(chan error, 1)
	args = append([]string{"-listen", "tcp:127.0.0.1:0", "-admin", "127.0.0.1:0", "-data", data, "-relay", relay}, args...)
	go func() {
		done <- run(ctx, args, io.Discard, func(m, a net.Addr) { up <- started{m.String(), a.String(), data} })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case s := <-up:
		// The milter listens while its rules load (config.Build): wait
		// until it is ready, polling its readiness endpoint.
		deadline := time.Now().Add(120 * time.Second)
		for {
			resp, err := http.Get("http://" + s.admin + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return s
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("milter not ready after 120 s: %v", err)
			}
			time.Sleep(20 * time.Millisecond) // polling an HTTP endpoint, not synchronising goroutines
		}
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	return started{}
}

func session(t *testing.T, addr string) *milter.ClientSession {
	t.Helper()
	c := milter.NewClientWithOptions("tcp", addr, milter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		ActionMask: milter.OptAddHeader | milter.OptChangeHeader | milter.OptQuarantine,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, step := range []func() (*milter.Action, error){
		func() (*milter.Action, error) { return s.Conn("client.example", milter.FamilyInet, 25, "192.0.2.1") },
		func() (*milter.Action, error) { return s.Helo("client.example") },
		func() (*milter.Action, error) { return s.Mail("a@example.org", nil) },
		func() (*milter.Action, error) { return s.Rcpt("b@example.net", nil) },
	} {
		if act, err := step(); err != nil || act.Code != milter.ActContinue {
			t.Fatalf("envelope: %v %v", act, err)
		}
	}
	return s
}

func sendMessage(t *testing.T, s *milter.ClientSession, raw string) ([]milter.ModifyAction, *milter.Action) {
	t.Helper()
	hdr, body, _ := strings.Cut(raw, "\r\n\r\n")
	for _, line := range strings.Split(hdr, "\r\n") {
		k, v, _ := strings.Cut(line, ": ")
		if _, err := s.HeaderField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.HeaderEnd(); err != nil {
		t.Fatal(err)
	}
	mods, act, err := s.BodyReadFrom(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return mods, act
}

// withZip is a message with one zip attachment holding name; encrypted
// sets the entry's encryption flag (the default policy quarantines it).
func withZip(name string, content []byte, encrypted bool) string {
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	fh := &zip.FileHeader{Name: name, Method: zip.Store}
	if encrypted {
		fh.Flags |= 0x1
	}
	w, _ := zw.CreateHeader(fh)
	w.Write(content)
	zw.Close()
	return "Subject: invoice\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"a.zip\"\r\n\r\n" + base64.StdEncoding.EncodeToString(zb.Bytes()) + "\r\n--B--\r\n"
}

func TestMilterRejectsExecutableInZipAndTagsCleanMail(t *testing.T) {
	s := start(t, "127.0.0.1:9")
	_, act := sendMessage(t, session(t, s.milter), withZip("run.exe", []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"), false))
	if act.Code != milter.ActReplyCode || act.SMTPCode != 550 {
		t.Fatalf("exe in zip: %+v", act)
	}
	mods, act := sendMessage(t, session(t, s.milter), "Subject: hi\r\nX-Spam-Status: No\r\n\r\nhello\r\n")
	if act.Code != milter.ActAccept {
		t.Fatalf("clean: %+v", act)
	}
	var names []string
	for _, m := range mods {
		names = append(names, string(m.Code)+m.HeaderName)
	}
	if strings.Join(names, " ") != "mX-Spam-Status iX-Spam-Status iX-Portcullis-Verdict" {
		t.Fatalf("clean mail edits: %v", names)
	}

	// The admin HTTP is package admin's: health, readiness, metrics with
	// the milter's counters, the quarantine API behind the token.
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/api/quarantine": 401} {
		res, err := http.Get("http://" + s.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, res.StatusCode, want)
		}
		if path == "/metrics" && !strings.Contains(string(b), "portcullis_milter_messages_total") {
			t.Errorf("/metrics lacks the milter's counters")
		}
	}
}

func TestMilterStoreModeHoldsAndReleasesThroughTheRelay(t *testing.T) {
	sink := testsvc.StartSMTPSink(t, testsvc.SMTPSinkConfig{})
	s := start(t, sink.Addr, "-quarantine", "store")
	_, act := sendMessage(t, session(t, s.milter), withZip("secret.txt", []byte("sealed"), true))
	if act.Code != milter.ActDiscard {
		t.Fatalf("encrypted archive in store mode: %+v, want discard", act)
	}
	token, err := os.ReadFile(filepath.Join(s.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	api := func(method, path string) []byte {
		req, _ := http.NewRequest(method, "http://"+s.admin+path, nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
		}
		return b
	}
	var list struct {
		Items []struct {
			ID string   `json:"id"`
			To []string `json:"to"`
		} `json:"items"`
	}
	if err := json.Unmarshal(api("GET", "/api/quarantine"), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].To[0] != "b@example.net" {
		t.Fatalf("quarantine: %+v", list)
	}
	api("POST", "/api/quarantine/"+list.Items[0].ID+"/release")
	got := sink.Wait(1, 20*time.Second)
	if len(got) != 1 || !strings.Contains(string(got[0].Data), "Subject: invoice") {
		t.Fatalf("released: %+v", got)
	}
}

func TestMilterFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-quarantine", "elsewhere"},                // unknown mode
		{"-config", "/nonexistent/portcullis.yaml"}, // missing file
		{"-relay", "no port"},                       // bad relay
	} {
		err := run(t.Context(), append(args, "-data", t.TempDir()), io.Discard, nil)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if err := run(t.Context(), []string{"-data", t.TempDir(), "-admin", "off", "-listen", "tcp:256.0.0.1:1"}, io.Discard, nil); err == nil {
		t.Error("a bad listen address started")
	}
}
