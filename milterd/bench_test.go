package milterd

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-milter"
)

// BenchmarkSession measures one message through a session (go-milter's
// client in the same process) in front of the Postfix tests' pipeline.
func BenchmarkSession(b *testing.B) {
	srv, err := New(Config{Pipeline: pipelineForPostfix(b), HeadersOnAccept: true})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := Listen("tcp:127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	client := milter.NewClientWithOptions("tcp", ln.Addr().String(), milter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		ActionMask: milter.OptAddHeader | milter.OptChangeHeader | milter.OptQuarantine,
	})
	raw := benchMessage()
	hdr, body, _ := strings.Cut(raw, "\r\n\r\n")
	lines := strings.Split(hdr, "\r\n")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s, err := client.Session()
		if err != nil {
			b.Fatal(err)
		}
		s.Conn("client.example", milter.FamilyInet, 25, "192.0.2.1")
		s.Helo("client.example")
		s.Mail("a@example.org", nil)
		s.Rcpt("b@example.net", nil)
		for _, l := range lines {
			k, v, _ := strings.Cut(l, ": ")
			s.HeaderField(k, v)
		}
		s.HeaderEnd()
		_, act, err := s.BodyReadFrom(strings.NewReader(body))
		if err != nil || act.Code != milter.ActAccept {
			b.Fatalf("%v %v", act, err)
		}
		s.Close()
	}
}
