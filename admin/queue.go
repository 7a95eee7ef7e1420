package admin

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/portcullis-mail/portcullis/queue"
)

// Queue is what the admin handler needs of the delivery queue for the
// /api/queue routes; the local *queue.Queue and the shared
// *jetstream.Queue (package queue/jetstream: every entry of the shared
// queue, whichever gateway enqueued it) satisfy it.
type Queue interface {
	// Entries returns a snapshot of every entry.
	Entries() []queue.Entry
	// Entry returns one entry (queue.ErrNotFound when absent).
	Entry(id queue.ID) (queue.Entry, error)
	// Retry makes an entry due now (a held one is released).
	Retry(ctx context.Context, id queue.ID) error
	// Bounce gives up on an entry's pending recipients with a DSN now.
	Bounce(ctx context.Context, id queue.ID) error
}

// apiEntry is a queue entry in the API.
type apiEntry struct {
	ID          string     `json:"id"`
	State       string     `json:"state"`
	From        string     `json:"from"`
	To          []string   `json:"to"`
	Pending     []string   `json:"pending"`
	Size        int64      `json:"size"`
	Created     time.Time  `json:"created"`
	Attempts    int        `json:"attempts"`
	Inflight    bool       `json:"inflight,omitempty"`
	Crashes     int        `json:"crashes,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
}

func toAPIEntry(e queue.Entry) apiEntry {
	a := apiEntry{ID: string(e.ID), State: e.State.String(), From: e.Envelope.MailFrom, To: e.Envelope.RcptTo,
		Pending: e.Pending(), Size: e.Size, Created: e.Created.UTC(), Attempts: e.Attempts, Inflight: e.Inflight,
		Crashes: e.Crashes, LastError: e.LastError}
	if a.To == nil {
		a.To = []string{}
	}
	if a.Pending == nil {
		a.Pending = []string{}
	}
	if e.State == queue.Queued && !e.NextAttempt.IsZero() {
		t := e.NextAttempt.UTC()
		a.NextAttempt = &t
	}
	return a
}

// apiQueue wraps a queue route: the admin token or an admin user (a
// user scoped to recipients may not see the queue: 403), and a queue
// (503 without one).
func (h *Handler) apiQueue(fn func(w http.ResponseWriter, r *http.Request, p principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, ok := h.apiPrincipal(r)
		if !ok {
			h.unauthorized(w, r)
			return
		}
		if !who.Admin {
			jsonError(w, http.StatusForbidden, "the queue is for admins")
			return
		}
		if h.cfg.Queue == nil {
			jsonError(w, http.StatusServiceUnavailable, "no queue to operate on")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		fn(w, r, who)
	}
}

// queueStatus maps a queue error to an HTTP status.
func queueStatus(err error) int {
	switch {
	case errors.Is(err, queue.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, queue.ErrInFlight):
		return http.StatusConflict
	case errors.Is(err, queue.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (h *Handler) queueFail(w http.ResponseWriter, r *http.Request, err error) {
	code := queueStatus(err)
	if code == http.StatusInternalServerError {
		h.log.Error("admin: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	jsonError(w, code, err.Error())
}

// apiQueueList lists entries in ID order (IDs sort by enqueue time),
// limit at a time (1 to 500, 50 by default), from after=<ID> on; state=
// queued|held selects.
func (h *Handler) apiQueueList(w http.ResponseWriter, r *http.Request, _ principal) {
	v := r.URL.Query()
	limit, err := pageLimit(v.Get("limit"), 50, 500)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	after := v.Get("after")
	if after != "" && !validID(after) {
		jsonError(w, http.StatusBadRequest, "after: not a queue ID")
		return
	}
	state := v.Get("state")
	if state != "" && state != queue.Queued.String() && state != queue.Held.String() {
		jsonError(w, http.StatusBadRequest, "state: queued or held")
		return
	}
	es := h.cfg.Queue.Entries()
	slices.SortFunc(es, func(a, b queue.Entry) int { return compareIDs(a.ID, b.ID) })
	out := struct {
		Items []apiEntry `json:"items"`
		Total int        `json:"total"`
		Held  int        `json:"held"`
		Next  string     `json:"next,omitempty"`
	}{Items: []apiEntry{}, Total: len(es)}
	for _, e := range es {
		if e.State == queue.Held {
			out.Held++
		}
		if state != "" && e.State.String() != state || after != "" && e.ID <= queue.ID(after) {
			continue
		}
		if len(out.Items) == limit {
			out.Next = out.Items[limit-1].ID
			continue
		}
		out.Items = append(out.Items, toAPIEntry(e))
	}
	writeJSON(w, http.StatusOK, out)
}

func compareIDs(a, b queue.ID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// queueID reads the {id} path value (400 for what cannot be an ID).
func queueID(w http.ResponseWriter, r *http.Request) (queue.ID, bool) {
	id := r.PathValue("id")
	if !validID(id) {
		jsonError(w, http.StatusBadRequest, "not a queue ID")
		return "", false
	}
	return queue.ID(id), true
}

func (h *Handler) apiQueueGet(w http.ResponseWriter, r *http.Request, _ principal) {
	id, ok := queueID(w, r)
	if !ok {
		return
	}
	e, err := h.cfg.Queue.Entry(id)
	if err != nil {
		h.queueFail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIEntry(e))
}

// apiQueueAct runs Retry or Bounce and logs who did it.
func (h *Handler) apiQueueAct(action string, fn func(context.Context, queue.ID) error) func(http.ResponseWriter, *http.Request, principal) {
	return func(w http.ResponseWriter, r *http.Request, p principal) {
		id, ok := queueID(w, r)
		if !ok {
			return
		}
		err := fn(r.Context(), id)
		h.counted("queue_"+action, err)
		if err != nil {
			h.log.Warn("admin: queue "+action+" failed", "who", p.Name, "via", p.Via, "id", id, "remote", r.RemoteAddr, "err", err)
			h.queueFail(w, r, err)
			return
		}
		h.log.Info("admin: queue "+action, "who", p.Name, "via", p.Via, "id", id, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusOK, map[string]string{"id": string(id), "action": action})
	}
}
