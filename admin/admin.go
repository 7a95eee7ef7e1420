package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/fleet"
	"github.com/portcullis-mail/portcullis/queue"
)

// ErrConfig is matched by the errors New returns for a configuration it
// cannot serve.
var ErrConfig = errors.New("admin: bad configuration")

// User is a console user who logs in with a password.
type User struct {
	// Name is the login name.
	Name string
	// PasswordHash is a bcrypt hash of the password (HashPassword makes
	// one; `htpasswd -nbB` does too).
	PasswordHash string
	// Admin users see and act on every held message, run bulk re-scans
	// by filter and see the counts of the whole quarantine.
	Admin bool
	// Recipients are the addresses whose held mail a user who is not an
	// admin sees, case-insensitively; "@example.com" stands for every
	// address of a domain. A user with no recipients and no Admin sees
	// nothing.
	Recipients []string
}

// Config configures a Handler. The zero value serves /healthz only
// usefully: every other route answers 404 or 503 until its part is
// configured.
type Config struct {
	// Quarantine is the quarantine the API and the console show; nil
	// turns their routes into 503 answers.
	Quarantine Quarantine
	// Queue is the delivery queue the /api/queue routes show and act on
	// (admins only): the local one or the shared JetStream one; nil makes
	// them answer 503.
	Queue Queue
	// Fleet reads the fleet's state (fleet.ReadView) for the console's
	// fleet page (/quarantine/fleet) and GET /api/fleet, both for admins;
	// nil makes them answer 503. It is called with a context bounded to
	// 10 s per request.
	Fleet func(ctx context.Context) (fleet.View, error)
	// Pipeline returns the pipeline that re-scans use (the current one,
	// after a reload); nil, or a nil result, makes re-scans answer 503.
	Pipeline func() *filter.Pipeline
	// Ready reports readiness for /readyz: nil error means ready. nil
	// means always ready. It is called with the request's context.
	Ready func(ctx context.Context) error
	// MetricsHandler serves /metrics (promhttp.Handler(), say); nil
	// answers 404.
	MetricsHandler http.Handler

	// Token is the admin token: the bearer token of the JSON API and a
	// console login with every right. Token and TokenFile are
	// alternatives; EnsureToken generates a file on first start. Without
	// either, the API refuses every request (401) and only Users can log
	// in to the console.
	Token     string
	TokenFile string
	// Users may log in to the console with a password.
	Users []User

	// BasePath is the path the handler is mounted under when it is not
	// the root of its server ("/admin", with http.StripPrefix): it
	// prefixes the console's links and its cookie's path.
	BasePath string
	// SecureCookies marks the session cookie Secure even on plain HTTP
	// requests (behind a TLS-terminating proxy). Requests that arrived
	// over TLS always get Secure cookies.
	SecureCookies bool
	// SessionTTL bounds a console session; 0 means 12 hours.
	SessionTTL time.Duration
	// MaxSessions bounds the sessions kept; the oldest go first. 0 means
	// 10,000.
	MaxSessions int

	// Limits bound the parse of a message for the message view.
	Limits filter.Limits
	// MaxScan bounds the records one listing or bulk re-scan examines
	// (the quarantine lists oldest first): a quarantine bigger than that
	// is listed within its oldest MaxScan records, and the page says so
	// (a since filter narrows it). 0 means 200,000.
	MaxScan int
	// MaxTextBytes bounds the text shown of one text part; 0 means 256 KiB.
	MaxTextBytes int
	// MaxChecks bounds the POST /api/check requests judged at once; the
	// others wait. 0 means twice GOMAXPROCS.
	MaxChecks int

	// Logger receives one line per request that changes something (who,
	// what, which message) and per refused login; nil discards.
	Logger *slog.Logger
	// Metrics counts logins (portcullis_admin_logins_total by result),
	// refused requests (portcullis_admin_refused_total by reason: token,
	// csrf), actions (portcullis_admin_actions_total by action and
	// result) and checks (portcullis_admin_checks_total by action: the
	// verdict's, too_large, or abandoned when the client gave up waiting
	// for a slot); nil is a no-op.
	Metrics filter.Metrics
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Handler serves the admin HTTP routes; see the package comment for the
// list. It is safe for concurrent use. Close stops re-scans in progress.
type Handler struct {
	cfg       Config
	mux       *http.ServeMux
	log       *slog.Logger
	tokenSum  [32]byte // SHA-256 of the admin token; zero when none
	hasToken  bool
	users     map[string]User
	dummy     []byte // a bcrypt hash compared when the user is unknown
	dummyOnce sync.Once

	sessions *sessions
	logins   *rate.Limiter // failed logins, process-wide
	subjects *lru.Cache[heldID, string]
	jobs     *jobs
	checks   chan struct{} // a slot per check running (MaxChecks)
	// maxMessage bounds a checked message: Limits.MaxMessageBytes or its default.
	maxMessage int64

	ctx     context.Context // background work (re-scans)
	cancel  context.CancelFunc
	closeMu sync.Mutex // orders starting a re-scan before Close's Wait
	wg      sync.WaitGroup
}

// New returns a Handler for cfg.
func New(cfg Config) (*Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Metrics = filter.OrNop(cfg.Metrics)
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 10000
	}
	if cfg.MaxScan <= 0 {
		cfg.MaxScan = 200000
	}
	if cfg.MaxTextBytes <= 0 {
		cfg.MaxTextBytes = 256 << 10
	}
	if cfg.MaxChecks <= 0 {
		cfg.MaxChecks = 2 * runtime.GOMAXPROCS(0)
	}
	cfg.BasePath = strings.TrimSuffix(cfg.BasePath, "/")
	if cfg.BasePath != "" && !strings.HasPrefix(cfg.BasePath, "/") {
		return nil, fmt.Errorf("%w: BasePath %q does not start with /", ErrConfig, cfg.BasePath)
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, users: map[string]User{}, checks: make(chan struct{}, cfg.MaxChecks),
		maxMessage: cfg.Limits.MaxMessageBytes}
	if h.maxMessage <= 0 {
		h.maxMessage = filter.DefaultMaxMessageBytes
	}
	token := cfg.Token
	if cfg.TokenFile != "" {
		if token != "" {
			return nil, fmt.Errorf("%w: both Token and TokenFile", ErrConfig)
		}
		t, err := LoadToken(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		token = t
	}
	if token != "" {
		if len(token) < 16 {
			return nil, fmt.Errorf("%w: the admin token has %d characters; 16 at least", ErrConfig, len(token))
		}
		h.tokenSum, h.hasToken = sha256.Sum256([]byte(token)), true
	}
	for _, u := range cfg.Users {
		if u.Name == "" || len(u.Name) > 256 {
			return nil, fmt.Errorf("%w: a user needs a name of 1 to 256 bytes", ErrConfig)
		}
		if _, dup := h.users[u.Name]; dup {
			return nil, fmt.Errorf("%w: user %q twice", ErrConfig, u.Name)
		}
		if err := checkHash(u.PasswordHash); err != nil {
			return nil, fmt.Errorf("%w: user %q: %v", ErrConfig, u.Name, err)
		}
		h.users[u.Name] = u
	}
	h.sessions = newSessions(cfg.MaxSessions, cfg.SessionTTL, cfg.Now)
	h.logins = rate.NewLimiter(5, 20)
	h.subjects, _ = lru.New[heldID, string](4096)
	h.jobs = newJobs(32)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.routes()
	return h, nil
}

// Close cancels the re-scans in progress and waits for them to stop. A
// cancelled re-scan keeps what it did; run it again to finish it.
func (h *Handler) Close() error {
	h.closeMu.Lock()
	h.cancel()
	h.closeMu.Unlock()
	h.wg.Wait()
	return nil
}

func (h *Handler) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", h.healthz)
	m.HandleFunc("GET /readyz", h.readyz)
	m.HandleFunc("GET /metrics", h.metrics)

	m.HandleFunc("GET /api/quarantine", h.api(h.apiList))
	m.HandleFunc("GET /api/quarantine/{id}", h.api(h.apiGet))
	m.HandleFunc("GET /api/quarantine/{id}/raw", h.api(h.apiRaw))
	m.HandleFunc("POST /api/quarantine/{id}/release", h.api(h.apiRelease))
	m.HandleFunc("DELETE /api/quarantine/{id}", h.api(h.apiDelete))
	m.HandleFunc("POST /api/quarantine/rescan", h.api(h.apiRescan))
	m.HandleFunc("GET /api/rescans/{job}", h.api(h.apiRescanStatus))

	m.HandleFunc("GET /api/queue", h.apiQueue(h.apiQueueList))
	m.HandleFunc("GET /api/queue/{id}", h.apiQueue(h.apiQueueGet))
	m.HandleFunc("POST /api/queue/{id}/retry", h.apiQueue(h.apiQueueAct("retry", func(ctx context.Context, id queue.ID) error { return h.cfg.Queue.Retry(ctx, id) })))
	m.HandleFunc("POST /api/queue/{id}/bounce", h.apiQueue(h.apiQueueAct("bounce", func(ctx context.Context, id queue.ID) error { return h.cfg.Queue.Bounce(ctx, id) })))

	m.HandleFunc("GET /api/fleet", h.apiFleet)
	m.HandleFunc("POST /api/check", h.apiCheck)

	m.HandleFunc("GET /quarantine", h.page(h.pageList))
	m.HandleFunc("GET /quarantine/fleet", h.pageFleet)
	m.HandleFunc("GET /quarantine/{$}", h.page(h.pageList))
	m.HandleFunc("GET /quarantine/login", h.pageLogin)
	m.HandleFunc("POST /quarantine/login", h.postLogin)
	m.HandleFunc("POST /quarantine/logout", h.form(h.postLogout))
	m.HandleFunc("GET /quarantine/m/{id}", h.page(h.pageMessage))
	m.HandleFunc("GET /quarantine/m/{id}/raw", h.page(h.pageRaw))
	m.HandleFunc("POST /quarantine/m/{id}/{action}", h.form(h.postAction))
	m.HandleFunc("POST /quarantine/bulk", h.form(h.postBulk))
	m.HandleFunc("POST /quarantine/rescan", h.form(h.postRescan))
	m.HandleFunc("GET /quarantine/rescan/{job}", h.page(h.pageRescan))
	m.HandleFunc("GET /quarantine/static/{file}", h.static)
	h.mux = m
}

// ServeHTTP serves the admin routes. Every answer carries a strict
// Content-Security-Policy, X-Content-Type-Options: nosniff and no-store
// caching: a held message is hostile, and nothing of it may load, run or
// be kept by the browser.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// csp allows the console's own stylesheet and script and nothing else:
// no inline script or style, no images, frames, fonts or connections to
// anywhere, forms posting only back to the console.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if h.cfg.Ready != nil {
		if err := h.cfg.Ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", err)
			return
		}
	}
	fmt.Fprintln(w, "ready")
}

func (h *Handler) metrics(w http.ResponseWriter, r *http.Request) {
	if h.cfg.MetricsHandler == nil {
		http.NotFound(w, r)
		return
	}
	// The metrics handler sets its own content type; the CSP stays.
	h.cfg.MetricsHandler.ServeHTTP(w, r)
}

// tokenOK compares a presented token with the admin token in constant
// time (of their hashes, so that the length leaks nothing either).
func (h *Handler) tokenOK(t string) bool {
	if !h.hasToken || t == "" {
		return false
	}
	sum := sha256.Sum256([]byte(t))
	return subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) == 1
}

func (h *Handler) url(path string) string { return h.cfg.BasePath + path }

// counted records an action's outcome in the metrics.
func (h *Handler) counted(action string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	h.cfg.Metrics.Add("portcullis_admin_actions_total", 1, "action", action, "result", result)
}
