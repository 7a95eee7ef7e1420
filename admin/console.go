package admin

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var funcs = template.FuncMap{
	"inert": inert,
	"plain": plain,
	"size":  humanSize,
	"ts":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"depth": func(d int) int { return min(d, 9) },
}

// pages are parsed once: the layout with each page's content.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, p := range []string{"login", "list", "message", "rescan", "fleet", "error"} {
		out[p] = template.Must(template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html"))
	}
	return out
}()

// pageData is what every page template gets.
type pageData struct {
	Title   string
	Base    string
	CSRF    string
	Note    string
	Error   string
	Who     *principal
	Refresh int

	// The list.
	List      listing
	Rows      []row
	F         map[string]string
	Filtered  bool
	Total     int
	MaxScan   int
	Query     template.URL
	NextQuery template.URL

	// The message view.
	Msg    *messageView
	CanAct bool

	// A re-scan.
	Job *jobStatus

	// The fleet page, and whether the header links to it (an admin, with
	// a fleet configured).
	Fleet    *fleetView
	HasFleet bool
}

// With is the list's query string with one filter set.
func (d pageData) With(key, value string) template.URL {
	v := url.Values{}
	for k, s := range d.F {
		v.Set(k, s)
	}
	v.Set(key, value)
	return template.URL(v.Encode())
}

type row struct {
	ID      string
	HeldISO string
	Age     string
	From    string
	To      string
	Subject string
	Size    int64
	Symbols []string
	Action  string
	Score   float64
}

func (h *Handler) render(w http.ResponseWriter, code int, name string, d pageData) {
	d.Base = h.cfg.BasePath
	d.HasFleet = h.cfg.Fleet != nil && d.Who != nil && d.Who.Admin
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		h.log.Error("admin: rendering a page failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) renderError(w http.ResponseWriter, s *session, code int, msg string) {
	d := pageData{Title: http.StatusText(code), Error: msg}
	if s != nil {
		d.Who, d.CSRF = &s.who, s.csrf
	}
	h.render(w, code, "error", d)
}

// page wraps a console page: a session is required (otherwise the
// login page), and a quarantine.
func (h *Handler) page(fn func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := h.session(r)
		if s == nil {
			http.Redirect(w, r, h.url("/quarantine/login"), http.StatusSeeOther)
			return
		}
		if h.cfg.Quarantine == nil {
			h.renderError(w, s, http.StatusServiceUnavailable, "No quarantine is configured.")
			return
		}
		fn(w, r, s)
	}
}

// form wraps a console POST: a session (401), a same-origin request and
// the session's CSRF token in the form (403).
func (h *Handler) form(fn func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		s := h.session(r)
		if s == nil {
			h.renderError(w, nil, http.StatusUnauthorized, "Log in first.")
			return
		}
		if err := r.ParseForm(); err != nil {
			h.renderError(w, s, http.StatusBadRequest, "The form could not be read.")
			return
		}
		if !sameOrigin(r) || !sameString(r.PostForm.Get("csrf"), s.csrf) {
			h.cfg.Metrics.Add("portcullis_admin_refused_total", 1, "reason", "csrf")
			h.log.Warn("admin: form refused: bad CSRF token or origin", "who", s.who.Name, "path", r.URL.Path,
				"origin", r.Header.Get("Origin"), "remote", r.RemoteAddr)
			h.renderError(w, s, http.StatusForbidden, "The form has expired or did not come from this console; reload the page and try again.")
			return
		}
		if h.cfg.Quarantine == nil && r.URL.Path != "/quarantine/logout" {
			h.renderError(w, s, http.StatusServiceUnavailable, "No quarantine is configured.")
			return
		}
		fn(w, r, s)
	}
}

const listPage = 50

func (h *Handler) pageList(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.URL.Query()
	d := pageData{Title: "Held mail", Who: &s.who, CSRF: s.csrf, MaxScan: h.cfg.MaxScan, Note: note(v)}
	f, err := parseFilters(v, h.cfg.Now())
	if err != nil {
		d.Error = "Filter " + err.Error()
	}
	d.F = map[string]string{}
	fv := f.values()
	for k := range fv {
		d.F[k] = fv.Get(k)
	}
	d.Filtered = !f.empty()
	d.Query = template.URL(fv.Encode())
	before := heldID(v.Get("before"))
	if before != "" && !validID(string(before)) {
		before = ""
	}
	ctx := r.Context()
	d.List, err = h.list(ctx, s.who, f, before, listPage)
	if err != nil {
		h.log.Error("admin: listing failed", "who", s.who.Name, "err", err)
		h.renderError(w, s, status(err), "The quarantine could not be listed.")
		return
	}
	if d.Filtered {
		all, err := h.list(ctx, s.who, filters{}, "", 1)
		if err == nil {
			d.Total = all.Matched
		}
	}
	if d.List.Next != "" {
		nv := f.values()
		nv.Set("before", string(d.List.Next))
		d.NextQuery = template.URL(nv.Encode())
	}
	now := h.cfg.Now()
	for _, it := range d.List.Items {
		d.Rows = append(d.Rows, row{ID: string(it.ID), HeldISO: it.HeldAt.UTC().Format(time.RFC3339), Age: age(now.Sub(it.HeldAt)),
			From: clip(orNull(it.Envelope.MailFrom), 80), To: clip(strings.Join(it.Envelope.RcptTo, ", "), 120),
			Subject: clip(h.subject(ctx, it.ID), 160), Size: it.Size, Symbols: uniqueSymbols(it.Symbols),
			Action: it.Action.String(), Score: it.Score})
	}
	h.render(w, http.StatusOK, "list", d)
}

func orNull(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

// notes are the messages a redirect after an action may show: fixed
// texts picked by a code, so that no text in a URL reaches the page.
var notes = map[string]string{
	"released":        "Released to its recipients.",
	"deleted":         "Deleted.",
	"rescan-released": "Re-scanned: now clean, so released.",
	"rescan-kept":     "Re-scanned: still flagged; kept with the new verdict.",
	"rescan-failed":   "Re-scanned: undecided (an engine may be down); kept unchanged.",
	"rescan-skipped":  "Not re-scanned: the message is busy under another operation.",
}

func note(v url.Values) string {
	code := v.Get("note")
	if code == "bulk" {
		ok, _ := strconv.Atoi(v.Get("ok"))
		bad, _ := strconv.Atoi(v.Get("failed"))
		return fmt.Sprintf("%s: %d done, %d failed.", bulkVerb[v.Get("action")], ok, bad)
	}
	return notes[code]
}

var bulkVerb = map[string]string{"release": "Released", "delete": "Deleted", "": "Done"}

func (h *Handler) pageMessage(w http.ResponseWriter, r *http.Request, s *session) {
	it, raw, err := h.fetch(r.Context(), s.who, r.PathValue("id"))
	if errors.Is(err, errCorrupt) {
		h.renderError(w, s, http.StatusInternalServerError, "The stored message fails its checksum: it is kept, and cannot be shown or released; it can be deleted.")
		return
	}
	if err != nil {
		h.renderError(w, s, status(err), messageError(err))
		return
	}
	v := h.view(it, raw)
	h.render(w, http.StatusOK, "message", pageData{Title: v.Subject, Who: &s.who, CSRF: s.csrf,
		Msg: &v, CanAct: s.who.canAct(it), Note: note(r.URL.Query())})
}

func messageError(err error) string {
	switch status(err) {
	case http.StatusNotFound:
		return "No such message: it may have been released, deleted or expired."
	case http.StatusConflict:
		return "The message is busy under another operation; try again in a moment."
	case http.StatusForbidden:
		return "This message is also addressed to others: ask an administrator."
	case http.StatusServiceUnavailable:
		return "Re-scans are not available: no pipeline is configured."
	case http.StatusBadRequest:
		return "Too many messages selected."
	}
	return "The quarantine failed; the log says why."
}

func (h *Handler) pageRaw(w http.ResponseWriter, r *http.Request, s *session) {
	it, raw, err := h.fetch(r.Context(), s.who, r.PathValue("id"))
	if err != nil {
		h.renderError(w, s, status(err), messageError(err))
		return
	}
	h.log.Info("admin: raw message downloaded", "who", s.who.Name, "via", s.who.Via, "id", it.ID, "remote", r.RemoteAddr)
	writeRaw(w, it, raw)
}

func (h *Handler) postAction(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	ctx := r.Context()
	var err error
	var to string
	switch r.PathValue("action") {
	case "release":
		_, err = h.release(ctx, s.who, id, r.RemoteAddr)
		to = "/quarantine?note=released"
	case "delete":
		err = h.remove(ctx, s.who, id, r.RemoteAddr)
		to = "/quarantine?note=deleted"
	case "rescan":
		var res string
		res, err = h.rescanOne(ctx, s.who, id, r.RemoteAddr)
		to = "/quarantine/m/" + id + "?note=rescan-" + res
		if res == "released" {
			to = "/quarantine?note=rescan-released"
		}
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.renderError(w, s, status(err), messageError(err))
		return
	}
	http.Redirect(w, r, h.url(to), http.StatusSeeOther)
}

// rescanOne re-scans one message now and says what became of it:
// released, kept, failed or skipped.
func (h *Handler) rescanOne(ctx context.Context, p principal, id, remote string) (string, error) {
	it, err := h.actable(ctx, p, id)
	if err != nil {
		return "", err
	}
	pipe := h.pipeline()
	if pipe == nil {
		return "", errNoPipeline
	}
	rep, err := h.cfg.Quarantine.Rescan(ctx, pipe, rescanOptions{Filter: narrow(targetOf(it)), Run: "console-one-" + randomString(6)})
	h.counted("rescan", err)
	h.subjects.Remove(it.ID)
	if err != nil {
		h.log.Warn("admin: re-scan failed", "who", p.Name, "via", p.Via, "id", it.ID, "remote", remote, "err", err)
		return "", err
	}
	res := "kept"
	switch {
	case rep.Released > 0:
		res = "released"
	case rep.Failed > 0:
		res = "failed"
	case rep.Kept == 0:
		res = "skipped"
	}
	h.log.Info("admin: re-scanned", "who", p.Name, "via", p.Via, "id", it.ID, "result", res, "remote", remote)
	return res, nil
}

func (h *Handler) postBulk(w http.ResponseWriter, r *http.Request, s *session) {
	ids := r.PostForm["id"]
	action := r.PostForm.Get("action")
	if len(ids) == 0 {
		http.Redirect(w, r, h.url("/quarantine"), http.StatusSeeOther)
		return
	}
	if len(ids) > maxSelected {
		h.renderError(w, s, http.StatusBadRequest, messageError(errTooMany))
		return
	}
	ctx := r.Context()
	var ok, bad int
	switch action {
	case "rescan":
		j, err := h.startRescan(ctx, s.who, filters{}, ids, r.RemoteAddr)
		if err != nil {
			h.renderError(w, s, status(err), jobError(err))
			return
		}
		http.Redirect(w, r, h.url("/quarantine/rescan/"+j.id), http.StatusSeeOther)
		return
	case "release", "delete":
		for _, id := range ids {
			var err error
			if action == "release" {
				_, err = h.release(ctx, s.who, id, r.RemoteAddr)
			} else {
				err = h.remove(ctx, s.who, id, r.RemoteAddr)
			}
			if err != nil {
				bad++
			} else {
				ok++
			}
		}
	default:
		h.renderError(w, s, http.StatusBadRequest, "Pick an action.")
		return
	}
	v := url.Values{"note": {"bulk"}, "action": {action}, "ok": {strconv.Itoa(ok)}, "failed": {strconv.Itoa(bad)}}
	http.Redirect(w, r, h.url("/quarantine?"+v.Encode()), http.StatusSeeOther)
}

func jobError(err error) string {
	switch {
	case errors.Is(err, errJobRunning):
		return "A re-scan is already running; wait for it to end."
	case errors.Is(err, errClosed):
		return "The gateway is shutting down; start the re-scan again after it restarts."
	}
	return messageError(err)
}

func (h *Handler) postRescan(w http.ResponseWriter, r *http.Request, s *session) {
	f, err := parseFilters(r.PostForm, h.cfg.Now())
	if err != nil {
		h.renderError(w, s, http.StatusBadRequest, "Filter "+err.Error())
		return
	}
	j, err := h.startRescan(r.Context(), s.who, f, nil, r.RemoteAddr)
	if err != nil {
		h.renderError(w, s, status(err), jobError(err))
		return
	}
	http.Redirect(w, r, h.url("/quarantine/rescan/"+j.id), http.StatusSeeOther)
}

func (h *Handler) pageRescan(w http.ResponseWriter, r *http.Request, s *session) {
	j := h.jobs.get(r.PathValue("job"))
	if j == nil || !j.visibleTo(s.who) {
		h.renderError(w, s, http.StatusNotFound, "No such re-scan (the console keeps the last few).")
		return
	}
	st := j.status()
	d := pageData{Title: "Re-scan " + st.ID, Who: &s.who, CSRF: s.csrf, Job: &st}
	if st.State == "running" {
		d.Refresh = 1
	}
	h.render(w, http.StatusOK, "rescan", d)
}

var staticTypes = map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

func (h *Handler) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := fs.ReadFile(staticFS, "static/"+name)
	ct, known := staticTypes[path.Ext(name)]
	if err != nil || !known || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "max-age=3600")
	_, _ = w.Write(b)
}

func humanSize(n int64) string {
	switch {
	case n < 1000:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1000)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(max(0, int(d/time.Second))) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}
