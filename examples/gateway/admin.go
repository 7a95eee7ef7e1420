package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/portcullis-mail/portcullis/admin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler mounts package admin: health, readiness (every filter
// ready), metrics and the quarantine API and console. The bearer token
// is admin.token_file, or data_dir/admin.token generated (mode 0600) on
// first start; it returns the token file's path for the start-up line.
func adminHandler(g *running, reg *prometheus.Registry) (http.Handler, string, error) {
	cfg := admin.Config{
		Quarantine:     g.sys.Quarantine,
		Pipeline:       g.pipeline,
		Ready:          func(context.Context) error { return g.ready() },
		MetricsHandler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Users:          g.cfg.Admin.AdminUsers(),
		SecureCookies:  g.cfg.Admin.SecureCookies,
		Limits:         g.cfg.Limits.FilterLimits(),
		Logger:         g.log,
		Metrics:        g.metrics,
	}
	if q, ok := g.sys.Queue.(admin.Queue); ok { // the local queue or the shared JetStream one
		cfg.Queue = q
	}
	if g.cfg.Fleet.URL != "" {
		cfg.Fleet = g.fleetView
	}
	path := g.cfg.Admin.TokenFile
	if path == "" {
		_, p, created, err := admin.EnsureToken(g.cfg.DataDir)
		if err != nil {
			return nil, "", fmt.Errorf("admin: %w", err)
		}
		if created {
			g.log.Info("admin token generated", "path", p)
		}
		path = p
	}
	cfg.TokenFile = path
	h, err := admin.New(cfg)
	if err != nil {
		return nil, "", err
	}
	g.adminH = h
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	return h, abs, nil
}

func (g *running) closeAdmin() error {
	if g.adminH == nil {
		return nil
	}
	return g.adminH.Close()
}
