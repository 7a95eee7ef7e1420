package quarantine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/portcullis-mail/portcullis/filter"
)

// RescanOptions selects the messages of a re-scan and names the run.
type RescanOptions struct {
	// Filter selects the messages (After and Limit are ignored: a re-scan
	// covers every match).
	Filter Query
	// Run names the re-scan so that it can be resumed: a message this run
	// already re-scanned and kept is skipped when Rescan is called again
	// with the same Run after an interruption. "" means a new run, named
	// in the report.
	Run string
}

// RescanReport counts what a re-scan did.
type RescanReport struct {
	Run      string
	Matched  int // messages that matched the filter
	Scanned  int // re-scanned by the pipeline in this call
	Released int // now clean, or interrupted releases finished: queued and removed
	Kept     int // still flagged: kept with the new verdict
	Skipped  int // already done by this run, or under another operation
	Failed   int // unreadable, or the pipeline could not decide (tempfail): kept unchanged
}

// Rescan runs pipeline over the quarantined messages that match
// opts.Filter, as they were received (CheckAll with their envelope),
// releases those whose new verdict delivers (accept, add-header), and
// keeps the others with their new verdict. It is rate-limited by
// Config.RescanRate, waits out queue backpressure, and stops
// when ctx ends, returning what it did so far with ctx's error.
//
// Resumable: the release of a message is recorded (Releasing) before it
// is queued and the record removed after, and a kept message records the
// run; calling Rescan again with the same Run finishes interrupted
// releases and skips what the run already did. An interrupted re-scan
// therefore never loses a message, and delivers one twice at most when
// the interruption fell between queueing and removing it.
//
// A verdict of tempfail (an engine still down) leaves the message as it
// was, counted as Failed: it is not clean, and not known to be dirty.
func (m *Manager) Rescan(ctx context.Context, pipeline *filter.Pipeline, opts RescanOptions) (RescanReport, error) {
	rep := RescanReport{Run: opts.Run}
	if rep.Run == "" {
		rep.Run = "rescan-" + strconv.FormatInt(m.cfg.Now().UnixNano(), 36)
	}
	if m.cfg.Queue == nil {
		return rep, ErrNoQueue
	}
	all, err := m.cfg.Store.All(ctx)
	if err != nil {
		return rep, err
	}
	start := time.Now()
	defer func() {
		m.cfg.Logger.InfoContext(ctx, "quarantine: re-scan", "run", rep.Run, "matched", rep.Matched, "scanned", rep.Scanned,
			"released", rep.Released, "kept", rep.Kept, "skipped", rep.Skipped, "failed", rep.Failed,
			"seconds", time.Since(start).Seconds())
	}()
	for _, h := range all {
		if !h.Releasing && !opts.Filter.match(h) {
			continue
		}
		rep.Matched++
		if err := m.rescanOne(ctx, pipeline, h, &rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// rescanOne re-scans one message; an error stops the re-scan (a store or
// queue failure, or ctx).
func (m *Manager) rescanOne(ctx context.Context, pipeline *filter.Pipeline, h Held, rep *RescanReport) error {
	if h.RescanRun == rep.Run && !h.Releasing || !m.begin(h.ID) {
		rep.Skipped++
		return nil
	}
	defer m.end(h.ID)
	if h.Releasing { // a release was interrupted: finish it
		if _, err := m.release(ctx, h, "rescan-resume"); err != nil {
			return err
		}
		rep.Released++
		return nil
	}
	if err := m.limiter.Wait(ctx); err != nil {
		return err
	}
	raw, err := m.read(ctx, h)
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
		m.cfg.Logger.ErrorContext(ctx, "quarantine: re-scan cannot read message; kept", "id", h.ID, "err", err)
		m.cfg.Metrics.Add("portcullis_quarantine_rescanned_total", 1, "result", "failed")
		rep.Failed++
		return nil
	}
	if err != nil {
		return err
	}
	v := pipeline.CheckAll(ctx, filter.NewMessageBytes(h.Envelope, raw, m.cfg.Limits))
	if err := ctx.Err(); err != nil {
		return err // a verdict cut short by cancellation decides nothing
	}
	rep.Scanned++
	switch {
	case v.Action.Delivers():
		if _, err := m.release(ctx, h, "rescan"); err != nil {
			return err
		}
		rep.Released++
		m.cfg.Metrics.Add("portcullis_quarantine_rescanned_total", 1, "result", "released")
	case v.Action == filter.Tempfail:
		rep.Failed++
		m.cfg.Metrics.Add("portcullis_quarantine_rescanned_total", 1, "result", "failed")
		m.cfg.Logger.WarnContext(ctx, "quarantine: re-scan undecided (tempfail); kept unchanged", "id", h.ID, "symbols", fmt.Sprint(v.Symbols))
	default:
		h.Action, h.Score, h.Symbols = v.Action, v.Score, v.Symbols
		h.Rescans++
		h.RescannedAt = time.UnixMilli(m.cfg.Now().UnixMilli())
		h.RescanRun = rep.Run
		if err := m.cfg.Store.Update(ctx, h); err != nil {
			return err
		}
		rep.Kept++
		m.cfg.Metrics.Add("portcullis_quarantine_rescanned_total", 1, "result", "kept")
	}
	return nil
}
