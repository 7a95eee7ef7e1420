package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// operateQueue runs a queue command against the admin API:
//
//	gateway queue list [-state queued|held] [-limit N]   every entry, oldest first, page by page
//	gateway queue show ID
//	gateway queue retry ID     attempt it now (a held one is released)
//	gateway queue bounce ID    give up on it: a DSN to the sender, the entry removed
func operateQueue(args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return usageError{errors.New("usage: gateway queue list|show|retry|bounce [flags] [ID]")}
	}
	verb := args[1]
	fs := flag.NewFlagSet("gateway queue "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "the gateway's configuration file")
	addr := fs.String("admin", "", "the admin listener (default: admin.listen)")
	tokenFile := fs.String("token-file", "", "the admin token (default: admin.token_file or DATA/admin.token)")
	data := fs.String("data", "", "the data directory (data_dir), where the token is")
	var state string
	limit := 0
	if verb == "list" {
		fs.StringVar(&state, "state", "", "only entries in this state: queued or held")
		fs.IntVar(&limit, "limit", 0, "entries to list (0: all)")
	}
	if err := fs.Parse(args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	switch verb {
	case "list":
		if fs.NArg() != 0 {
			return usageError{fmt.Errorf("list takes no argument, got %q", fs.Arg(0))}
		}
	case "show", "retry", "bounce":
		if fs.NArg() != 1 {
			return usageError{fmt.Errorf("%s needs one queue ID", verb)}
		}
	default:
		return usageError{fmt.Errorf("unknown command %q (list, show, retry, bounce)", verb)}
	}
	c, err := newClient(*cfgPath, *addr, *tokenFile, *data)
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch verb {
	case "list":
		return c.queueList(ctx, state, limit, stdout)
	case "show":
		return c.show(ctx, "/api/queue/"+url.PathEscape(fs.Arg(0)), stdout)
	}
	id := fs.Arg(0)
	if err := c.do(ctx, http.MethodPost, "/api/queue/"+url.PathEscape(id)+"/"+verb, nil, nil); err != nil {
		return err
	}
	if verb == "retry" {
		fmt.Fprintf(stdout, "retrying %s now\n", id)
	} else {
		fmt.Fprintf(stdout, "bounced %s\n", id)
	}
	return nil
}

type queueListed struct {
	Items []struct {
		ID          string     `json:"id"`
		State       string     `json:"state"`
		From        string     `json:"from"`
		Pending     []string   `json:"pending"`
		Size        int64      `json:"size"`
		Created     time.Time  `json:"created"`
		Attempts    int        `json:"attempts"`
		NextAttempt *time.Time `json:"next_attempt"`
		LastError   string     `json:"last_error"`
	} `json:"items"`
	Total int    `json:"total"`
	Held  int    `json:"held"`
	Next  string `json:"next"`
}

// queueList prints one line per entry, following the pages.
func (c *client) queueList(ctx context.Context, state string, limit int, w io.Writer) error {
	shown, after := 0, ""
	var l queueListed
	for {
		q := url.Values{"limit": {"500"}}
		if limit > 0 {
			q.Set("limit", fmt.Sprint(min(500, limit-shown)))
		}
		if state != "" {
			q.Set("state", state)
		}
		if after != "" {
			q.Set("after", after)
		}
		l = queueListed{}
		if err := c.do(ctx, http.MethodGet, "/api/queue?"+q.Encode(), nil, &l); err != nil {
			return err
		}
		for _, it := range l.Items {
			next := "-"
			if it.NextAttempt != nil {
				next = it.NextAttempt.Format(time.RFC3339)
			}
			from := it.From
			if from == "" {
				from = "<>"
			}
			fmt.Fprintf(w, "%s  %-6s  %s  %s -> %s  %d bytes  %d attempts  next %s  %s\n", it.ID, it.State,
				it.Created.Format(time.RFC3339), from, strings.Join(it.Pending, ","), it.Size, it.Attempts, next, it.LastError)
		}
		shown += len(l.Items)
		if l.Next == "" || limit > 0 && shown >= limit {
			break
		}
		after = l.Next
	}
	fmt.Fprintf(w, "%d shown, %d queued in all (%d held)\n", shown, l.Total, l.Held)
	return nil
}
