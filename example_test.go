package portcullis_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/rules"
)

// Build a pipeline of the archive inspector and the default rule set, and
// check a message with it: an executable named like a PDF, zipped, in a
// phishing mail.
func Example() {
	inspector := archive.New(archive.Config{})
	scorer := rules.Default()
	p := filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy()}, inspector, scorer)

	f, err := os.Open("testdata/sample.eml")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	env := filter.Envelope{
		ClientIP: netip.MustParseAddr("192.0.2.25"),
		Helo:     "mail.example-bank.test",
		MailFrom: "billing@example-bank.test",
		RcptTo:   []string{"bob@example.org"},
	}
	msg := filter.NewMessage(env, f, st.Size(), filter.Limits{}) // read at offsets, never whole

	v := p.CheckAll(context.Background(), msg)
	fmt.Println(v.Action, v.Reply)
	fmt.Println(v.Has("ARCHIVE_BANNED_TYPE"))
	// Output:
	// reject 550 5.7.1 Message refused by policy
	// true
}
