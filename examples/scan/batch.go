package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
)

// Batch scanning: many messages through one built pipeline (the rules are
// compiled once). An argument is a message file, a directory (every
// regular file under it, in name order) or an mbox (a file whose first
// line starts "From "; each message is named FILE#N). With -format jsonl
// each verdict is one line of JSON with the message's name; a summary
// (verdicts per action, the score distribution, time per message) goes to
// standard error, and on a terminal a progress line. An unreadable file
// (or an mbox message over maxMboxMessage) is reported and skipped, and
// the exit status is then 2, as it is when no message was found.

// batchLine is one message's line of -format jsonl.
type batchLine struct {
	File string `json:"file"`
	filter.Verdict
}

// batchStats are what the summary reports.
type batchStats struct {
	actions map[filter.Action]int
	scores  []float64
	errors  int
	elapsed time.Duration
}

// maxMboxMessage bounds one message read from an mbox into memory; a
// variable so that the test can exceed it cheaply.
var maxMboxMessage = 64 << 20

func scanBatch(ctx context.Context, built *config.Filters, paths []string, env filter.Envelope, lim filter.Limits,
	format string, stdout, stderr io.Writer) error {
	st := &batchStats{actions: map[filter.Action]int{}}
	progress := isTerminal(stderr)
	one := func(name string, m *filter.Message) error {
		start := time.Now()
		v := built.Pipeline.CheckAll(ctx, m)
		st.elapsed += time.Since(start)
		st.actions[v.Action]++
		st.scores = append(st.scores, v.Score)
		if err := printBatch(stdout, format, name, v); err != nil {
			return err
		}
		if progress && len(st.scores)%50 == 0 {
			fmt.Fprintf(stderr, "\rscanned %d messages", len(st.scores))
		}
		return nil
	}
	for _, p := range paths {
		if err := walkMessages(p, env, lim, one, func(name string, err error) {
			st.errors++
			fmt.Fprintf(stderr, "scan: %s: %v\n", name, err)
		}); err != nil {
			return err
		}
	}
	if progress {
		fmt.Fprint(stderr, "\r")
	}
	if len(st.scores)+st.errors > 0 {
		st.summary(stderr)
	}
	// The exit status says whether every message was read, as for one.
	switch {
	case st.errors > 0:
		return fmt.Errorf("%d messages unreadable", st.errors)
	case len(st.scores) == 0:
		return fmt.Errorf("no messages in %s", strings.Join(paths, " "))
	}
	return nil
}

// walkMessages calls fn for every message under path; a file that cannot
// be read is reported to bad and skipped; an error from fn stops the walk.
func walkMessages(path string, env filter.Envelope, lim filter.Limits, fn func(string, *filter.Message) error, bad func(string, error)) error {
	st, err := os.Stat(path)
	if err != nil {
		bad(path, err)
		return nil
	}
	if !st.IsDir() {
		return scanFile(path, env, lim, fn, bad)
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			bad(p, err)
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(files)
	for _, f := range files {
		if err := scanFile(f, env, lim, fn, bad); err != nil {
			return err
		}
	}
	return nil
}

// scanFile scans one message file, or each message of an mbox.
func scanFile(path string, env filter.Envelope, lim filter.Limits, fn func(string, *filter.Message) error, bad func(string, error)) error {
	f, err := os.Open(path)
	if err != nil {
		bad(path, err)
		return nil
	}
	defer f.Close()
	head := make([]byte, 5)
	n, _ := io.ReadFull(f, head)
	if string(head[:n]) != "From " {
		st, err := f.Stat()
		if err != nil {
			bad(path, err)
			return nil
		}
		return fn(path, filter.NewMessage(env, f, st.Size(), lim))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		bad(path, err)
		return nil
	}
	return scanMbox(path, f, env, lim, fn, bad)
}

// scanMbox splits an mbox at its "From " lines (mboxrd: a quoted
// ">From " line loses one ">").
func scanMbox(path string, r io.Reader, env filter.Envelope, lim filter.Limits, fn func(string, *filter.Message) error, bad func(string, error)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var msg bytes.Buffer
	index, tooBig := 0, false
	flush := func() error {
		if index == 0 {
			return nil
		}
		name := fmt.Sprintf("%s#%d", path, index)
		if tooBig {
			bad(name, fmt.Errorf("message over %d bytes", maxMboxMessage))
			return nil
		}
		raw := bytes.Clone(msg.Bytes())
		return fn(name, filter.NewMessageBytes(env, raw, lim))
	}
	prevBlank := true
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			switch {
			case prevBlank && bytes.HasPrefix(line, []byte("From ")):
				if ferr := flush(); ferr != nil {
					return ferr
				}
				index++
				msg.Reset()
				tooBig = false
			case index > 0:
				if q := bytes.TrimLeft(line, ">"); len(q) < len(line) && bytes.HasPrefix(q, []byte("From ")) {
					line = line[1:]
				}
				if msg.Len()+len(line) > maxMboxMessage {
					tooBig = true
				} else {
					msg.Write(line)
				}
			}
			prevBlank = len(bytes.TrimRight(line, "\r\n")) == 0
		}
		if err == io.EOF {
			return flush()
		}
		if err != nil {
			bad(path, err)
			return nil
		}
	}
}

func printBatch(w io.Writer, format, name string, v filter.Verdict) error {
	switch format {
	case "jsonl":
		b, err := json.Marshal(batchLine{File: name, Verdict: v})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(batchLine{File: name, Verdict: v})
	}
	fmt.Fprintf(w, "== %s\n", name)
	return printVerdict(w, format, v)
}

func (st *batchStats) summary(w io.Writer) {
	n := len(st.scores)
	fmt.Fprintf(w, "scanned %d messages", n)
	if st.errors > 0 {
		fmt.Fprintf(w, ", %d unreadable", st.errors)
	}
	fmt.Fprintln(w)
	if n == 0 {
		return
	}
	var actions []string
	for a, c := range st.actions {
		actions = append(actions, fmt.Sprintf("%s %d", a, c))
	}
	sort.Strings(actions)
	fmt.Fprintf(w, "actions: %s\n", strings.Join(actions, ", "))
	s := slices.Sorted(slices.Values(st.scores))
	q := func(p float64) float64 { return s[min(n-1, int(p*float64(n)))] }
	fmt.Fprintf(w, "score:   min %.2f  median %.2f  p90 %.2f  max %.2f\n", s[0], q(0.5), q(0.9), s[n-1])
	fmt.Fprintf(w, "time:    %v per message\n", (st.elapsed / time.Duration(n)).Round(time.Microsecond))
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
