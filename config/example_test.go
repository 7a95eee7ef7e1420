package config_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"

	"github.com/portcullis-mail/portcullis/config"
)

func ExampleParse() {
	cfg, err := config.Parse("gateway.yaml", []byte("smtp:\n  listen: 127.0.0.1:25\nqueue:\n  max_depth: 5000\n"))
	if err != nil {
		panic(err)
	}
	// What the file does not set keeps the embedded default.
	fmt.Println(cfg.SMTP.Listen, cfg.Queue.MaxDepth, cfg.Relay.Routes["*"].Hosts, cfg.Rules.Default)

	_, err = config.Parse("typo.yaml", []byte("smtp:\n  lisen: 127.0.0.1:25\n"))
	fmt.Println(err)
	// Output:
	// 127.0.0.1:25 5000 [127.0.0.1:2526] true
	// config: typo.yaml: yaml: unmarshal errors:
	//   line 2: field lisen not found in type config.SMTP
}

func ExampleBuildFilters() {
	f, err := config.BuildFilters(context.Background(), config.Default(), config.Options{})
	if err != nil {
		panic(err)
	}
	defer f.Close()
	fmt.Println(f.Names(), f.Pipeline.Ready())
	// Output: [archive rules] <nil>
}

func ExampleBuild() {
	cfg := config.Default()
	dir, err := os.MkdirTemp("", "portcullis-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	cfg.DataDir = dir
	sys, err := config.Build(context.Background(), cfg, config.Options{})
	if err != nil {
		panic(err)
	}
	defer sys.Close(context.Background())
	// Build loads the rules in the background (mail is tempfailed until
	// they are in); an example has no reason not to wait for them.
	if err := sys.Filters.WaitRules(context.Background()); err != nil {
		panic(err)
	}

	// The router is what a front-end hands each transaction to.
	ctx := context.Background()
	tx := sys.Filters.Pipeline.Begin(filter.Envelope{})
	defer tx.Close()
	tx.Mail(ctx, "a@example.org")
	tx.Rcpt(ctx, "b@example.net")
	tx.Data(ctx, strings.NewReader("From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"))
	reply := sys.Router.Route(ctx, tx)
	fmt.Println(reply.Code, strings.HasPrefix(reply.Text, "OK: queued as"), sys.Spool.Len())

	// A second process on the same data_dir is refused.
	_, err = config.Build(ctx, cfg, config.Options{})
	fmt.Println(err != nil)
	// Output:
	// 250 true 1
	// true
}
