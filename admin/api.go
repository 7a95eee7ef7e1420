package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// api wraps a JSON API route: the admin token as a bearer token, or a
// user's name and password by HTTP Basic authentication (scoped to the
// user's recipients like the console), is required (401 otherwise), and
// a quarantine must be configured (503).
func (h *Handler) api(fn func(w http.ResponseWriter, r *http.Request, p principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, ok := h.apiPrincipal(r)
		if !ok {
			h.unauthorized(w, r)
			return
		}
		if h.cfg.Quarantine == nil {
			jsonError(w, http.StatusServiceUnavailable, "no quarantine configured")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		fn(w, r, who)
	}
}

// apiPrincipal authenticates an API request. Failed password checks
// share the console's login rate limit.
func (h *Handler) apiPrincipal(r *http.Request) (principal, bool) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return tokenPrincipal, h.tokenOK(strings.TrimSpace(tok))
	}
	name, pw, ok := r.BasicAuth()
	if !ok || name == "" || len(h.users) == 0 || h.logins.Tokens() < 1 {
		return principal{}, false
	}
	u, ok := h.users[name] // the admin token is a bearer token here, never a Basic password
	if !ok {
		h.authenticate(name, pw) // the same time as a known user's check
		h.logins.Allow()
		return principal{}, false
	}
	if who, ok := h.authenticate(u.Name, pw); ok && who.Via == "password" {
		return who, true
	}
	h.logins.Allow()
	return principal{}, false
}

// unauthorized answers 401 to an API request without a valid token or
// user, counted and logged.
func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="portcullis"`)
	h.cfg.Metrics.Add("portcullis_admin_refused_total", 1, "reason", "token")
	h.log.Warn("admin: API request refused: no valid bearer token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	jsonError(w, http.StatusUnauthorized, "a valid bearer token is required")
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// status maps a quarantine error to an HTTP status.
func status(err error) int {
	switch {
	case errors.Is(err, errNotFound), errors.Is(err, errBadID):
		return http.StatusNotFound
	case errors.Is(err, errInUse), errors.Is(err, errJobRunning):
		return http.StatusConflict
	case errors.Is(err, errNoPipeline), errors.Is(err, errClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	case errors.Is(err, errTooMany):
		return http.StatusBadRequest
	case errors.Is(err, errForbidden):
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

func (h *Handler) apiFail(w http.ResponseWriter, r *http.Request, err error) {
	code := status(err)
	if code == http.StatusInternalServerError {
		h.log.Error("admin: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	jsonError(w, code, err.Error())
}

// apiHeld is a held message in the API.
type apiHeld struct {
	ID          string          `json:"id"`
	HeldAt      time.Time       `json:"held_at"`
	From        string          `json:"from"`
	To          []string        `json:"to"`
	Subject     string          `json:"subject"`
	ClientIP    string          `json:"client_ip,omitempty"`
	Helo        string          `json:"helo,omitempty"`
	AuthUser    string          `json:"auth_user,omitempty"`
	TLS         bool            `json:"tls,omitempty"`
	Size        int64           `json:"size"`
	SHA256      string          `json:"sha256"`
	Action      string          `json:"action"`
	Score       float64         `json:"score"`
	Symbols     []filter.Symbol `json:"symbols"`
	Rescans     int             `json:"rescans,omitempty"`
	RescannedAt *time.Time      `json:"rescanned_at,omitempty"`
	Releasing   bool            `json:"releasing,omitempty"`
}

func toAPI(it held, subject string) apiHeld {
	a := apiHeld{ID: string(it.ID), HeldAt: it.HeldAt.UTC(), From: it.Envelope.MailFrom, To: it.Envelope.RcptTo,
		Subject: subject, Helo: it.Envelope.Helo, AuthUser: it.Envelope.AuthUser, TLS: it.Envelope.TLS,
		Size: it.Size, SHA256: it.Checksum, Action: it.Action.String(), Score: it.Score, Symbols: it.Symbols,
		Rescans: it.Rescans, Releasing: it.Releasing}
	if a.To == nil {
		a.To = []string{}
	}
	if a.Symbols == nil {
		a.Symbols = []filter.Symbol{}
	}
	if it.Envelope.ClientIP.IsValid() {
		a.ClientIP = it.Envelope.ClientIP.String()
	}
	if !it.RescannedAt.IsZero() {
		t := it.RescannedAt.UTC()
		a.RescannedAt = &t
	}
	return a
}

// pageLimit reads limit: 1 to max, def when absent.
func pageLimit(s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, errors.New("limit: a number from 1 to " + strconv.Itoa(max))
	}
	return n, nil
}

func (h *Handler) apiList(w http.ResponseWriter, r *http.Request, p principal) {
	v := r.URL.Query()
	f, err := parseFilters(v, h.cfg.Now())
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := pageLimit(v.Get("limit"), 50, 500)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	before := heldID(v.Get("before"))
	if before != "" && !validID(string(before)) {
		jsonError(w, http.StatusBadRequest, "before: not a message ID")
		return
	}
	l, err := h.list(r.Context(), p, f, before, limit)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	type count struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	out := struct {
		Items     []apiHeld `json:"items"`
		Matched   int       `json:"matched"`
		Bytes     int64     `json:"bytes"`
		Symbols   []count   `json:"symbols"`
		Engines   []count   `json:"engines"`
		Next      string    `json:"next,omitempty"`
		Truncated bool      `json:"truncated,omitempty"`
	}{Items: []apiHeld{}, Matched: l.Matched, Bytes: l.Bytes, Symbols: []count{}, Engines: []count{}, Next: string(l.Next), Truncated: l.Truncated}
	for _, it := range l.Items {
		out.Items = append(out.Items, toAPI(it, h.subject(r.Context(), it.ID)))
	}
	for _, s := range l.Symbols {
		out.Symbols = append(out.Symbols, count(s))
	}
	for _, s := range l.Engines {
		out.Engines = append(out.Engines, count(s))
	}
	writeJSON(w, http.StatusOK, out)
}

// validID accepts what a quarantine ID can be: 1 to 64 bytes of
// [0-9A-Za-z._-]. Anything else is refused before it reaches a store, a
// log line or a file name.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

var (
	errForbidden  = errors.New("admin: not yours")
	errBadID      = errors.New("admin: not a message ID")
	errNoPipeline = errors.New("admin: no pipeline to re-scan with")
)

// fetch returns a held message p may see. A message p may not see is
// reported as not found, so that IDs of other people's mail cannot be
// probed.
func (h *Handler) fetch(ctx context.Context, p principal, id string) (held, []byte, error) {
	if !validID(id) {
		return held{}, nil, errBadID
	}
	it, raw, err := h.cfg.Quarantine.Get(ctx, heldID(id))
	if err != nil && (!errors.Is(err, errCorrupt) || it.ID == "") {
		return held{}, nil, err
	}
	if !p.canSee(it) {
		return held{}, nil, errNotFound
	}
	return it, raw, err // err: the record is there, its message is corrupt
}

func (h *Handler) apiGet(w http.ResponseWriter, r *http.Request, p principal) {
	it, raw, err := h.fetch(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	v := h.view(it, raw)
	writeJSON(w, http.StatusOK, struct {
		apiHeld
		messageView
	}{toAPI(it, v.Subject), v})
}

func (h *Handler) apiRaw(w http.ResponseWriter, r *http.Request, p principal) {
	it, raw, err := h.fetch(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	h.log.Info("admin: raw message downloaded", "who", p.Name, "via", p.Via, "id", it.ID, "remote", r.RemoteAddr)
	writeRaw(w, it, raw)
}

// writeRaw sends a message as a download: never something a browser
// would render, under a name made of the ID alone.
func writeRaw(w http.ResponseWriter, it held, raw []byte) {
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Disposition", `attachment; filename="quarantine-`+string(it.ID)+`.eml"`)
	hd.Set("Content-Length", strconv.Itoa(len(raw)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(raw)
}

// release releases a message p may act on, and logs who did it.
func (h *Handler) release(ctx context.Context, p principal, id, remote string) (string, error) {
	it, err := h.actable(ctx, p, id)
	if err != nil {
		return "", err
	}
	qid, err := h.cfg.Quarantine.Release(ctx, it.ID)
	h.counted("release", err)
	if err != nil {
		h.log.Warn("admin: release failed", "who", p.Name, "via", p.Via, "id", it.ID, "remote", remote, "err", err)
		return "", err
	}
	h.subjects.Remove(it.ID)
	h.log.Info("admin: released", "who", p.Name, "via", p.Via, "id", it.ID, "queue_id", qid,
		"from", it.Envelope.MailFrom, "rcpts", len(it.Envelope.RcptTo), "remote", remote)
	return string(qid), nil
}

func (h *Handler) remove(ctx context.Context, p principal, id, remote string) error {
	it, err := h.actable(ctx, p, id)
	if err != nil {
		return err
	}
	err = h.cfg.Quarantine.Delete(ctx, it.ID)
	h.counted("delete", err)
	if err != nil {
		h.log.Warn("admin: delete failed", "who", p.Name, "via", p.Via, "id", it.ID, "remote", remote, "err", err)
		return err
	}
	h.subjects.Remove(it.ID)
	h.log.Info("admin: deleted", "who", p.Name, "via", p.Via, "id", it.ID,
		"from", it.Envelope.MailFrom, "rcpts", len(it.Envelope.RcptTo), "remote", remote)
	return nil
}

// actable returns a held message p may release, delete or re-scan.
func (h *Handler) actable(ctx context.Context, p principal, id string) (held, error) {
	it, _, err := h.fetch(ctx, p, id)
	if err != nil && !errors.Is(err, errCorrupt) {
		return held{}, err
	}
	// A corrupt message can still be deleted; the quarantine refuses to
	// release it.
	if !p.canAct(it) {
		return held{}, errForbidden
	}
	return it, nil
}

func (h *Handler) apiRelease(w http.ResponseWriter, r *http.Request, p principal) {
	qid, err := h.release(r.Context(), p, r.PathValue("id"), r.RemoteAddr)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id"), "queue_id": qid})
}

func (h *Handler) apiDelete(w http.ResponseWriter, r *http.Request, p principal) {
	if err := h.remove(r.Context(), p, r.PathValue("id"), r.RemoteAddr); err != nil {
		h.apiFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": r.PathValue("id")})
}

// apiRescan starts a re-scan of the messages that match the filters (in
// the query string or a form body). It waits for the end and answers
// with the report, unless async=true: then it answers 202 at once with
// the job, whose progress GET /api/rescans/{job} tells. Either way the
// re-scan runs to its end if the client goes away.
func (h *Handler) apiRescan(w http.ResponseWriter, r *http.Request, p principal) {
	if err := r.ParseForm(); err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	f, err := parseFilters(r.Form, h.cfg.Now())
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	j, err := h.startRescan(r.Context(), p, f, nil, r.RemoteAddr)
	if err != nil {
		h.apiFail(w, r, err)
		return
	}
	loc := h.url("/api/rescans/" + j.id)
	w.Header().Set("Location", loc)
	if async, _ := strconv.ParseBool(r.Form.Get("async")); async {
		writeJSON(w, http.StatusAccepted, j.status())
		return
	}
	select {
	case <-j.done:
		writeJSON(w, http.StatusOK, j.status())
	case <-r.Context().Done():
	}
}

func (h *Handler) apiRescanStatus(w http.ResponseWriter, r *http.Request, p principal) {
	j := h.jobs.get(r.PathValue("job"))
	if j == nil || !j.visibleTo(p) {
		jsonError(w, http.StatusNotFound, "no such re-scan")
		return
	}
	writeJSON(w, http.StatusOK, j.status())
}
