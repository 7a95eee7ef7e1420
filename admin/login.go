package admin

import (
	"net/http"
	"strings"
	"time"
)

// The console's login and logout: the admin token or a user's password,
// a CSRF token of its own for the login form (a cookie and a hidden
// field), and a fresh session ID at every login.

func (h *Handler) pageLogin(w http.ResponseWriter, r *http.Request) {
	if h.session(r) != nil {
		http.Redirect(w, r, h.url("/quarantine"), http.StatusSeeOther)
		return
	}
	h.renderLogin(w, r, http.StatusOK, "")
}

func (h *Handler) renderLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	tok := randomString(24)
	http.SetCookie(w, h.cookie(r, loginCookie, tok, 3600))
	h.render(w, code, "login", pageData{Title: "Log in", CSRF: tok, Error: msg})
}

func (h *Handler) postLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		h.renderLogin(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameOrigin(r) || !sameString(r.PostForm.Get("csrf"), c.Value) {
		h.log.Warn("admin: login refused: bad CSRF token or origin", "remote", r.RemoteAddr)
		h.renderLogin(w, r, http.StatusForbidden, "The login form expired; try again.")
		return
	}
	if h.logins.Tokens() < 1 {
		h.renderLogin(w, r, http.StatusTooManyRequests, "Too many failed logins; wait a moment.")
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("user"))
	who, ok := h.authenticate(name, r.PostForm.Get("password"))
	if !ok {
		h.logins.Allow()
		h.cfg.Metrics.Add("portcullis_admin_logins_total", 1, "result", "refused")
		h.log.Warn("admin: login refused", "user", name, "remote", r.RemoteAddr)
		h.renderLogin(w, r, http.StatusUnauthorized, "Wrong user or password.")
		return
	}
	s := h.sessions.create(who)
	h.cfg.Metrics.Add("portcullis_admin_logins_total", 1, "result", "ok")
	http.SetCookie(w, h.cookie(r, sessionCookie, s.id, int(h.cfg.SessionTTL/time.Second)))
	http.SetCookie(w, h.cookie(r, loginCookie, "", -1))
	h.log.Info("admin: logged in", "who", who.Name, "via", who.Via, "remote", r.RemoteAddr)
	http.Redirect(w, r, h.url("/quarantine"), http.StatusSeeOther)
}

func (h *Handler) postLogout(w http.ResponseWriter, r *http.Request, s *session) {
	h.sessions.remove(s.id)
	http.SetCookie(w, h.cookie(r, sessionCookie, "", -1))
	h.log.Info("admin: logged out", "who", s.who.Name, "via", s.who.Via, "remote", r.RemoteAddr)
	http.Redirect(w, r, h.url("/quarantine/login"), http.StatusSeeOther)
}
