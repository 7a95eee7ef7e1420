package admin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// principal is who makes a request: the admin token, or a user.
type principal struct {
	Name       string
	Via        string // "token" or "password"
	Admin      bool
	Recipients []string // lower case; "@domain" for a whole domain
}

func (p principal) owns(addr string) bool {
	a := strings.ToLower(addr)
	for _, r := range p.Recipients {
		if r == a || strings.HasPrefix(r, "@") && strings.HasSuffix(a, r) {
			return true
		}
	}
	return false
}

// canSee: an admin sees everything, a user the mail of any of theirs.
func (p principal) canSee(h held) bool {
	if p.Admin {
		return true
	}
	for _, r := range h.Envelope.RcptTo {
		if p.owns(r) {
			return true
		}
	}
	return false
}

// canAct: releasing or deleting a message acts for all its recipients,
// so a user may do it only when every one of them is theirs.
func (p principal) canAct(h held) bool {
	if p.Admin {
		return true
	}
	if len(h.Envelope.RcptTo) == 0 {
		return false
	}
	for _, r := range h.Envelope.RcptTo {
		if !p.owns(r) {
			return false
		}
	}
	return true
}

func userPrincipal(u User) principal {
	p := principal{Name: u.Name, Via: "password", Admin: u.Admin}
	for _, r := range u.Recipients {
		if r = strings.ToLower(strings.TrimSpace(r)); r != "" {
			p.Recipients = append(p.Recipients, r)
		}
	}
	return p
}

var tokenPrincipal = principal{Name: "admin-token", Via: "token", Admin: true}

// session is one console login. Its CSRF token goes into every form
// and must come back with every POST.
type session struct {
	id      string
	csrf    string
	who     principal
	expires time.Time
	created time.Time
}

// sessions are kept in memory: a restart logs everyone out, and a
// logout or an expiry ends a session for good (no signed cookie stays
// valid after it).
type sessions struct {
	mu  sync.Mutex
	m   map[string]*session
	max int
	ttl time.Duration
	now func() time.Time
}

func newSessions(max int, ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{m: map[string]*session{}, max: max, ttl: ttl, now: now}
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) create(who principal) *session {
	now := s.now()
	ss := &session{id: randomString(32), csrf: randomString(32), who: who, created: now, expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, o := range s.m {
		if !now.Before(o.expires) {
			delete(s.m, id)
		}
	}
	for len(s.m) >= s.max {
		var oldest *session
		for _, o := range s.m {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(s.m, oldest.id)
	}
	s.m[ss.id] = ss
	return ss
}

func (s *sessions) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.m[id]
	if ss == nil {
		return nil
	}
	if !s.now().Before(ss.expires) {
		delete(s.m, id)
		return nil
	}
	return ss
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

const (
	sessionCookie = "portcullis_session"
	loginCookie   = "portcullis_login" // the login form's CSRF token
)

func (h *Handler) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	path := h.cfg.BasePath + "/quarantine"
	return &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: h.cfg.SecureCookies || r.TLS != nil,
	}
}

// session returns the request's live session, or nil.
func (h *Handler) session(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	return h.sessions.get(c.Value)
}

func sameString(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// sameOrigin refuses a POST whose Origin header names another site (a
// second line behind SameSite=Strict and the CSRF token). Browsers
// always send Origin with a POST; tools may send none.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" && r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	i := strings.Index(o, "://")
	return i >= 0 && strings.EqualFold(o[i+3:], r.Host)
}

// authenticate checks a login: the admin token (any user name, or none)
// or a user's password. It takes a bcrypt comparison's time whether or
// not the user exists.
func (h *Handler) authenticate(name, password string) (principal, bool) {
	if name == "" || name == "admin" {
		if h.tokenOK(password) {
			return tokenPrincipal, true
		}
		if name == "" {
			return principal{}, false
		}
	}
	u, ok := h.users[name]
	hash := []byte(u.PasswordHash)
	if !ok {
		hash = h.dummyHash()
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !ok {
		return principal{}, false
	}
	return userPrincipal(u), true
}

func (h *Handler) dummyHash() []byte {
	h.dummyOnce.Do(func() {
		b, err := bcrypt.GenerateFromPassword([]byte(randomString(16)), bcrypt.DefaultCost)
		if err == nil {
			h.dummy = b
		}
	})
	return h.dummy
}
