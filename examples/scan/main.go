// Command scan runs the whole Portcullis pipeline over messages and
// prints the verdicts.
//
//	go run ./examples/scan [-format text|json|jsonl] [-client-ip IP] [-helo NAME]
//	    [-from ADDR] [-rcpt ADDR]... [-config FILE] FILE.eml|DIR|MBOX|-...
//
// Many messages (several arguments, a directory, an mbox) go through one
// pipeline, the rules compiled once: -format jsonl prints one JSON object
// per message with its "file", and a summary (verdicts per action, score
// distribution, time per message) goes to standard error (batch.go).
//
// Without -config it uses the embedded default configuration, which needs
// no network. The exit status is 0 whenever a verdict was produced,
// whatever it is, and 2 for usage or I/O errors.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// options are the command line; flags that configure a package write into
// the configuration so that a flag and a config key mean the same thing.
type options struct {
	format   string
	clientIP string
	helo     string
	from     string
	rcpt     stringList
	config   string
	verbose  bool
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// usageError is a bad command line: exit 2 with a one-line message.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if err := scan(args, stdin, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "scan:", err)
		return 2
	}
	return 0
}

func scan(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.format, "format", "text", "output format: text, json or jsonl (one line per message)")
	fs.StringVar(&o.clientIP, "client-ip", "", "the connecting client's IP address")
	fs.StringVar(&o.helo, "helo", "", "the HELO/EHLO name")
	fs.StringVar(&o.from, "from", "", "the envelope sender (MAIL FROM)")
	fs.Var(&o.rcpt, "rcpt", "an envelope recipient (RCPT TO); repeatable")
	fs.StringVar(&o.config, "config", "", "configuration file (YAML); default: the embedded configuration")
	fs.BoolVar(&o.verbose, "v", false, "log to standard error")
	var ext extraFlags
	ext.register(fs)
	// The flag package would print a bad flag's error and the usage, and
	// run the error again: parse quietly, say it once.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			usage(fs)
			return err
		}
		return usageError{err.Error() + " (scan -h lists the flags)"}
	}
	if fs.NArg() == 0 {
		return usageError{"want a message file, directory or mbox (or - for standard input)"}
	}
	if o.format != "text" && o.format != "json" && o.format != "jsonl" {
		return usageError{fmt.Sprintf("unknown -format %q (text, json or jsonl)", o.format)}
	}
	if fs.NArg() > 1 && slices.Contains(fs.Args(), "-") {
		return usageError{"- (standard input) cannot be scanned with other messages"}
	}

	cfg := config.Default()
	if o.config != "" {
		c, err := config.Load(o.config)
		if err != nil {
			return err
		}
		cfg = c
	}
	if err := ext.apply(cfg); err != nil {
		return usageError{err.Error()}
	}

	env := filter.Envelope{Helo: o.helo, MailFrom: strings.Trim(o.from, "<>")}
	for _, r := range o.rcpt {
		env.RcptTo = append(env.RcptTo, strings.Trim(r, "<>"))
	}
	if o.clientIP != "" {
		ip, err := netip.ParseAddr(o.clientIP)
		if err != nil {
			return usageError{fmt.Sprintf("bad -client-ip: %v", err)}
		}
		env.ClientIP = ip
	}

	logger := slog.New(slog.DiscardHandler)
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	build := func() (*config.Filters, error) {
		return config.BuildFilters(context.Background(), cfg, config.Options{Logger: logger})
	}

	if fs.NArg() > 1 || o.format == "jsonl" || isBatch(fs.Arg(0)) {
		built, err := build()
		if err != nil {
			return err
		}
		defer built.Close()
		return scanBatch(context.Background(), built, fs.Args(), env, cfg.Limits.FilterLimits(), o.format, stdout, stderr)
	}
	// The message is opened before the rules compile (seconds with
	// SpamAssassin's): a mistyped path is said at once.
	msg, cleanup, err := openMessage(fs.Arg(0), stdin, env, cfg.Limits.FilterLimits())
	if err != nil {
		return err
	}
	defer cleanup()
	built, err := build()
	if err != nil {
		return err
	}
	defer built.Close()

	v := built.Pipeline.CheckAll(context.Background(), msg)
	return printVerdict(stdout, o.format, v)
}

// isBatch reports whether path holds several messages: a directory or an
// mbox.
func isBatch(path string) bool {
	if path == "-" {
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false
	}
	if st.IsDir() {
		return true
	}
	head := make([]byte, 5)
	n, _ := io.ReadFull(f, head)
	return string(head[:n]) == "From "
}

// openMessage opens the message file, or spools standard input (memory,
// then an unlinked temporary file), so that the message is read at
// offsets, never held whole. The spool has no size limit of its own: the
// message's Limits report a message that is too big as a MIME_LIMIT_*
// symbol and the policy's OnLimit, as for a file.
func openMessage(path string, stdin io.Reader, env filter.Envelope, lim filter.Limits) (*filter.Message, func(), error) {
	if path == "-" {
		sp, err := filter.NewSpool(context.Background(), stdin, filter.SpoolConfig{MaxBytes: -1})
		if err != nil {
			return nil, nil, fmt.Errorf("reading standard input: %w", err)
		}
		return filter.NewMessage(env, sp, sp.Size(), lim), func() { sp.Close() }, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { f.Close() }
	st, err := f.Stat()
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	if st.IsDir() {
		cleanup()
		return nil, nil, fmt.Errorf("%s is a directory", path)
	}
	return filter.NewMessage(env, f, st.Size(), lim), cleanup, nil
}

func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintln(w, "usage: scan [flags] FILE.eml|DIR|MBOX|-...")
	fmt.Fprintln(w, "\nRuns the whole pipeline over messages (- for standard input) and prints the verdicts;")
	fmt.Fprintln(w, "with several messages or -format jsonl, a summary goes to standard error.")
	fmt.Fprintln(w, "Without -config it uses the embedded default: archive inspector and default rules, no network.\n\nFlags:")
	fs.PrintDefaults()
	fmt.Fprint(w, `
Exit status:
  0  every message got a verdict, whatever it is (accept, quarantine, reject, tempfail)
  2  a bad command line or configuration, a message that could not be read
     (the others are still judged), or no message at all

Examples:
  scan -format json -clamd 127.0.0.1:3310 -client-ip 192.0.2.25 -from a@example.org -rcpt b@example.net message.eml
  scan -format jsonl ~/Maildir/cur > verdicts.jsonl
`)
}

func printVerdict(w io.Writer, format string, v filter.Verdict) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	fmt.Fprintf(w, "action:  %s\nscore:   %.2f\nreply:   %s\n", v.Action, v.Score, v.Reply)
	if len(v.Symbols) > 0 {
		fmt.Fprintln(w, "symbols:")
		for _, s := range v.Symbols {
			fmt.Fprintf(w, "  %-28s %6.2f  %s\n", s.Name, s.Score, s.Detail)
		}
	}
	fmt.Fprintln(w, "headers:")
	for _, h := range v.Headers {
		fmt.Fprintf(w, "  %s: %s\n", h.Name, h.Value)
	}
	return nil
}
