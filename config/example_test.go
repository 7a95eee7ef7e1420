package config_test

import (
	"context"
	"fmt"

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
