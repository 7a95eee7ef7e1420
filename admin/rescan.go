package admin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

var (
	errJobRunning = errors.New("admin: a re-scan is already running")
	errClosed     = errors.New("admin: handler closed")
)

// maxJobErrors is how many failures in a row stop a re-scan: a store
// that fails every call is down, and hammering it helps nobody.
const maxJobErrors = 10

// target is one message a re-scan covers, with what narrows the
// quarantine's query to it.
type target struct {
	ID     heldID
	HeldAt time.Time
	From   string
	To     string
}

// job is one re-scan started from the API or the console. The messages
// it covers are fixed when it starts; it re-scans them one at a time, so
// that its progress is exact and its selection can use every filter
// (engine and text too), under the quarantine's own rate limit. It keeps
// one run name for all of them: starting it again after an interruption
// skips what it already did.
type job struct {
	id      string
	run     string
	who     principal
	filters filters
	targets []target
	started time.Time
	remote  string
	done    chan struct{}

	mu        sync.Mutex
	processed int
	rep       rescanReport
	finished  time.Time
	state     string // running, done, failed, cancelled
	err       error
	truncated bool
}

// jobStatus is a job as the API and the progress page show it.
type jobStatus struct {
	ID        string            `json:"id"`
	Run       string            `json:"run"`
	State     string            `json:"state"`
	Who       string            `json:"who"`
	Filters   map[string]string `json:"filters,omitempty"`
	Total     int               `json:"total"`
	Processed int               `json:"processed"`
	Scanned   int               `json:"scanned"`
	Released  int               `json:"released"`
	Kept      int               `json:"kept"`
	Skipped   int               `json:"skipped"`
	Failed    int               `json:"failed"`
	Started   time.Time         `json:"started"`
	Finished  *time.Time        `json:"finished,omitempty"`
	Error     string            `json:"error,omitempty"`
	Truncated bool              `json:"truncated,omitempty"`
}

func (j *job) status() jobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := jobStatus{ID: j.id, Run: j.run, State: j.state, Who: j.who.Name, Total: len(j.targets), Processed: j.processed,
		Scanned: j.rep.Scanned, Released: j.rep.Released, Kept: j.rep.Kept, Skipped: j.rep.Skipped, Failed: j.rep.Failed,
		Started: j.started.UTC(), Truncated: j.truncated}
	if v := j.filters.values(); len(v) > 0 {
		s.Filters = map[string]string{}
		for k := range v {
			s.Filters[k] = v.Get(k)
		}
	}
	if !j.finished.IsZero() {
		t := j.finished.UTC()
		s.Finished = &t
	}
	if j.err != nil {
		s.Error = j.err.Error()
	}
	return s
}

func (j *job) visibleTo(p principal) bool {
	return p.Admin || p.Name == j.who.Name && p.Via == j.who.Via
}

// jobs keeps the running re-scan and the last finished ones.
type jobs struct {
	mu      sync.Mutex
	m       map[string]*job
	order   []string
	keep    int
	running *job
}

func newJobs(keep int) *jobs { return &jobs{m: map[string]*job{}, keep: keep} }

func (js *jobs) get(id string) *job {
	js.mu.Lock()
	defer js.mu.Unlock()
	return js.m[id]
}

// add registers j as the running job, or refuses while another runs:
// two bulk re-scans at once would only compete for the same scanners.
func (js *jobs) add(j *job) error {
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.running != nil {
		return fmt.Errorf("%w (%s, started by %s)", errJobRunning, js.running.id, js.running.who.Name)
	}
	js.running = j
	js.m[j.id] = j
	js.order = append(js.order, j.id)
	for len(js.order) > js.keep {
		delete(js.m, js.order[0])
		js.order = js.order[1:]
	}
	return nil
}

func (js *jobs) finish(j *job) {
	js.mu.Lock()
	if js.running == j {
		js.running = nil
	}
	js.mu.Unlock()
}

// startRescan starts a re-scan of the messages p may act on that match
// f, or of the given IDs when ids is not nil.
func (h *Handler) startRescan(ctx context.Context, p principal, f filters, ids []string, remote string) (*job, error) {
	if h.ctx.Err() != nil {
		return nil, errClosed
	}
	pipe := h.pipeline()
	if pipe == nil {
		return nil, errNoPipeline
	}
	j := &job{id: randomString(9), who: p, filters: f, started: h.cfg.Now(), remote: remote,
		done: make(chan struct{}), state: "running"}
	j.run = "console-" + j.id
	var err error
	if ids != nil {
		j.targets, err = h.targetsByID(ctx, p, ids)
	} else {
		j.targets, j.truncated, err = h.targetsByFilter(ctx, p, f)
	}
	if err != nil {
		return nil, err
	}
	h.closeMu.Lock()
	defer h.closeMu.Unlock()
	if h.ctx.Err() != nil {
		return nil, errClosed // Close is waiting: no new work
	}
	if err := h.jobs.add(j); err != nil {
		return nil, err
	}
	h.counted("bulk-rescan", nil)
	h.log.Info("admin: re-scan started", "who", p.Name, "via", p.Via, "job", j.id, "messages", len(j.targets),
		"filters", f.values().Encode(), "remote", remote)
	h.wg.Add(1)
	go h.runJob(j)
	return j, nil
}

func (h *Handler) targetsByFilter(ctx context.Context, p principal, f filters) ([]target, bool, error) {
	q := f.query()
	q.Limit = min(scanPage, h.cfg.MaxScan)
	var out []target
	scanned := 0
	for {
		pg, err := h.cfg.Quarantine.List(ctx, q)
		if err != nil {
			return nil, false, err
		}
		for _, it := range pg.Items {
			scanned++
			if p.canAct(it) && f.matchRest(it, h.subjectIfNeeded(ctx, f, it)) {
				out = append(out, targetOf(it))
			}
		}
		if pg.Next == "" || len(pg.Items) == 0 {
			return out, false, nil
		}
		if scanned >= h.cfg.MaxScan {
			return out, true, nil
		}
		q.After = pg.Next
	}
}

const maxSelected = 1000

func (h *Handler) targetsByID(ctx context.Context, p principal, ids []string) ([]target, error) {
	if len(ids) > maxSelected {
		return nil, fmt.Errorf("%w: %d messages selected; %d at most", errTooMany, len(ids), maxSelected)
	}
	var out []target
	for _, id := range ids {
		it, err := h.actable(ctx, p, id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		out = append(out, targetOf(it))
	}
	return out, nil
}

var errTooMany = errors.New("admin: too many messages")

func targetOf(it held) target {
	t := target{ID: it.ID, HeldAt: it.HeldAt, From: it.Envelope.MailFrom}
	if len(it.Envelope.RcptTo) > 0 {
		t.To = it.Envelope.RcptTo[0]
	}
	return t
}

// narrow is the query that selects t: its hold time to the millisecond,
// its sender and a recipient. Another message held in the same
// millisecond from the same sender to the same recipient would be
// re-scanned with it, and skipped (already done by this run) when its
// own turn comes.
func narrow(t target) query {
	return query{Since: t.HeldAt, Until: t.HeldAt.Add(time.Millisecond), Sender: t.From, Recipient: t.To}
}

func (h *Handler) runJob(j *job) {
	defer h.wg.Done()
	defer close(j.done)
	defer h.jobs.finish(j)
	pipe := h.pipeline()
	inRow := 0
	for _, t := range j.targets {
		if pipe == nil {
			j.end("failed", errNoPipeline, h.cfg.Now())
			return
		}
		rep, err := h.cfg.Quarantine.Rescan(h.ctx, pipe, rescanOptions{Filter: narrow(t), Run: j.run})
		j.mu.Lock()
		j.processed++
		j.rep.Scanned += rep.Scanned
		j.rep.Released += rep.Released
		j.rep.Kept += rep.Kept
		j.rep.Skipped += rep.Skipped
		j.rep.Failed += rep.Failed
		j.mu.Unlock()
		h.subjects.Remove(t.ID)
		switch {
		case h.ctx.Err() != nil:
			j.end("cancelled", h.ctx.Err(), h.cfg.Now())
			return
		case err != nil:
			inRow++
			h.log.Warn("admin: re-scan of a message failed", "job", j.id, "id", t.ID, "err", err)
			j.mu.Lock()
			j.rep.Failed++
			j.err = err
			j.mu.Unlock()
			if inRow == maxJobErrors {
				j.end("failed", fmt.Errorf("stopped after %d failures in a row: %w", inRow, err), h.cfg.Now())
				return
			}
		default:
			inRow = 0
		}
	}
	j.end("done", nil, h.cfg.Now())
	st := j.status()
	h.log.Info("admin: re-scan finished", "who", j.who.Name, "via", j.who.Via, "job", j.id, "messages", st.Total,
		"released", st.Released, "kept", st.Kept, "skipped", st.Skipped, "failed", st.Failed,
		"seconds", h.cfg.Now().Sub(j.started).Seconds())
}

func (j *job) end(state string, err error, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.state = state
	j.finished = now
	if err != nil {
		j.err = err
	}
}

func (h *Handler) pipeline() *filter.Pipeline {
	if h.cfg.Pipeline == nil {
		return nil
	}
	return h.cfg.Pipeline()
}
