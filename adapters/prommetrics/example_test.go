package prommetrics_test

import (
	"context"
	"fmt"

	"github.com/portcullis-mail/portcullis/adapters/prommetrics"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func Example() {
	reg := prometheus.NewRegistry()
	metrics := prommetrics.New(reg, nil)
	p := filter.NewPipeline(filter.Options{Policy: filter.DefaultPolicy(), Metrics: metrics},
		filter.Func("broken", func(context.Context, *filter.Message) (filter.Result, error) {
			return filter.Result{}, fmt.Errorf("engine down")
		}))
	v := p.Check(context.Background(), filter.Data, filter.NewMessageBytes(filter.Envelope{}, []byte("Subject: x\r\n\r\n"), filter.Limits{}))
	fmt.Println(v.Action, v.Reply.Code)
	n, _ := testutil.GatherAndCount(reg, "portcullis_filter_failures_total", "portcullis_verdicts_total")
	fmt.Println(n, "series")
	// Output:
	// tempfail 451
	// 2 series
}
