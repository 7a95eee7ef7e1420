package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/internal/testsvc/natstest"
)

func TestPublish(t *testing.T) {
	n := natstest.Start(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "spam.eml"), []byte("Subject: win\r\n\r\nyou have won a prize\r\n"), 0o644)
	write := func(name, score string) string {
		f := filepath.Join(dir, name)
		os.WriteFile(f, []byte("thresholds: {add-header: 5}\nrules:\n  - {name: WON, kind: body, regex: '(?i)you have won', score: "+score+"}\ncorpus:\n  - {file: spam.eml, expect: add-header}\n"), 0o644)
		return f
	}
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()

	var out, errb bytes.Buffer
	// A set that fails the gate is not published.
	if code := run([]string{"publish", "-nats", n.URL, write("bad.yaml", "2")}, &out, &errb); code != 1 {
		t.Fatalf("bad set: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "not published") {
		t.Fatalf("stderr: %s", errb.String())
	}
	if _, err := fleet.Current(ctx, js, fleet.Bucket{}); !errors.Is(err, fleet.ErrNoSet) {
		t.Fatalf("after a refused publish: %v", err)
	}
	out.Reset()
	if code := run([]string{"publish", "-nats", n.URL, write("good.yaml", "6")}, &out, &errb); code != 0 {
		t.Fatalf("good set: exit %d\n%s%s", code, out.String(), errb.String())
	}
	cur, err := fleet.Current(ctx, js, fleet.Bucket{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "published version 1 "+cur.Digest) || len(cur.Files) != 2 {
		t.Fatalf("output %q, set %+v", out.String(), cur)
	}
	if code := run([]string{"publish", write("x.yaml", "6")}, &out, &errb); code != 2 {
		t.Fatalf("publish without -nats: exit %d", code)
	}
}

func TestPublishZone(t *testing.T) {
	n := natstest.Start(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.zone")
	os.WriteFile(good, []byte(":127.0.0.2:listed\n192.0.2.0/24\n!192.0.2.1\n"), 0o644)
	bad := filepath.Join(dir, "bad.zone")
	os.WriteFile(bad, []byte("192.0.2.1\n192.0.2.300\n"), 0o644)
	nc, err := nats.Connect(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()

	var out, errb bytes.Buffer
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-nats", n.URL, "-zone", "bl.test", bad}, 1, `line 2 "192.0.2.300"`},
		{[]string{"-nats", n.URL, "-zone", "bl.test", "-max-bytes", "10", good}, 1, "more than -max-bytes 10"},
		{[]string{"-nats", n.URL, "-zone", "bl.test", "-max-entries", "1", good}, 1, "more than 1 entries"},
		{[]string{"-nats", n.URL, "-zone", "Bad..Name", good}, 2, "invalid zone name"},
		{[]string{"-nats", n.URL, good}, 2, "usage"},
	} {
		errb.Reset()
		if code := run(append([]string{"publish-zone"}, tc.args...), &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), tc.code, tc.msg)
		}
	}
	if _, err := fleet.CurrentZone(ctx, js, fleet.Bucket{}, "bl.test"); !errors.Is(err, fleet.ErrNoZone) {
		t.Fatalf("after refused publications: %v", err)
	}
	out.Reset()
	if code := run([]string{"publish-zone", "-nats", n.URL, "-zone", "bl.test", good}, &out, &errb); code != 0 {
		t.Fatalf("good zone: exit %d\n%s", code, errb.String())
	}
	cur, err := fleet.CurrentZone(ctx, js, fleet.Bucket{}, "bl.test")
	if err != nil {
		t.Fatal(err)
	}
	if want := "published zone bl.test version 1 " + cur.Digest + " (2 entries, 42 bytes)"; !strings.Contains(out.String(), want) || cur.Entries != 2 {
		t.Fatalf("output %q, manifest %+v; want %q", out.String(), cur, want)
	}
}
