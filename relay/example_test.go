package relay_test

import (
	"errors"
	"fmt"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/relay"
)

// Mail for one domain goes to its own next hop, with a fallback relay for
// when the primary's recipients blocklist this gateway. The relay is the
// queue's Deliverer.
func Example() {
	d, err := relay.New(relay.Config{
		LocalName: "gw.example.org",
		Routes: map[string]relay.Route{
			"att.example": {Hosts: []string{"mx.att.example:25"}, Fallback: []string{"relay2.example.org:25"}},
			"*":           {Hosts: []string{"smarthost.example.org:25"}},
		},
		MaxConnsPerHost: 10,
		RatePerHost:     50,
	})
	var _ queue.Deliverer = d
	fmt.Println(d != nil, err)
	// Output: true <nil>
}

// queue.Classify decides retry versus bounce; IsPolicyRefusal decides
// whether a route's fallback is worth trying.
func ExampleIsPolicyRefusal() {
	blocked := &relay.ReplyError{Host: "mx.att.example:25", Command: "RCPT",
		Reply: filter.Reply{Code: 550, Enhanced: "5.7.1", Text: "client host blocked using zen.spamhaus.org"}}
	full := &relay.ReplyError{Host: "mx.att.example:25", Command: "RCPT",
		Reply: filter.Reply{Code: 452, Enhanced: "4.2.2", Text: "mailbox full"}}
	fmt.Println(queue.Classify(blocked), relay.IsPolicyRefusal(blocked))
	fmt.Println(queue.Classify(full), relay.IsPolicyRefusal(full))
	fmt.Println(queue.Classify(errors.New("connection reset")))
	fmt.Println(blocked)
	// Output:
	// permanent true
	// temporary false
	// temporary
	// relay: mx.att.example:25 RCPT: 550 5.7.1 client host blocked using zen.spamhaus.org
}
