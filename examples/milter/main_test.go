package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-milter"
)

// start runs the binary's run in-process and returns the milter address.
func start(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-listen", "tcp:127.0.0.1:0"}, args...), io.Discard, func(a net.Addr) { addr <- a.String() })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case a := <-addr:
		return a
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	return ""
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

func TestMilterRejectsExecutableInZipAndTagsCleanMail(t *testing.T) {
	addr := start(t)
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("run.exe")
	w.Write([]byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"))
	zw.Close()
	raw := "Subject: invoice\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"a.zip\"\r\n\r\n" + base64.StdEncoding.EncodeToString(zb.Bytes()) + "\r\n--B--\r\n"
	_, act := sendMessage(t, session(t, addr), raw)
	if act.Code != milter.ActReplyCode || act.SMTPCode != 550 {
		t.Fatalf("exe in zip: %+v", act)
	}

	mods, act := sendMessage(t, session(t, addr), "Subject: hi\r\nX-Spam-Status: No\r\n\r\nhello\r\n")
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
}

func TestMilterFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-quarantine", "store"},                    // no directories
		{"-quarantine", "elsewhere"},                // unknown mode
		{"-config", "/nonexistent/portcullis.yaml"}, // missing file
		{"-listen", "tcp:256.0.0.1:1"},              // bad address
	} {
		if err := run(t.Context(), args, io.Discard, nil); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
