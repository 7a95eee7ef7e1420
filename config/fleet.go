package config

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/archive"
	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/fleet/zone"
	"github.com/portcullis-mail/portcullis/rules"
)

// ConnectFleet connects to fleet.url, retrying and reconnecting for ever:
// a node starts while NATS is down (not ready until it has its rules),
// and outlives NATS outages serving what it has.
func ConnectFleet(cfg *Config, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(cfg.Fleet.URL, nats.Name(name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, nil, fmt.Errorf("config: fleet: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("config: fleet: %w", err)
	}
	return nc, js, nil
}

// buildFleetRules connects to the fleet and starts watching its rule set
// in the background; the filter is not ready until the current version
// is installed.
func buildFleetRules(cfg *Config, log *slog.Logger, m filter.Metrics) (*fleet.Rules, func() error, error) {
	nc, js, err := ConnectFleet(cfg, "portcullis rules")
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(cfg.DataDir, "fleet-rules")
	if cfg.DataDir == "" {
		if dir, err = os.MkdirTemp("", "portcullis-fleet-rules-"); err != nil {
			nc.Close()
			return nil, nil, fmt.Errorf("config: fleet: %w", err)
		}
	}
	r := fleet.NewRules(fleet.RulesConfig{
		JetStream: js,
		Bucket:    fleet.Bucket{Name: cfg.Rules.Bucket, Replicas: cfg.Fleet.Replicas},
		Dir:       dir,
		Engine:    rules.Config{DetectType: archive.DetectType, Logger: log, Metrics: m},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("fleet: rules watch failed, retrying", "err", err)
				select {
				case <-ctx.Done():
				case <-timeAfter(2):
				}
			}
		}
	}()
	return r, func() error {
		cancel()
		<-done
		nc.Close()
		return nil
	}, nil
}

// buildFleetZones connects to the fleet and starts watching the zones
// dns.zones names in the background; each serves once its current
// version is loaded.
func buildFleetZones(cfg *Config, log *slog.Logger, m filter.Metrics) (*fleet.Zones, func() error, error) {
	nc, js, err := ConnectFleet(cfg, "portcullis zones")
	if err != nil {
		return nil, nil, err
	}
	z := cfg.DNS.Zones
	zs := fleet.NewZones(fleet.ZonesConfig{
		JetStream: js,
		Bucket:    fleet.Bucket{Name: z.Bucket, Replicas: cfg.Fleet.Replicas},
		MaxBytes:  z.MaxBytes,
		Limits:    zone.Limits{MaxEntries: z.MaxEntries},
		Logger:    log,
		Metrics:   m,
	})
	for _, name := range z.Lists {
		if _, err := zs.Zone(name); err != nil {
			nc.Close()
			return nil, nil, fmt.Errorf("config: dns: zones: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := zs.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("fleet: zones watch failed, retrying", "err", err)
				select {
				case <-ctx.Done():
				case <-timeAfter(2):
				}
			}
		}
	}()
	return zs, func() error {
		cancel()
		<-done
		nc.Close()
		return nil
	}, nil
}

// waitZones waits, for one-shot use, until the zones are loaded or ctx
// ends; lookups fall back to DNS for a zone still missing.
func waitZones(ctx context.Context, zs *fleet.Zones) {
	for zs.Ready() != nil {
		select {
		case <-zs.Changed():
		case <-ctx.Done():
			return
		}
	}
}

func timeAfter(sec int) <-chan time.Time { return time.After(time.Duration(sec) * time.Second) }
