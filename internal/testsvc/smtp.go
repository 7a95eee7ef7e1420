package testsvc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// SMTPMessage is one message an SMTPSink accepted.
type SMTPMessage struct {
	From string
	To   []string
	Data []byte
	TLS  bool // received over STARTTLS
}

// SMTPSinkConfig scripts an SMTPSink. Hooks run concurrently; a hook that
// returns an *smtp.SMTPError makes the sink answer with it.
type SMTPSinkConfig struct {
	LMTP bool
	TLS  bool // offer STARTTLS with a self-signed certificate
	// OnHello refuses a session at EHLO (e.g. a blocklist reply).
	OnHello func() error
	// OnRcpt is asked for every RCPT TO.
	OnRcpt func(to string) error
	// OnData is asked when a message has been received.
	OnData func(m SMTPMessage) error
}

// SMTPSink is a go-smtp server on a loopback port that records messages.
type SMTPSink struct {
	Addr string
	cfg  SMTPSinkConfig

	mu         sync.Mutex
	msgs       []SMTPMessage
	sessions   int
	maxSession int
	srv        *smtp.Server
	l          net.Listener
	wake       chan struct{}
	t          testing.TB
}

// StartSMTPSink starts a sink; it stops when the test ends.
func StartSMTPSink(t testing.TB, cfg SMTPSinkConfig) *SMTPSink {
	t.Helper()
	s := &SMTPSink{cfg: cfg, wake: make(chan struct{}), t: t}
	s.Addr = "127.0.0.1:" + strconv.Itoa(FreePort(t))
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start (re)starts the sink on its address, e.g. after Stop to play a next
// hop that was down for a while.
func (s *SMTPSink) Start() {
	s.t.Helper()
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		if s.cfg.OnHello != nil {
			if err := s.cfg.OnHello(); err != nil {
				return nil, err
			}
		}
		s.mu.Lock()
		s.sessions++
		s.maxSession = max(s.maxSession, s.sessions)
		s.mu.Unlock()
		return &sinkSession{s: s, c: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.LMTP = s.cfg.LMTP
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.AllowInsecureAuth = true
	if s.cfg.TLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(s.t)}}
	}
	var l net.Listener
	var err error
	for range 100 { // the port may linger for a moment after Stop
		if l, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("smtp sink: %v", err)
	}
	s.mu.Lock()
	s.srv, s.l = srv, l
	s.mu.Unlock()
	go srv.Serve(l)
}

// Stop stops the sink; connections are refused until Start.
func (s *SMTPSink) Stop() {
	s.mu.Lock()
	srv, l := s.srv, s.l
	s.srv, s.l = nil, nil
	s.mu.Unlock()
	if l != nil {
		l.Close() // Serve may not have registered it yet
	}
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	}
}

// Messages returns what the sink accepted so far.
func (s *SMTPSink) Messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMTPMessage(nil), s.msgs...)
}

// MaxSessions returns the most sessions that were open at once.
func (s *SMTPSink) MaxSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxSession
}

// Wait waits until the sink holds at least n messages or timeout passes,
// and returns them.
func (s *SMTPSink) Wait(n int, timeout time.Duration) []SMTPMessage {
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := append([]SMTPMessage(nil), s.msgs...)
			s.mu.Unlock()
			return out
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-deadline:
			return s.Messages()
		}
	}
}

type sinkSession struct {
	s    *SMTPSink
	c    *smtp.Conn
	from string
	to   []string
}

func (ss *sinkSession) Reset() { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error {
	ss.s.mu.Lock()
	ss.s.sessions--
	ss.s.mu.Unlock()
	return nil
}
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.cfg.OnRcpt != nil {
		if err := ss.s.cfg.OnRcpt(to); err != nil {
			return err
		}
	}
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := ss.c.TLSConnectionState()
	m := SMTPMessage{From: ss.from, To: append([]string(nil), ss.to...), Data: data, TLS: isTLS}
	if ss.s.cfg.OnData != nil {
		if err := ss.s.cfg.OnData(m); err != nil {
			return err
		}
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, m)
	close(ss.s.wake)
	ss.s.wake = make(chan struct{})
	ss.s.mu.Unlock()
	return nil
}

// selfSigned makes a throwaway certificate for 127.0.0.1.
func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sink.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"sink.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
