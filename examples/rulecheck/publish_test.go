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
