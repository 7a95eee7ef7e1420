package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/admin"
	"github.com/portcullis-mail/portcullis/config"
)

// operate runs an operator command against the running gateway's admin
// API: the data directory is locked by the server, so the command never
// opens the stores itself.
//
//	gateway quarantine list [-since T] [-symbol S] [-engine E] [-recipient R] [-text T] [-limit N]
//	gateway quarantine show|release|delete ID
//	gateway quarantine rescan [-since T] [-symbol S] [-engine E] [-recipient R] [-text T]
//	gateway queue list [-state queued|held] [-limit N]
//	gateway queue show|retry|bounce ID
//
// Every command takes -config FILE, -admin ADDR and -token-file FILE to
// find the gateway (defaults: the configuration's admin.listen and token).
const operateTail = `
Exit status:
  0  done
  1  the gateway did not answer, or refused (the message is not there)
  2  a bad command line

Example:
  gateway quarantine list -since 24h -engine clamd-1
`

const operateUsage = `usage: gateway quarantine list [-since T] [-symbol S] [-engine E] [-recipient R] [-text T] [-limit N]
       gateway quarantine show|release|delete ID
       gateway quarantine rescan [-since T] [-symbol S] [-engine E] [-recipient R] [-text T]

Works on the running gateway's quarantine through its admin API. Every
command takes -config FILE, -admin ADDR, -token-file FILE and -data DIR to
find the gateway (defaults: the embedded configuration's).
` + operateTail

func operate(args []string, stdout, stderr io.Writer) error {
	if args[0] == "queue" {
		return operateQueue(args, stdout, stderr)
	}
	if len(args) < 2 || !slices.Contains([]string{"list", "show", "release", "delete", "rescan"}, args[1]) {
		if len(args) == 2 && (args[1] == "-h" || args[1] == "-help" || args[1] == "--help") {
			fmt.Fprint(stderr, operateUsage)
			return flag.ErrHelp
		}
		return usageError{errors.New("usage: gateway quarantine list|show|release|delete|rescan [flags] [ID] (gateway quarantine -h)")}
	}
	verb := args[1]
	fs := flag.NewFlagSet("gateway quarantine "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "the gateway's configuration file")
	addr := fs.String("admin", "", "the admin listener (default: admin.listen)")
	tokenFile := fs.String("token-file", "", "the admin token (default: admin.token_file or DATA/admin.token)")
	data := fs.String("data", "", "the data directory (data_dir), where the token is")
	filters := map[string]*string{}
	if verb == "list" || verb == "rescan" {
		for _, k := range []string{"since", "symbol", "engine", "recipient", "text"} {
			filters[k] = fs.String(k, "", "select by "+k)
		}
	}
	limit := 0
	if verb == "list" {
		fs.IntVar(&limit, "limit", 50, "messages to list (1-500)")
	}
	if err := parse(fs, args[2:], stderr, func(w io.Writer) {
		fmt.Fprintf(w, "usage: gateway quarantine %s [flags]%s\n\nFlags:\n", verb, map[bool]string{true: " ID"}[verb != "list" && verb != "rescan"])
		fs.PrintDefaults()
		fmt.Fprint(w, operateTail)
	}); err != nil {
		return err
	}
	c, err := newClient(*cfgPath, *addr, *tokenFile, *data)
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range filters {
		if *v != "" {
			q.Set(k, *v)
		}
	}
	id := func() (string, error) {
		if fs.NArg() != 1 {
			return "", usageError{fmt.Errorf("%s needs one message ID", verb)}
		}
		return fs.Arg(0), nil
	}
	ctx := context.Background()
	switch verb {
	case "list":
		q.Set("limit", fmt.Sprint(limit))
		return c.list(ctx, q, stdout)
	case "show":
		m, err := id()
		if err != nil {
			return err
		}
		return c.show(ctx, "/api/quarantine/"+url.PathEscape(m), stdout)
	case "release":
		m, err := id()
		if err != nil {
			return err
		}
		var out struct {
			QueueID string `json:"queue_id"`
		}
		if err := c.do(ctx, http.MethodPost, "/api/quarantine/"+url.PathEscape(m)+"/release", nil, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "released %s: queued as %s\n", m, out.QueueID)
		return nil
	case "delete":
		m, err := id()
		if err != nil {
			return err
		}
		if err := c.do(ctx, http.MethodDelete, "/api/quarantine/"+url.PathEscape(m), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", m)
		return nil
	case "rescan":
		return c.rescan(ctx, q, stdout)
	}
	return usageError{fmt.Errorf("unknown command %q (list, show, release, delete, rescan)", verb)}
}

type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient(cfgPath, addr, tokenFile, data string) (*client, error) {
	cfg := config.Default()
	if cfgPath != "" {
		c, err := config.Load(cfgPath)
		if err != nil {
			return nil, usageError{err}
		}
		cfg = c
	}
	if addr == "" {
		addr = cfg.Admin.Listen
	}
	if data != "" {
		cfg.DataDir = data
	}
	if tokenFile == "" {
		tokenFile = cfg.Admin.TokenFile
	}
	if tokenFile == "" {
		tokenFile = filepath.Join(cfg.DataDir, admin.TokenFileName)
	}
	if addr == "" {
		return nil, usageError{errors.New("no admin address: admin.listen is off; pass -admin")}
	}
	token, err := admin.LoadToken(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	return &client{base: "http://" + addr, token: token, http: &http.Client{Timeout: 10 * time.Minute}}, nil
}

// do sends one API request and decodes the JSON answer into out.
func (c *client) do(ctx context.Context, method, path string, form url.Values, out any) error {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

type listed struct {
	Items []struct {
		ID      string    `json:"id"`
		HeldAt  time.Time `json:"held_at"`
		From    string    `json:"from"`
		To      []string  `json:"to"`
		Subject string    `json:"subject"`
		Score   float64   `json:"score"`
		Symbols []struct {
			Name string `json:"name"`
		} `json:"symbols"`
	} `json:"items"`
	Matched int    `json:"matched"`
	Next    string `json:"next"`
}

func (c *client) list(ctx context.Context, q url.Values, w io.Writer) error {
	var l listed
	if err := c.do(ctx, http.MethodGet, "/api/quarantine?"+q.Encode(), nil, &l); err != nil {
		return err
	}
	for _, it := range l.Items {
		var syms []string
		for _, s := range it.Symbols {
			syms = append(syms, s.Name)
		}
		fmt.Fprintf(w, "%s  %s  %s -> %s  %q  %.2f %s\n", it.ID, it.HeldAt.Format(time.RFC3339), it.From,
			strings.Join(it.To, ","), it.Subject, it.Score, strings.Join(syms, ","))
	}
	fmt.Fprintf(w, "%d shown, %d matched\n", len(l.Items), l.Matched)
	return nil
}

// show prints the JSON at path, indented.
func (c *client) show(ctx context.Context, path string, w io.Writer) error {
	var v json.RawMessage
	if err := c.do(ctx, http.MethodGet, path, nil, &v); err != nil {
		return err
	}
	var pretty any
	if err := json.Unmarshal(v, &pretty); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(pretty)
}

type rescanStatus struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Total     int    `json:"total"`
	Processed int    `json:"processed"`
	Released  int    `json:"released"`
	Kept      int    `json:"kept"`
	Skipped   int    `json:"skipped"`
	Failed    int    `json:"failed"`
	Error     string `json:"error"`
}

// rescan starts a re-scan job, shows its progress while it runs and a
// summary at the end.
func (c *client) rescan(ctx context.Context, q url.Values, w io.Writer) error {
	q.Set("async", "true")
	var st rescanStatus
	if err := c.do(ctx, http.MethodPost, "/api/quarantine/rescan", q, &st); err != nil {
		return err
	}
	last := -1
	for st.State == "running" {
		if st.Processed != last {
			fmt.Fprintf(w, "re-scan %s: %d/%d processed\n", st.ID, st.Processed, st.Total)
			last = st.Processed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond): // polling the job's progress
		}
		if err := c.do(ctx, http.MethodGet, "/api/rescans/"+url.PathEscape(st.ID), nil, &st); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "re-scan %s %s: %d messages, %d released, %d kept, %d skipped, %d failed\n",
		st.ID, st.State, st.Total, st.Released, st.Kept, st.Skipped, st.Failed)
	if st.Error != "" {
		return fmt.Errorf("re-scan: %s", st.Error)
	}
	return nil
}
