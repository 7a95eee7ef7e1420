package smtpd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/router"
	"github.com/portcullis-mail/portcullis/smtpd"
)

// stageServer runs a backend over filters on loopback, with an in-memory
// store, optionally offering STARTTLS.
func stageServer(t *testing.T, tlsConf *tls.Config, filters ...filter.Filter) string {
	t.Helper()
	store := &memStore{}
	r, err := router.New(router.Config{Queue: store, Quarantine: store})
	if err != nil {
		t.Fatal(err)
	}
	be, err := smtpd.NewBackend(smtpd.Config{Pipeline: filter.NewPipeline(filter.Options{}, filters...), Router: r})
	if err != nil {
		t.Fatal(err)
	}
	srv := smtpd.NewServer(be, smtpd.ServerConfig{TLS: tlsConf})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// A second EHLO replaces the first name: a HELO filter judges it at the
// next MAIL.
func TestSecondEHLOIsJudged(t *testing.T) {
	badHelo := filter.Func("helo", func(_ context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		if m.Envelope.Helo == "bad.example" {
			r.Demand(filter.Reject)
		}
		return r, nil
	}, filter.Helo)
	addr := stageServer(t, nil, badHelo)
	conn, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	step := func(cmd string, want int) error {
		t.Helper()
		if cmd != "" {
			if err := conn.PrintfLine("%s", cmd); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := conn.ReadResponse(want)
		return err
	}
	for _, st := range []struct {
		cmd  string
		code int
	}{{"", 220}, {"EHLO good.example", 250}, {"MAIL FROM:<a@example.org>", 250}, {"RSET", 250}, {"EHLO bad.example", 250}} {
		if err := step(st.cmd, st.code); err != nil {
			t.Fatalf("%s: %v", st.cmd, err)
		}
	}
	if err := step("MAIL FROM:<a@example.org>", 250); err == nil || !strings.Contains(err.Error(), "554") {
		t.Fatalf("MAIL after EHLO bad.example: %v, want 554", err)
	}
}

// After STARTTLS the transaction begins again, and knows it is encrypted.
func TestSTARTTLSBeginsAgain(t *testing.T) {
	var plain, encrypted atomic.Int32
	connect := filter.Func("conn", func(_ context.Context, m *filter.Message) (filter.Result, error) {
		if m.Envelope.TLS {
			encrypted.Add(1)
		} else {
			plain.Add(1)
		}
		return filter.Result{}, nil
	}, filter.Connect)
	addr := stageServer(t, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}, connect)
	c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("a@example.org", []string{"b@example.net"}, strings.NewReader("Subject: x\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	if plain.Load() != 1 || encrypted.Load() != 1 {
		t.Errorf("connect stage ran %d times in plain, %d with TLS; want 1 and 1", plain.Load(), encrypted.Load())
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Server.Close while a DATA is being judged: Logout (called from another
// goroutine) waits for the command, which ends promptly because the
// session's context is cancelled; nothing is stored.
func TestCloseDuringData(t *testing.T) {
	entered := make(chan struct{})
	var once sync.Once
	slow := filter.Func("slow", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		once.Do(func() { close(entered) })
		<-ctx.Done()
		// Still reading the message after the cancel: the spool must not
		// be closed under it.
		_, err := io.ReadAll(m.Reader())
		return filter.Result{}, errors.Join(ctx.Err(), err)
	})
	store := &memStore{}
	r, err := router.New(router.Config{Queue: store, Quarantine: store})
	if err != nil {
		t.Fatal(err)
	}
	be, err := smtpd.NewBackend(smtpd.Config{Pipeline: filter.NewPipeline(filter.Options{}, slow), Router: r})
	if err != nil {
		t.Fatal(err)
	}
	srv := smtpd.NewServer(be, smtpd.ServerConfig{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	sent := make(chan error, 1)
	go func() {
		c, err := smtp.Dial(l.Addr().String())
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		sent <- c.SendMail("a@example.org", []string{"b@example.net"}, strings.NewReader("Subject: x\r\n\r\nhi\r\n"))
	}()
	<-entered
	srv.Close()
	if err := <-sent; err == nil {
		t.Fatal("a message judged while the server closed was acknowledged")
	}
	if store.n != 0 || be.Sessions() != 0 {
		t.Errorf("stored %d, %d sessions open", store.n, be.Sessions())
	}
}
