package config

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"regexp"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/scanner"
)

// AVFleet is what the AV scanner shares with the fleet at fleet.url
// (package fleet). Both need the engines' signature versions (clamd's
// official databases, ICAP's ISTag); an engine without one is scanned and
// judged locally.
type AVFleet struct {
	// Cache shares scan results in the KV bucket portcullis-av-cache, so
	// a message fanned out to many nodes is scanned once. It is an
	// optimisation, never a reason to fail or pass mail: with NATS down
	// the engines scan, and the outage shows in
	// portcullis_scanner_shared_cache_up and the log.
	Cache bool `yaml:"cache,omitempty"`
	// CacheTTL is how long a shared result lives; 0 means 1h.
	CacheTTL Duration `yaml:"cache_ttl,omitempty"`
	// CacheMaxBytes bounds the bucket (oldest entries go first); 0 means 64 MiB.
	CacheMaxBytes int64 `yaml:"cache_max_bytes,omitempty"`
	// CacheTimeout bounds one lookup or store; 0 means 250ms. After a
	// failure the shared cache is left alone for 10s.
	CacheTimeout Duration `yaml:"cache_timeout,omitempty"`
	// Guard shares the faulty-update guard's counts per engine and
	// signature version in the KV bucket portcullis-av-rates: a version
	// that floods one node with detections is doubted (quarantine, not
	// reject) on every node.
	Guard bool `yaml:"guard,omitempty"`
	// GuardInterval is how often a node publishes its counts; 0 means 1s.
	GuardInterval Duration `yaml:"guard_interval,omitempty"`
}

// NodeID is this node's id in the fleet: fleet.node, or the host name
// and the SMTP port with anything but letters, digits, - and _ made _.
func NodeID(cfg *Config) string {
	if cfg.Fleet.Node != "" {
		return cfg.Fleet.Node
	}
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(cfg.SMTP.Listen)
	return regexp.MustCompile(`[^A-Za-z0-9_-]`).ReplaceAllString(host+"-"+port, "_")
}

// buildAVFleet connects the scanner's options to the fleet when
// av.fleet asks for it: the shared cache, and the guard's counts
// published and watched in the background until the Filters close.
func buildAVFleet(cfg *Config, opts *scanner.Options, f *Filters, log *slog.Logger, m filter.Metrics) error {
	af := cfg.AV.Fleet
	if !af.Cache && !af.Guard {
		return nil
	}
	nc, js, err := ConnectFleet(cfg, "portcullis av "+NodeID(cfg))
	if err != nil {
		return err
	}
	closeNC := func() error { nc.Close(); return nil }
	bucket := fleet.Bucket{Replicas: cfg.Fleet.Replicas}
	if af.Cache {
		c, err := fleet.NewAVCache(fleet.AVCacheConfig{JetStream: js, Bucket: bucket, TTL: time.Duration(af.CacheTTL), MaxBytes: af.CacheMaxBytes})
		if err != nil {
			nc.Close()
			return err
		}
		opts.SharedCache, opts.SharedTimeout = c, time.Duration(af.CacheTimeout)
		bctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		bound := make(chan struct{})
		go func() {
			defer close(bound)
			if err := c.Bind(bctx); err != nil && bctx.Err() == nil {
				log.Warn("fleet: AV cache bucket not bound yet; scans bind it", "err", err)
			}
		}()
		prev := closeNC
		closeNC = func() error { cancel(); <-bound; return prev() }
	}
	if !af.Guard {
		f.closers = append(f.closers, closeNC)
		return nil
	}
	g, err := fleet.NewAVGuard(fleet.AVGuardConfig{JetStream: js, Bucket: bucket, Node: NodeID(cfg),
		Interval: time.Duration(af.GuardInterval), Logger: log, Metrics: m})
	if err != nil {
		nc.Close()
		return err
	}
	opts.FleetRates = g
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("fleet: AV guard stopped", "err", err)
		}
	}()
	f.closers = append(f.closers, func() error {
		cancel()
		<-done
		return closeNC()
	})
	return nil
}
