package testsvc

import (
	"net/smtp"
	"strings"
	"testing"
	"time"
)

func TestPostfixRelaysToSink(t *testing.T) {
	sink := StartSMTPSink(t, SMTPSinkConfig{})
	pf := StartPostfix(t, PostfixConfig{Relay: sink.Addr})
	msg := "From: a@example.org\r\nTo: b@example.net\r\nSubject: relay\r\n\r\nhello\r\n"
	if err := smtp.SendMail(pf.Addr, nil, "a@example.org", []string{"b@example.net"}, []byte(msg)); err != nil {
		t.Fatalf("send through postfix: %v\n%s", err, pf.Log())
	}
	got := sink.Wait(1, 20*time.Second)
	if len(got) != 1 {
		t.Fatalf("sink got %d messages, want 1; queue %+v\n%s", len(got), pf.Queue(), pf.Log())
	}
	if !strings.Contains(string(got[0].Data), "Subject: relay") || got[0].To[0] != "b@example.net" {
		t.Fatalf("sink got %q to %v", got[0].Data, got[0].To)
	}
	if !pf.WaitQueueEmpty(10 * time.Second) {
		t.Fatalf("queue not empty after delivery: %+v", pf.Queue())
	}
}
