package router_test

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/quarantine"
	"github.com/portcullis-mail/portcullis/queue"
	"github.com/portcullis-mail/portcullis/router"
)

// memQueue and memHold stand in for *queue.Queue and *quarantine.Manager.
type memQueue struct{ bodies []string }

func (q *memQueue) Enqueue(_ context.Context, _ filter.Envelope, body io.Reader) (queue.ID, error) {
	b, err := io.ReadAll(body)
	q.bodies = append(q.bodies, string(b))
	return queue.ID(fmt.Sprint("q", len(q.bodies))), err
}

type memHold struct{ n int }

func (h *memHold) Hold(context.Context, *filter.Message, filter.Verdict) (quarantine.ID, error) {
	h.n++
	return quarantine.ID(fmt.Sprint("h", h.n)), nil
}

func Example() {
	// A filter that finds "viagra" and demands quarantine.
	pills := filter.Func("pills", func(_ context.Context, m *filter.Message) (filter.Result, error) {
		var r filter.Result
		b, _ := io.ReadAll(m.Reader())
		if strings.Contains(string(b), "viagra") {
			r.Add("PILLS", 1, "")
			r.Demand(filter.Quarantine)
		}
		return r, nil
	})
	p := filter.NewPipeline(filter.Options{}, pills)
	q, h := &memQueue{}, &memHold{}
	r, err := router.New(router.Config{Queue: q, Quarantine: h})
	if err != nil {
		panic(err)
	}

	for _, body := range []string{"Hello", "Cheap viagra"} {
		tx := p.Begin(filter.Envelope{})
		tx.Mail(context.Background(), "a@example.org")
		tx.Rcpt(context.Background(), "b@example.net")
		raw := "X-Spam-Status: No (forged)\r\nSubject: hi\r\n\r\n" + body + "\r\n"
		if _, err := tx.Data(context.Background(), strings.NewReader(raw)); err != nil {
			panic(err)
		}
		reply := r.Route(context.Background(), tx)
		tx.Close()
		fmt.Println(reply.Code, reply.Text)
	}
	fmt.Printf("queued %d, held %d, forged header kept: %v\n", len(q.bodies), h.n, strings.Contains(q.bodies[0], "forged"))
	// Output:
	// 250 OK: queued as q1
	// 250 Message held for inspection
	// queued 1, held 1, forged header kept: false
}
