package smtpd_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-smtp"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/router"
	"github.com/portcullis-mail/portcullis/smtpd"
)

// memStore stands in for *queue.Queue and *quarantine.Manager.
type memStore struct{ n int }

func (s *memStore) Enqueue(_ context.Context, _ filter.Envelope, body io.Reader) (queue.ID, error) {
	_, err := io.Copy(io.Discard, body)
	s.n++
	return queue.ID(fmt.Sprint("q", s.n)), err
}

func (s *memStore) Hold(context.Context, *filter.Message, filter.Verdict) (quarantine.ID, error) {
	return "h1", nil
}

func Example() {
	// A pipeline with one filter that refuses a word.
	words := filter.Func("words", func(_ context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		b, err := io.ReadAll(m.Reader())
		if strings.Contains(string(b), "lottery") {
			r.Demand(filter.Reject)
		}
		return r, err
	})
	store := &memStore{}
	r, _ := router.New(router.Config{Queue: store, Quarantine: store})
	be, _ := smtpd.NewBackend(smtpd.Config{Pipeline: filter.NewPipeline(filter.Options{}, words), Router: r})
	srv := smtpd.NewServer(be, smtpd.ServerConfig{Domain: "gateway.example"})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)
	defer srv.Close()

	for _, body := range []string{"Hello", "You won the lottery"} {
		c, _ := smtp.Dial(l.Addr().String())
		err := c.SendMail("a@example.org", []string{"b@example.net"}, strings.NewReader("Subject: hi\r\n\r\n"+body+"\r\n"))
		fmt.Println(body+":", err)
		c.Close()
	}
	// Output:
	// Hello: <nil>
	// You won the lottery: SMTP error 550: Message refused by policy
}
