package milterd_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-milter"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/milterd"
)

// A milter in front of a pipeline; go-milter's client plays Postfix.
func Example() {
	banned := filter.Func("banned", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		if strings.Contains(m.Header().Get("Subject"), "lottery") {
			r.Demand(filter.Reject)
		}
		return r, nil
	})
	srv, err := milterd.New(milterd.Config{Pipeline: filter.NewPipeline(filter.Options{}, banned)})
	if err != nil {
		panic(err)
	}
	ln, err := milterd.Listen("tcp:127.0.0.1:0") // Postfix: smtpd_milters = inet:127.0.0.1:PORT
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	mta := milter.NewClientWithOptions("tcp", ln.Addr().String(), milter.ClientOptions{
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		ActionMask: milter.OptAddHeader | milter.OptChangeHeader | milter.OptQuarantine,
	})
	s, err := mta.Session()
	if err != nil {
		panic(err)
	}
	defer s.Close()
	s.Conn("client.example", milter.FamilyInet, 25, "192.0.2.1")
	s.Helo("client.example")
	s.Mail("sender@example.org", nil)
	s.Rcpt("rcpt@example.net", nil)
	s.HeaderField("Subject", "You won the lottery")
	s.HeaderEnd()
	_, act, err := s.BodyReadFrom(strings.NewReader("Send your bank details.\r\n"))
	if err != nil {
		panic(err)
	}
	fmt.Println(act.SMTPCode, act.SMTPText)
	// Output: 550 5.7.1 Message refused by policy
}

func ExampleResponse() {
	m := milterd.Response(filter.Reply{Code: 552, Enhanced: "5.3.4", Text: "Message too big"}).Response()
	fmt.Printf("%c %q\n", m.Code, m.Data)
	m = milterd.Response(filter.Reply{Code: 250, Enhanced: "2.0.0", Text: "OK"}).Response()
	fmt.Printf("%c\n", m.Code)
	// Output:
	// y "552 5.3.4 Message too big\x00"
	// c
}
