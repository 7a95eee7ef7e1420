package config

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/portcullis-mail/portcullis/rbl"
)

func TestWithLists(t *testing.T) {
	ctx := context.Background()
	f, err := BuildFilters(ctx, withoutSA(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := f.Names()
	if f.Lists != nil || slices.Contains(before, rbl.ConnectFilterName) {
		t.Fatalf("the default has DNS lists: %v", before)
	}
	cfg := Default()
	cfg.DNS.Resolvers = []string{"127.0.0.1:1"}
	cfg.DNS.DNSBL = []string{"bl.test=20"}
	n, err := f.WithLists(ctx, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Lists == nil || n.Rules != f.Rules || n.Inspector != f.Inspector || !slices.Contains(n.Names(), rbl.ConnectFilterName) {
		t.Errorf("with lists: %v, rules shared %v", n.Names(), n.Rules == f.Rules)
	}
	if !slices.Equal(f.Names(), before) {
		t.Errorf("the old pipeline changed: %v", f.Names())
	}
	if got := n.Names()[:len(before)]; !slices.Equal(got, before) {
		t.Errorf("the other filters moved: %v, want %v first", n.Names(), before)
	}
	// Back to none: the lists' filters go, the others stay.
	none, err := n.WithLists(ctx, Default(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if none.Lists != nil || !slices.Equal(none.Names(), before) {
		t.Errorf("without lists again: %v", none.Names())
	}
	if err := n.CloseLists(); err != nil {
		t.Fatal(err)
	}
	if err := n.CloseLists(); err != nil {
		t.Errorf("CloseLists twice: %v", err)
	}
	// Invalid: lists without a resolver; an unparsable list.
	bad := Default()
	bad.DNS.DNSBL = []string{"bl.test=20"}
	if _, err := f.WithLists(ctx, bad, Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("lists without a resolver: %v, want ErrInvalid", err)
	}
	bad.DNS.Resolvers = []string{"127.0.0.1:1"}
	bad.DNS.DNSBL = []string{"bl.test=notascore=20"}
	if _, err := f.WithLists(ctx, bad, Options{}); err == nil {
		t.Error("an unparsable list: no error")
	}
}
