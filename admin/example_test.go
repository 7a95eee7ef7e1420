package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/portcullis-mail/portcullis/admin"
	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/filter"
)

// Example mounts the admin handler under /admin/ of an integrator's own
// server, next to the routes it already has. A gateway passes its
// quarantine, its pipeline and promhttp.Handler() as well.
func Example() {
	dir, _ := os.MkdirTemp("", "admin-example")
	defer os.RemoveAll(dir)
	token, _, _, err := admin.EnsureToken(dir) // mode 0600, kept across restarts
	if err != nil {
		panic(err)
	}
	loaded := false
	h, err := admin.New(admin.Config{
		Token:    token,
		BasePath: "/admin",
		Ready: func(context.Context) error {
			if !loaded {
				return errors.New("rules not loaded")
			}
			return nil
		},
		MetricsHandler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "portcullis_up 1") }),
	})
	if err != nil {
		panic(err)
	}
	defer h.Close()

	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", h))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "the integrator's own page") })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path, tok string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Printf("%s %d %s\n", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	get("/admin/healthz", "")
	get("/admin/readyz", "")
	loaded = true
	get("/admin/readyz", "")
	get("/admin/metrics", "")
	get("/admin/api/quarantine", "")    // no token
	get("/admin/api/quarantine", token) // no quarantine configured here
	get("/", "")
	// Output:
	// /admin/healthz 200 ok
	// /admin/readyz 503 not ready: rules not loaded
	// /admin/readyz 200 ready
	// /admin/metrics 200 portcullis_up 1
	// /admin/api/quarantine 401 {
	//   "error": "a valid bearer token is required"
	// }
	// /admin/api/quarantine 503 {
	//   "error": "no quarantine configured"
	// }
	// / 200 the integrator's own page
}

// ExampleHashPassword makes the hash of a console user's password.
func ExampleHashPassword() {
	hash, err := admin.HashPassword("correct horse battery staple")
	if err != nil {
		panic(err)
	}
	_, err = admin.New(admin.Config{Users: []admin.User{{Name: "alice", PasswordHash: hash, Recipients: []string{"alice@example.net"}}}})
	fmt.Println(strings.HasPrefix(hash, "$2a$"), err)
	// Output: true <nil>
}

// Example_check serves POST /api/check, the verdict of a pipeline on a
// message, for an MTA's content filter or a script: the default filters
// here (without SpamAssassin's rules, which take seconds to compile).
func Example_check() {
	cfg := config.Default()
	cfg.Rules.SpamAssassin = ""
	built, err := config.BuildFilters(context.Background(), cfg, config.Options{})
	if err != nil {
		panic(err)
	}
	defer built.Close()
	const token = "example-token-0123456789"
	h, err := admin.New(admin.Config{Token: token, Pipeline: func() *filter.Pipeline { return built.Pipeline }})
	if err != nil {
		panic(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	msg := "From: a@example.org\r\nTo: b@example.net\r\nSubject: test\r\n\r\n" +
		"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n"
	req, _ := http.NewRequest("POST", srv.URL+"/api/check?ip=192.0.2.1&from=a@example.org&rcpt=b@example.net", strings.NewReader(msg))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var v filter.Verdict
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		panic(err)
	}
	fmt.Println(resp.StatusCode, v.Action, v.Reply.Code, v.Symbols[0].Name)
	// Output:
	// 200 reject 550 PC_GTUBE
}
