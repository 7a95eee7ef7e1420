package queue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/portcullis-mail/portcullis/filter"
)

// ErrInUse is returned when a quarantined message is under another
// operation (a release, a delete, a re-scan) in this process.
var ErrInUse = errors.New("queue: quarantined message in use")

// Quarantined is a quarantined message's record: its envelope, the verdict
// that put it there, and what re-scans did since.
type Quarantined struct {
	ID       ID
	Envelope filter.Envelope
	Size     int64     // raw message bytes
	Checksum string    // SHA-256 of the raw message, hex
	HeldAt   time.Time // when it was quarantined (to the millisecond)

	// The verdict that put it there, or the last re-scan's.
	Action  filter.Action
	Score   float64
	Symbols []filter.Symbol

	Rescans     int       // re-scans that kept it
	RescannedAt time.Time // the last of them; zero when never
	RescanRun   string    // the re-scan run that last kept it
	// Releasing is set, durably, before a release queues the message and
	// stays until the record is removed: a release interrupted by a crash
	// is finished by the next Rescan or Release (at least once).
	Releasing bool
}

// Reason returns the names of the verdict's symbols, the "why" of a hold.
func (h Quarantined) Reason() []string {
	out := make([]string, len(h.Symbols))
	for i, s := range h.Symbols {
		out[i] = s.Name
	}
	return out
}

func (h Quarantined) clone() Quarantined {
	h.Envelope.RcptTo = slices.Clone(h.Envelope.RcptTo)
	h.Symbols = slices.Clone(h.Symbols)
	return h
}

// Record limits: a record claiming more is corrupt.
const (
	maxHeldSymbols    = 10000
	maxHeldRecipients = 100000
	maxHeldRecord     = 16 << 20
)

// heldMagic starts an encoded Quarantined: "PQH1", the CRC-32C of the JSON that
// follows in 8 hex digits, and the JSON.
const heldMagic = "PQH1"

type heldRecord struct {
	V           int             `json:"v"`
	ID          ID              `json:"id"`
	Envelope    heldEnvelope    `json:"env"`
	Size        int64           `json:"size"`
	Checksum    string          `json:"sha256"`
	HeldAt      int64           `json:"held"`
	Action      filter.Action   `json:"action"`
	Score       float64         `json:"score"`
	Symbols     []filter.Symbol `json:"symbols,omitempty"`
	Rescans     int             `json:"rescans,omitempty"`
	RescannedAt int64           `json:"rescanned,omitempty"`
	RescanRun   string          `json:"run,omitempty"`
	Releasing   bool            `json:"releasing,omitempty"`
}

type heldEnvelope struct {
	ClientIP string   `json:"ip,omitempty"`
	Helo     string   `json:"helo,omitempty"`
	MailFrom string   `json:"from"`
	RcptTo   []string `json:"to"`
	AuthUser string   `json:"auth,omitempty"`
	TLS      bool     `json:"tls,omitempty"`
}

// MarshalBinary encodes the record for a QuarantineStore: a versioned,
// checksummed form that UnmarshalBinary checks.
func (h Quarantined) MarshalBinary() ([]byte, error) {
	r := heldRecord{
		V: 1, ID: h.ID, Size: h.Size, Checksum: h.Checksum, HeldAt: h.HeldAt.UnixMilli(),
		Action: h.Action, Score: h.Score, Symbols: h.Symbols,
		Rescans: h.Rescans, RescanRun: h.RescanRun, Releasing: h.Releasing,
		Envelope: heldEnvelope{Helo: h.Envelope.Helo, MailFrom: h.Envelope.MailFrom, RcptTo: h.Envelope.RcptTo,
			AuthUser: h.Envelope.AuthUser, TLS: h.Envelope.TLS},
	}
	if !h.RescannedAt.IsZero() {
		r.RescannedAt = h.RescannedAt.UnixMilli()
	}
	if h.Envelope.ClientIP.IsValid() {
		r.Envelope.ClientIP = h.Envelope.ClientIP.String()
	}
	js, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("queue: encoding held record: %w", err) // a NaN score
	}
	out := fmt.Appendf([]byte(heldMagic), "%08x", crc32.Checksum(js, castagnoli))
	return append(out, js...), nil
}

// UnmarshalBinary decodes and validates a record written by MarshalBinary.
// Errors match ErrCorrupt.
func (h *Quarantined) UnmarshalBinary(b []byte) error {
	bad := func(why string, args ...any) error {
		return fmt.Errorf("%w: held record: %s", ErrCorrupt, fmt.Sprintf(why, args...))
	}
	if len(b) > maxHeldRecord {
		return bad("%d bytes", len(b))
	}
	if len(b) < len(heldMagic)+8 || string(b[:len(heldMagic)]) != heldMagic {
		return bad("no %s header", heldMagic)
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], b[len(heldMagic):len(heldMagic)+8]); err != nil {
		return bad("checksum: %v", err)
	}
	js := b[len(heldMagic)+8:]
	if crc32.Checksum(js, castagnoli) != uint32(sum[0])<<24|uint32(sum[1])<<16|uint32(sum[2])<<8|uint32(sum[3]) {
		return bad("checksum mismatch")
	}
	var r heldRecord
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return bad("%v", err)
	}
	switch {
	case r.V != 1:
		return bad("version %d", r.V)
	case !validID(string(r.ID)):
		return bad("invalid id")
	case r.Size < 0:
		return bad("size %d", r.Size)
	case len(r.Checksum) != 64:
		return bad("message checksum")
	case len(r.Envelope.RcptTo) == 0 || len(r.Envelope.RcptTo) > maxHeldRecipients:
		return bad("%d recipients", len(r.Envelope.RcptTo))
	case len(r.Symbols) > maxHeldSymbols:
		return bad("%d symbols", len(r.Symbols))
	case r.Rescans < 0:
		return bad("rescans %d", r.Rescans)
	}
	if _, err := hex.DecodeString(r.Checksum); err != nil {
		return bad("message checksum: %v", err)
	}
	out := Quarantined{
		ID: r.ID, Size: r.Size, Checksum: r.Checksum, HeldAt: time.UnixMilli(r.HeldAt),
		Action: r.Action, Score: r.Score, Symbols: r.Symbols,
		Rescans: r.Rescans, RescanRun: r.RescanRun, Releasing: r.Releasing,
		Envelope: filter.Envelope{Helo: r.Envelope.Helo, MailFrom: r.Envelope.MailFrom, RcptTo: r.Envelope.RcptTo,
			AuthUser: r.Envelope.AuthUser, TLS: r.Envelope.TLS},
	}
	if r.RescannedAt != 0 {
		out.RescannedAt = time.UnixMilli(r.RescannedAt)
	}
	if r.Envelope.ClientIP != "" {
		if err := out.Envelope.ClientIP.UnmarshalText([]byte(r.Envelope.ClientIP)); err != nil {
			return bad("client ip: %v", err)
		}
	}
	*h = out
	return nil
}

// QuarantineStore keeps quarantined messages durably. QuarantineDir (a
// directory) and the JetStream backend implement it and pass the same
// conformance suite (queuetest.RunQuarantine).
//
// As with Store, a method that changes the store returns only when the
// change is durable; after an error it may or may not have happened.
// Implementations are safe for concurrent use.
type QuarantineStore interface {
	// Put stores a new record and its raw message (len(raw) == h.Size).
	Put(ctx context.Context, h Quarantined, raw []byte) error
	// Update replaces a record (ErrNotFound if absent); the message never
	// changes.
	Update(ctx context.Context, h Quarantined) error
	// Remove deletes a record and its message (ErrNotFound if absent).
	Remove(ctx context.Context, id ID) error
	// Body opens the raw message (ErrNotFound if absent).
	Body(ctx context.Context, id ID) (Body, error)
	// All returns every record, oldest first (by ID).
	All(ctx context.Context) ([]Quarantined, error)
	// Close releases the store; later calls return ErrClosed.
	Close() error
}

// Enqueuer queues a message for delivery: a *Queue, or a shared queue
// from another backend (queue/jetstream).
type Enqueuer interface {
	Enqueue(ctx context.Context, env filter.Envelope, body io.Reader) (ID, error)
}

// QuarantineConfig configures a Quarantine.
type QuarantineConfig struct {
	// Store keeps the messages; required.
	Store QuarantineStore
	// Queue receives released messages; required for Release and Rescan.
	Queue Enqueuer
	// Retention is how long a message is kept before Expire removes it;
	// 0 means 30 days.
	Retention time.Duration
	// RescanRate bounds re-scanned messages per second, with bursts of
	// RescanBurst, so that a bulk re-scan cannot starve live mail of
	// scanner time and queue capacity. 0 means 50/s; rate.Inf lifts it.
	RescanRate  rate.Limit
	RescanBurst int
	// Limits are used to parse messages for a re-scan.
	Limits filter.Limits
	// MaxMessageBytes bounds one message; 0 means 64 MiB.
	MaxMessageBytes int64
	// Now replaces time.Now (tests).
	Now func() time.Time

	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil is a no-op
}

// Quarantine holds messages that a verdict sent to quarantine: an
// operator or an integration lists, reads, releases and deletes them, a
// bulk Rescan re-runs a pipeline over them and releases those now clean
// (the faulty-update drill: an engine flagged everything from 04:00, the
// vendor fixed it, re-scan and release), Digest gathers what each
// recipient has waiting, and Expire enforces the retention. It is safe
// for concurrent use.
//
// Failure semantics: Hold returns when the message is durable, so a
// gateway answers 250 after it (and 4xx when it fails: never a silent
// drop). A release queues the message before its record is removed, so a
// crash in between delivers it twice at worst, never zero times; a
// release into a busy queue waits, it does not give up. Expire never
// removes a message under an operation in this process or whose release
// has started. A message whose stored bytes fail their SHA-256 is reported
// (ErrCorrupt) and kept, never released. Metrics:
// portcullis_quarantine_held_total, _released_total, _rescanned_total
// (by result), _expired_total, _deleted_total, _size.
//
// Storage is a QuarantineStore: QuarantineDir on the local disk, or the
// JetStream store (queue/jetstream) for gateways on several machines;
// operations in progress are tracked per process, so run bulk operations
// (Rescan, Expire) from one process at a time.
type Quarantine struct {
	cfg     QuarantineConfig
	limiter *rate.Limiter

	mu  sync.Mutex
	ops map[ID]struct{} // messages under an operation in this process
}

// NewQuarantine returns a quarantine over cfg.Store. Closing the store is
// the caller's business.
func NewQuarantine(cfg QuarantineConfig) (*Quarantine, error) {
	if cfg.Store == nil {
		return nil, errors.New("queue: quarantine needs a QuarantineStore")
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.RescanRate == 0 {
		cfg.RescanRate = 50
	}
	if cfg.RescanBurst <= 0 {
		cfg.RescanBurst = 1
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 64 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Metrics = filter.OrNop(cfg.Metrics)
	return &Quarantine{cfg: cfg, limiter: rate.NewLimiter(cfg.RescanRate, cfg.RescanBurst), ops: map[ID]struct{}{}}, nil
}

// begin marks a message as under an operation; false when it already is.
func (q *Quarantine) begin(id ID) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, busy := q.ops[id]; busy {
		return false
	}
	q.ops[id] = struct{}{}
	return true
}

func (q *Quarantine) end(id ID) {
	q.mu.Lock()
	delete(q.ops, id)
	q.mu.Unlock()
}

// Hold quarantines a message with the verdict that sent it there and
// returns when it is durable: a gateway answers 250 after it, never
// before.
func (q *Quarantine) Hold(ctx context.Context, m *filter.Message, v filter.Verdict) (ID, error) {
	if len(m.Envelope.RcptTo) == 0 {
		return "", ErrNoRecipients
	}
	if m.Size() > q.cfg.MaxMessageBytes {
		return "", &filter.LimitError{Limit: filter.LimitMessageBytes, Max: q.cfg.MaxMessageBytes}
	}
	raw := make([]byte, m.Size())
	if _, err := io.ReadFull(m.Reader(), raw); err != nil {
		return "", fmt.Errorf("queue: reading message to hold: %w", err)
	}
	now := q.cfg.Now()
	sum := sha256.Sum256(raw)
	env := m.Envelope
	env.RcptTo = slices.Clone(env.RcptTo)
	h := Quarantined{
		ID: newID(now), Envelope: env, Size: int64(len(raw)), Checksum: hex.EncodeToString(sum[:]),
		HeldAt: time.UnixMilli(now.UnixMilli()),
		Action: v.Action, Score: v.Score, Symbols: slices.Clone(v.Symbols),
	}
	if err := q.cfg.Store.Put(ctx, h, raw); err != nil {
		return "", err
	}
	q.cfg.Metrics.Add("portcullis_quarantine_held_total", 1, "action", v.Action.String())
	q.cfg.Logger.Info("quarantine: held", "id", h.ID, "from", env.MailFrom, "rcpts", len(env.RcptTo),
		"score", v.Score, "symbols", strings.Join(h.Reason(), ","))
	return h.ID, nil
}

// QuarantineFilter selects quarantined messages. Zero fields select all.
type QuarantineFilter struct {
	// Symbol matches a verdict symbol by name; a trailing "*" matches a
	// prefix ("CLAMAV_*": every message an engine flagged).
	Symbol string
	// Since and Until bound HeldAt: Since <= HeldAt < Until.
	Since, Until time.Time
	// Recipient and Sender match envelope addresses, case-insensitively.
	Recipient, Sender string
	// After continues a listing after this ID (the Next of a page).
	After ID
	// Limit bounds one page; 0 means 100.
	Limit int
}

func (f QuarantineFilter) match(h Quarantined) bool {
	if !f.Since.IsZero() && h.HeldAt.Before(f.Since) || !f.Until.IsZero() && !h.HeldAt.Before(f.Until) {
		return false
	}
	if f.Sender != "" && !strings.EqualFold(f.Sender, h.Envelope.MailFrom) {
		return false
	}
	if f.Recipient != "" && !slices.ContainsFunc(h.Envelope.RcptTo, func(r string) bool { return strings.EqualFold(r, f.Recipient) }) {
		return false
	}
	if f.Symbol != "" {
		prefix, wild := strings.CutSuffix(f.Symbol, "*")
		if !slices.ContainsFunc(h.Symbols, func(s filter.Symbol) bool {
			return s.Name == f.Symbol || wild && strings.HasPrefix(s.Name, prefix)
		}) {
			return false
		}
	}
	return true
}

// QuarantinePage is one page of a listing.
type QuarantinePage struct {
	Items []Quarantined
	// Next is the After of the following page; "" on the last page.
	Next ID
}

// List returns the records that match f, oldest first, one page at a time.
func (q *Quarantine) List(ctx context.Context, f QuarantineFilter) (QuarantinePage, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	all, err := q.cfg.Store.All(ctx)
	if err != nil {
		return QuarantinePage{}, err
	}
	var p QuarantinePage
	for _, h := range all {
		if f.After != "" && h.ID <= f.After || !f.match(h) {
			continue
		}
		if len(p.Items) == f.Limit {
			p.Next = p.Items[len(p.Items)-1].ID
			break
		}
		p.Items = append(p.Items, h)
	}
	return p, nil
}

// Get returns a record and its raw message, checked against its
// checksum (ErrCorrupt when it fails).
func (q *Quarantine) Get(ctx context.Context, id ID) (Quarantined, []byte, error) {
	h, err := q.find(ctx, id)
	if err != nil {
		return Quarantined{}, nil, err
	}
	raw, err := q.read(ctx, h)
	return h, raw, err
}

func (q *Quarantine) find(ctx context.Context, id ID) (Quarantined, error) {
	all, err := q.cfg.Store.All(ctx)
	if err != nil {
		return Quarantined{}, err
	}
	i, ok := slices.BinarySearchFunc(all, id, func(h Quarantined, id ID) int { return strings.Compare(string(h.ID), string(id)) })
	if !ok {
		return Quarantined{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return all[i], nil
}

func (q *Quarantine) read(ctx context.Context, h Quarantined) ([]byte, error) {
	b, err := q.cfg.Store.Body(ctx, h.ID)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if b.Size() != h.Size {
		return nil, fmt.Errorf("%w: quarantined %s: %d bytes, record says %d", ErrCorrupt, h.ID, b.Size(), h.Size)
	}
	raw := make([]byte, h.Size)
	if _, err := b.ReadAt(raw, 0); err != nil && !(errors.Is(err, io.EOF) && len(raw) == 0) {
		return nil, fmt.Errorf("queue: reading quarantined %s: %w", h.ID, err)
	}
	sum := sha256.Sum256(raw)
	if hex.EncodeToString(sum[:]) != h.Checksum {
		return nil, fmt.Errorf("%w: quarantined %s fails its checksum", ErrCorrupt, h.ID)
	}
	return raw, nil
}

// Release queues a quarantined message for delivery as it is, to its
// original recipients, and removes it from the quarantine. It returns the
// queue ID. A crash between queueing and removing leaves the record marked
// Releasing; releasing it again may deliver it twice, never zero times.
func (q *Quarantine) Release(ctx context.Context, id ID) (ID, error) {
	if !q.begin(id) {
		return "", fmt.Errorf("%w: %s", ErrInUse, id)
	}
	defer q.end(id)
	h, err := q.find(ctx, id)
	if err != nil {
		return "", err
	}
	return q.release(ctx, h, "operator")
}

// release queues a held message and removes its record; the caller holds
// the operation.
func (q *Quarantine) release(ctx context.Context, h Quarantined, why string) (ID, error) {
	if q.cfg.Queue == nil {
		return "", errors.New("queue: quarantine has no Queue to release to")
	}
	raw, err := q.read(ctx, h)
	if err != nil {
		return "", err
	}
	if !h.Releasing {
		h.Releasing = true
		if err := q.cfg.Store.Update(ctx, h); err != nil {
			return "", err
		}
	}
	qid, err := q.enqueue(ctx, h.Envelope, raw)
	if err != nil {
		return "", err
	}
	if err := q.cfg.Store.Remove(ctx, h.ID); err != nil && !errors.Is(err, ErrNotFound) {
		// Queued and still held: a later release delivers it again (a
		// duplicate, never a loss).
		return qid, fmt.Errorf("queue: released %s as %s but removing it failed: %w", h.ID, qid, err)
	}
	q.cfg.Metrics.Add("portcullis_quarantine_released_total", 1, "by", why)
	q.cfg.Logger.Info("quarantine: released", "id", h.ID, "queue_id", qid, "by", why)
	return qid, nil
}

// enqueue queues a message, waiting out backpressure: a release must not
// push live mail out of a full queue, and must not give up on a busy one.
func (q *Quarantine) enqueue(ctx context.Context, env filter.Envelope, raw []byte) (ID, error) {
	wait := 100 * time.Millisecond
	for {
		id, err := q.cfg.Queue.Enqueue(ctx, env, bytes.NewReader(raw))
		if !errors.Is(err, ErrBusy) {
			return id, err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("queue: releasing into a busy queue: %w (%w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// Delete removes a quarantined message for good.
func (q *Quarantine) Delete(ctx context.Context, id ID) error {
	if !q.begin(id) {
		return fmt.Errorf("%w: %s", ErrInUse, id)
	}
	defer q.end(id)
	if err := q.cfg.Store.Remove(ctx, id); err != nil {
		return err
	}
	q.cfg.Metrics.Add("portcullis_quarantine_deleted_total", 1)
	q.cfg.Logger.Info("quarantine: deleted", "id", id)
	return nil
}

// Expire removes the messages held longer than the retention and returns
// how many. A message under an operation in this process, or whose
// release has started, is never removed. Call it periodically (hourly).
func (q *Quarantine) Expire(ctx context.Context) (int, error) {
	all, err := q.cfg.Store.All(ctx)
	if err != nil {
		return 0, err
	}
	cutoff := q.cfg.Now().Add(-q.cfg.Retention)
	n := 0
	for _, h := range all {
		if !h.HeldAt.Before(cutoff) || h.Releasing || !q.begin(h.ID) {
			continue
		}
		err := q.cfg.Store.Remove(ctx, h.ID)
		q.end(h.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
		q.cfg.Metrics.Add("portcullis_quarantine_expired_total", 1)
		q.cfg.Logger.Info("quarantine: expired", "id", h.ID, "held", h.HeldAt)
	}
	q.cfg.Metrics.Set("portcullis_quarantine_size", float64(len(all)-n))
	return n, nil
}

// Digest returns, per recipient (lower case), the records held for them
// since a time, oldest first: the data of a daily quarantine report or a
// web page. A non-empty recipient restricts it to that recipient.
func (q *Quarantine) Digest(ctx context.Context, recipient string, since time.Time) (map[string][]Quarantined, error) {
	all, err := q.cfg.Store.All(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]Quarantined{}
	for _, h := range all {
		if h.HeldAt.Before(since) {
			continue
		}
		seen := map[string]bool{}
		for _, r := range h.Envelope.RcptTo {
			r = strings.ToLower(r)
			if seen[r] || recipient != "" && r != strings.ToLower(recipient) {
				continue
			}
			seen[r] = true
			out[r] = append(out[r], h.clone())
		}
	}
	return out, nil
}
