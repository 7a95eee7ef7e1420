package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/fleet/zone"
)

// publishZone is "rulecheck publish-zone -nats URL -zone NAME FILE": the
// file is read as an rbldnsd ip4set zone first (the same parser and
// limits as the nodes'); only a zone that reads whole is published, to
// the fleet's object store with its manifest in KV (package fleet), where
// every gateway with dns.zones naming it loads it. Exit status: 0
// published, 1 the zone does not read or is over a limit, 2 usage, file
// or NATS errors.
func publishZone(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rulecheck publish-zone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("nats", "", "NATS URL of the fleet (required)")
	name := fs.String("zone", "", "the DNS zone the file holds, as dns.zones.lists names it (required)")
	bucket := fs.String("bucket", "", "KV bucket and object store (default "+fleet.ZonesBucket+")")
	replicas := fs.Int("replicas", 1, "replicas of the buckets when they are created")
	maxBytes := fs.Int64("max-bytes", fleet.DefaultMaxZoneBytes, "refuse a zone larger than this")
	maxEntries := fs.Int("max-entries", 0, "refuse a zone with more blocks than this (0: 10,000,000)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rulecheck publish-zone -nats URL -zone NAME [-bucket NAME] [-replicas N] [-max-bytes N] [-max-entries N] FILE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *url == "" || *name == "" || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	if err := fleet.CheckZoneName(*name); err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		return 2
	}
	file := fs.Arg(0)
	st, err := os.Stat(file)
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		return 2
	}
	if st.Size() > *maxBytes {
		fmt.Fprintf(stderr, "rulecheck: zone %s: %d bytes, more than -max-bytes %d: not published\n", file, st.Size(), *maxBytes)
		return 1
	}
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		return 2
	}
	defer f.Close()
	set, err := zone.Read(f, zone.Limits{MaxEntries: *maxEntries})
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: zone %s: %v: not published\n", file, err)
		return 1
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		return 2
	}
	host, _ := os.Hostname()
	js, closeNATS, err := connectFleet(*url)
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: nats: %v\n", err)
		return 2
	}
	defer closeNATS()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	zi, err := fleet.PublishZone(ctx, js, fleet.Bucket{Name: *bucket, Replicas: *replicas}, fleet.ZonePublication{
		Zone: *name, Data: f, MaxBytes: *maxBytes, Entries: set.Len(), Publisher: "rulecheck@" + host})
	if err != nil {
		fmt.Fprintf(stderr, "rulecheck: %v\n", err)
		if errors.Is(err, fleet.ErrZoneTooLarge) {
			return 1 // the file grew since it was read
		}
		return 2
	}
	fmt.Fprintf(stdout, "published zone %s version %d %s (%d entries, %d bytes)\n", zi.Zone, zi.Version, zi.Digest, set.Len(), zi.Size)
	return 0
}
