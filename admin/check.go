package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/portcullis-mail/portcullis/filter"
)

// apiCheck is POST /api/check: the pipeline's verdict on the message in
// the request body, with the envelope in the query string, as a JSON
// filter.Verdict. Nothing is queued, held or logged per message: the
// caller (an MTA's content filter, a script) carries the verdict out.
// A message over Limits.MaxMessageBytes answers 413 and nothing is
// judged; the body is spooled as a gateway spools a DATA (memory, then
// an unlinked temporary file), so a check holds at most 1 MiB of it in
// memory. At most MaxChecks checks are judged at once; the others wait
// for a slot (their message read) while their client does.
func (h *Handler) apiCheck(w http.ResponseWriter, r *http.Request) {
	who, ok := h.apiPrincipal(r)
	if !ok {
		h.unauthorized(w, r)
		return
	}
	if !who.Admin {
		jsonError(w, http.StatusForbidden, "checks are for admins")
		return
	}
	p := h.pipeline()
	if p == nil {
		jsonError(w, http.StatusServiceUnavailable, "no pipeline to check with")
		return
	}
	env, err := checkEnvelope(r)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	lim := h.cfg.Limits
	sp, err := filter.NewSpool(r.Context(), r.Body, filter.SpoolConfig{MaxBytes: h.maxMessage})
	if err != nil {
		var le *filter.LimitError
		if errors.As(err, &le) {
			h.cfg.Metrics.Add("portcullis_admin_checks_total", 1, "action", "too_large")
			jsonError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the message is over %d bytes", h.maxMessage))
			return
		}
		h.log.Warn("admin: check: reading the message", "remote", r.RemoteAddr, "err", err)
		jsonError(w, http.StatusBadRequest, "reading the message: "+err.Error())
		return
	}
	defer sp.Close()
	// The slot is taken once the body is read: only then does the
	// server notice a client that gives up.
	select {
	case h.checks <- struct{}{}:
		defer func() { <-h.checks }()
	case <-r.Context().Done():
		// The client gave up waiting for a slot: checks are coming in
		// faster than they are judged.
		h.cfg.Metrics.Add("portcullis_admin_checks_total", 1, "action", "abandoned")
		return
	}
	if r.Context().Err() != nil {
		h.cfg.Metrics.Add("portcullis_admin_checks_total", 1, "action", "abandoned")
		return
	}
	m := filter.NewMessage(env, sp, sp.Size(), lim)
	if raw, ok := sp.Bytes(); ok {
		m = filter.NewMessageBytes(env, raw, lim) // the filters read it in place
	}
	v := p.CheckAll(r.Context(), m)
	h.cfg.Metrics.Add("portcullis_admin_checks_total", 1, "action", v.Action.String())
	writeJSON(w, http.StatusOK, v)
}

// checkEnvelope reads a check's envelope from the query string: ip, helo,
// hostname, from, rcpt (repeatable), user and tls (a boolean).
func checkEnvelope(r *http.Request) (filter.Envelope, error) {
	q := r.URL.Query()
	env := filter.Envelope{
		Helo:     q.Get("helo"),
		Hostname: q.Get("hostname"),
		MailFrom: strings.Trim(q.Get("from"), "<>"),
		AuthUser: q.Get("user"),
	}
	for _, rc := range q["rcpt"] {
		env.RcptTo = append(env.RcptTo, strings.Trim(rc, "<>"))
	}
	if s := q.Get("ip"); s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return env, fmt.Errorf("bad ip: %q is not an IP address", s)
		}
		env.ClientIP = ip.Unmap()
	}
	if s := q.Get("tls"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return env, fmt.Errorf("bad tls: %q is not a boolean", s)
		}
		env.TLS = b
	}
	return env, nil
}
