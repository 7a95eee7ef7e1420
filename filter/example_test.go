package filter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
)

func ExamplePipeline() {
	// A filter that scores a word in the subject.
	subject := filter.Func("subject", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		if strings.Contains(strings.ToLower(m.Header().Get("Subject")), "lottery") {
			r.Add("SUBJECT_LOTTERY", 6, "lottery in Subject")
		}
		return r, nil
	})
	// A filter for the connect stage.
	localnet := filter.Func("localnet", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		if m.Envelope.ClientIP.IsLoopback() {
			r.Add("CLIENT_LOOPBACK", -1, m.Envelope.ClientIP.String())
		}
		return r, nil
	}, filter.Connect)

	p := filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy()}, subject, localnet)
	env := filter.Envelope{ClientIP: netip.MustParseAddr("127.0.0.1"), MailFrom: "a@example.com", RcptTo: []string{"b@example.org"}}
	msg := filter.NewMessageBytes(env, []byte("Subject: You won the LOTTERY\r\n\r\nClaim now.\r\n"), filter.Limits{})

	v := p.CheckAll(context.Background(), msg)
	fmt.Println(v.Action, v.Score, v.Reply)
	for _, s := range v.Symbols {
		fmt.Println(s)
	}
	fmt.Println(v.Header(filter.HeaderSpamStatus))
	// Output:
	// add-header 5 250 2.0.0 OK
	// CLIENT_LOOPBACK(-1.00) "127.0.0.1"
	// SUBJECT_LOTTERY(6.00) "lottery in Subject"
	// Yes, score=5.00 required=5.00 reject=15.00 tests=CLIENT_LOOPBACK,SUBJECT_LOTTERY
}

// A front-end drives one Transaction per SMTP transaction: each call runs
// only its stage's filters, and the DATA verdict weighs every stage. Answer
// each stage's v.Reply when it is not 250: a stage may end it early.
func ExampleTransaction() {
	dnsbl := filter.Func("dnsbl", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		if m.Envelope.ClientIP.String() == "192.0.2.1" {
			r.Add("RBL_EXAMPLE", 4, "192.0.2.1 listed")
		}
		return r, nil
	}, filter.Connect)
	lottery := filter.Func("subject", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		if strings.Contains(m.Header().Get("Subject"), "lottery") {
			r.Add("SUBJECT_LOTTERY", 4, "")
		}
		return r, nil
	})

	p := filter.NewPipeline(filter.Options{}, dnsbl, lottery) // zero Options: default policy and limits
	tx := p.Begin(filter.Envelope{ClientIP: netip.MustParseAddr("192.0.2.1"), TLS: true})
	defer tx.Close() // removes the spooled message
	ctx := context.Background()
	fmt.Println(tx.Connect(ctx).Reply)
	tx.Helo(ctx, "mx.example.com")
	tx.Mail(ctx, "a@example.com")
	tx.Rcpt(ctx, "b@example.org")
	v, err := tx.Data(ctx, strings.NewReader("Subject: You won the lottery\r\n\r\nClaim now.\r\n"))
	if err != nil {
		fmt.Println(filter.ErrorReply(err)) // e.g. 552 5.3.4 when too big
		return
	}
	fmt.Println(v.Action, v.Score, v.Reply)
	for _, h := range v.Headers {
		fmt.Printf("%s: %s\n", h.Name, h.Value)
	}
	// Output:
	// 250 2.0.0 OK
	// add-header 8 250 2.0.0 OK
	// X-Spam-Status: Yes, score=8.00 required=5.00 reject=15.00 tests=RBL_EXAMPLE,SUBJECT_LOTTERY
	// X-Portcullis-Verdict: add-header; score=8.00
}

func ExampleWithHeaders() {
	raw := "X-Spam-Status: No, score=-100\r\n tests=FORGED\r\nSubject: hi\r\n\r\nbody\r\n"
	v := filter.NewPipeline(filter.Options{}).Check(context.Background(), filter.Data, filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{}))
	out, _ := io.ReadAll(filter.WithHeaders(strings.NewReader(raw), v.Headers, filter.OwnHeaders()))
	fmt.Print(strings.ReplaceAll(string(out), "\r\n", "\n"))
	// Output:
	// X-Spam-Status: No, score=0.00 required=5.00 reject=15.00 tests=
	// X-Portcullis-Verdict: accept; score=0.00
	// Subject: hi
	//
	// body
}

func ExampleErrorReply() {
	fmt.Println(filter.ErrorReply(&filter.LimitError{Limit: filter.LimitMessageBytes, Max: 10 << 20}))
	fmt.Println(filter.ErrorReply(fmt.Errorf("clamd: %w", context.DeadlineExceeded)))
	fmt.Println(filter.ErrorReply(errors.New("open /var/spool/x: no space left on device")))
	// Output:
	// 552 5.3.4 Message too big
	// 451 4.4.2 Timed out, please try again later
	// 451 4.3.0 Temporary local problem, please try again later
}

func ExampleMessage_Walk() {
	raw := "Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" +
		"--b\r\nContent-Type: application/pdf; name=\"=?utf-8?q?r=C3=A9sum=C3=A9.pdf?=\"\r\n" +
		"Content-Disposition: inline; filename*=utf-8''r%C3%A9sum%C3%A9.pdf.exe\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b--\r\n"
	m := filter.NewMessageBytes(filter.Envelope{}, []byte(raw), filter.Limits{})
	_ = m.Walk(func(p *filter.Part) error {
		size, _ := p.DecodedSize()
		fmt.Printf("%q %s attachment=%v names=%q size=%d\n", p.Path, p.ContentType, p.IsAttachment(), p.Names, size)
		return nil
	})
	// Output:
	// "" multipart/mixed attachment=false names=[] size=259
	// "1" text/plain attachment=false names=[] size=13
	// "2" application/pdf attachment=true names=["résumé.pdf.exe" "résumé.pdf"] size=12
}

func ExampleLimitError() {
	deep := strings.Repeat("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n", 100)
	m := filter.NewMessageBytes(filter.Envelope{}, []byte(deep), filter.Limits{MaxDepth: 10})
	_, err := m.Parts()
	var le *filter.LimitError
	if errors.As(err, &le) {
		fmt.Println(le.Symbol(), le)
	}
	// Output:
	// MIME_LIMIT_DEPTH filter: depth limit of 10 exceeded in part 1.1.1.1.1.1.1.1.1.1.1
}

// Two filters that need the same derived data from a message build it
// once with Shared.
func ExampleMessage_Shared() {
	m := filter.NewMessageBytes(filter.Envelope{}, []byte("Subject: hi\r\n\r\nhello world\r\n"), filter.Limits{})
	type wordsKey struct{}
	words := func() []string {
		v := m.Shared(wordsKey{}, func() any {
			fmt.Println("building")
			parts, _ := m.Parts()
			text, _ := parts[0].Text()
			return strings.Fields(text)
		})
		return v.([]string)
	}
	fmt.Println(words(), words())
	// Output:
	// building
	// [hello world] [hello world]
}
