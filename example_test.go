package portcullis_test

import (
	"context"
	"fmt"
	"os"

	"github.com/portcullis-mail/portcullis/filter"
)

// Build a pipeline and check a message with it.
func Example() {
	raw, err := os.ReadFile("testdata/clean.eml")
	if err != nil {
		panic(err)
	}
	bodyCheck := filter.Func("greeting", func(ctx context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		parts, err := m.Parts()
		for _, p := range parts {
			if txt, _ := p.Text(); p.IsText() && len(txt) > 0 {
				r.Add("HAS_TEXT", 0.1, "part "+p.ContentType)
			}
		}
		return r, err
	})
	p := filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy()}, bodyCheck)
	msg := filter.NewMessageBytes(filter.Envelope{MailFrom: "alice@example.org", RcptTo: []string{"bob@example.org"}}, raw, filter.Limits{})
	v := p.CheckAll(context.Background(), msg)
	fmt.Println(v.Action, v.Reply.Code, v.Symbols)
	// Output:
	// accept 250 [HAS_TEXT(0.10) "part text/plain"]
}
