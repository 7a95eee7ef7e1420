package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/fleet"
)

// publish is "rulecheck publish -nats URL FILE...": the gate first, over
// the files' corpus and each -corpus manifest; only a set that passes is
// bundled (rule files and their corpus samples) and published to the
// fleet, whose nodes gate it again on the bundled corpus.
func publish(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rulecheck publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("nats", "", "NATS URL of the fleet (required)")
	bucket := fs.String("bucket", "", "KV bucket (default "+fleet.RulesBucket+")")
	replicas := fs.Int("replicas", 1, "replicas of the bucket when it is created")
	var corpora list
	fs.Var(&corpora, "corpus", "corpus manifest for the gate here (not published); repeatable")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rulecheck publish -nats URL [-bucket NAME] [-corpus manifest.yaml]... FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *url == "" || fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var gate []string
	for _, c := range corpora {
		gate = append(gate, "-corpus", c)
	}
	if code := run(append(gate, fs.Args()...), stdout, stderr); code != 0 {
		fmt.Fprintln(stderr, "rulecheck: not published: the set did not pass the gate")
		return code
	}
	rs, err := fleet.Bundle(fs.Args()...)
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		return 2
	}
	host, _ := os.Hostname()
	rs.Publisher = "rulecheck@" + host
	js, closeNATS, err := connectFleet(*url)
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: nats: %v\n", err)
		return 2
	}
	defer closeNATS()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := fleet.Publish(ctx, js, fleet.Bucket{Name: *bucket, Replicas: *replicas}, rs)
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "published version %d %s (%d files)\n", v, rs.Digest, len(rs.Files))
	return 0
}

// connectFleet connects to the fleet's NATS for one publication; close
// ends the connection.
func connectFleet(url string) (js jetstream.JetStream, close func(), err error) {
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
	if err != nil {
		return nil, nil, err
	}
	if js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}
