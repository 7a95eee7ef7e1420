package main

import (
	"flag"
	"log/slog"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/internal/config"
)

// extraFlags are the flags that configure one package each. Adding a
// package is one field here, one line in register and a few in apply.
type extraFlags struct{}

func (e *extraFlags) register(fs *flag.FlagSet) {}

// apply writes the flags into the configuration, over the file.
func (e *extraFlags) apply(cfg *config.Config) error { return nil }

// build makes the filters the configuration asks for, and a function that
// releases what they hold.
func build(cfg *config.Config, log *slog.Logger) ([]filter.Filter, func(), error) {
	var filters []filter.Filter
	closers := []func(){}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	return filters, closeAll, nil
}
