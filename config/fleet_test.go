package config

import (
	"errors"
	"strings"
	"testing"
)

func TestRulesSource(t *testing.T) {
	for _, tc := range []struct{ yaml, err string }{
		{"rules: {source: nats}\n", "rules: source nats needs fleet.url"},
		{"rules: {source: git}\n", `rules: source "git": want files or nats`},
		{"rules: {source: nats}\nfleet: {url: \"nats://127.0.0.1:4222\", node: gw-1, status_interval: 2s}\n", ""},
	} {
		c, err := Parse("t.yaml", []byte(tc.yaml))
		if err == nil {
			err = c.Check()
		}
		if tc.err == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.yaml, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.err)
		}
	}
}
