package quarantine

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
	"github.com/portcullis-mail/portcullis/queue"
)

// Held is a held message's record: its envelope, the verdict
// that put it there, and what re-scans did since.
type Held struct {
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
func (h Held) Reason() []string {
	out := make([]string, len(h.Symbols))
	for i, s := range h.Symbols {
		out[i] = s.Name
	}
	return out
}

func (h Held) clone() Held {
	h.Envelope.RcptTo = slices.Clone(h.Envelope.RcptTo)
	h.Symbols = slices.Clone(h.Symbols)
	return h
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record limits: a record claiming more is corrupt.
const (
	maxHeldSymbols    = 10000
	maxHeldRecipients = 100000
	maxHeldRecord     = 16 << 20
)

// heldMagic starts an encoded Held: "PQH1", the CRC-32C of the JSON that
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

// MarshalBinary encodes the record for a Store: a versioned,
// checksummed form that UnmarshalBinary checks.
func (h Held) MarshalBinary() ([]byte, error) {
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
		return nil, fmt.Errorf("quarantine: encoding held record: %w", err) // a NaN score
	}
	out := fmt.Appendf([]byte(heldMagic), "%08x", crc32.Checksum(js, castagnoli))
	return append(out, js...), nil
}

// UnmarshalBinary decodes and validates a record written by MarshalBinary.
// Errors match ErrCorrupt.
func (h *Held) UnmarshalBinary(b []byte) error {
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
	case !r.ID.Valid():
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
	out := Held{
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

// Store keeps held messages durably. Dir (a directory) and the JetStream
// backend (queue/jetstream) implement it and pass the same conformance
// suite (quarantinetest.Run).
//
// As with Store, a method that changes the store returns only when the
// change is durable; after an error it may or may not have happened.
// Implementations are safe for concurrent use.
type Store interface {
	// Put stores a new record and its raw message (len(raw) == h.Size).
	Put(ctx context.Context, h Held, raw []byte) error
	// Update replaces a record (ErrNotFound if absent); the message never
	// changes.
	Update(ctx context.Context, h Held) error
	// Remove deletes a record and its message (ErrNotFound if absent).
	Remove(ctx context.Context, id ID) error
	// Body opens the raw message (ErrNotFound if absent).
	Body(ctx context.Context, id ID) (queue.Body, error)
	// All returns every record, oldest first (by ID).
	All(ctx context.Context) ([]Held, error)
	// Close releases the store; later calls return ErrClosed.
	Close() error
}

// Defaults of the zero Config and Query fields.
const (
	DefaultRetention       = 30 * 24 * time.Hour
	DefaultRescanRate      = 50 // messages per second
	DefaultMaxMessageBytes = 64 << 20
	DefaultPageLimit       = 100
)

// Config configures a Manager.
type Config struct {
	// Store keeps the messages; required.
	Store Store
	// Queue receives released messages; required for Release and Rescan.
	Queue queue.Enqueuer
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

// Manager holds messages that a verdict sent to quarantine: an
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
// Storage is a Store: Dir on the local disk, or the
// JetStream store (queue/jetstream) for gateways on several machines;
// operations in progress are tracked per process, so run bulk operations
// (Rescan, Expire) from one process at a time.
type Manager struct {
	cfg     Config
	limiter *rate.Limiter

	mu  sync.Mutex
	ops map[ID]struct{} // messages under an operation in this process
}

// New returns a Manager over cfg.Store. Closing the store is
// the caller's business.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		return nil, ErrNoStore
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.RescanRate == 0 {
		cfg.RescanRate = DefaultRescanRate
	}
	if cfg.RescanBurst <= 0 {
		cfg.RescanBurst = 1
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Metrics = filter.OrNop(cfg.Metrics)
	return &Manager{cfg: cfg, limiter: rate.NewLimiter(cfg.RescanRate, cfg.RescanBurst), ops: map[ID]struct{}{}}, nil
}

// begin marks a message as under an operation; false when it already is.
func (m *Manager) begin(id ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, busy := m.ops[id]; busy {
		return false
	}
	m.ops[id] = struct{}{}
	return true
}

func (m *Manager) end(id ID) {
	m.mu.Lock()
	delete(m.ops, id)
	m.mu.Unlock()
}

// Hold quarantines a message with the verdict that sent it there and
// returns when it is durable: a gateway answers 250 after it, never
// before.
func (m *Manager) Hold(ctx context.Context, msg *filter.Message, v filter.Verdict) (ID, error) {
	if len(msg.Envelope.RcptTo) == 0 {
		return "", ErrNoRecipients
	}
	if msg.Size() > m.cfg.MaxMessageBytes {
		return "", &filter.LimitError{Limit: filter.LimitMessageBytes, Max: m.cfg.MaxMessageBytes}
	}
	raw := make([]byte, msg.Size())
	if _, err := io.ReadFull(msg.Reader(), raw); err != nil {
		return "", fmt.Errorf("quarantine: reading message to hold: %w", err)
	}
	now := m.cfg.Now()
	sum := sha256.Sum256(raw)
	env := msg.Envelope
	env.RcptTo = slices.Clone(env.RcptTo)
	h := Held{
		ID: newID(now), Envelope: env, Size: int64(len(raw)), Checksum: hex.EncodeToString(sum[:]),
		HeldAt: time.UnixMilli(now.UnixMilli()),
		Action: v.Action, Score: v.Score, Symbols: slices.Clone(v.Symbols),
	}
	if err := m.cfg.Store.Put(ctx, h, raw); err != nil {
		return "", err
	}
	m.cfg.Metrics.Add("portcullis_quarantine_held_total", 1, "action", v.Action.String())
	msgid := v.MessageID
	if msgid == "" {
		msgid = filter.MessageIDOf(ctx)
	}
	m.cfg.Logger.InfoContext(ctx, "quarantine: held", "id", h.ID, filter.LogMessageID, msgid, "from", env.MailFrom,
		"rcpts", len(env.RcptTo), "score", v.Score, "symbols", strings.Join(h.Reason(), ","))
	return h.ID, nil
}

// Query selects quarantined messages. Zero fields select all.
type Query struct {
	// Symbol matches a verdict symbol by name; a trailing "*" matches a
	// prefix. Every message one antivirus engine flagged carries that
	// engine's symbol (scanner.EngineSymbol: "AV_CLAMD_1_INFECTED" for
	// engine clamd-1); select it by its exact name, since a prefix such
	// as "AV_CLAMD_1_*" would also match clamd-10.
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

func (f Query) match(h Held) bool {
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

// Page is one page of a listing.
type Page struct {
	Items []Held
	// Next is the After of the following page; "" on the last page.
	Next ID
}

// List returns the records that match f, oldest first, one page at a time.
func (m *Manager) List(ctx context.Context, f Query) (Page, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultPageLimit
	}
	all, err := m.cfg.Store.All(ctx)
	if err != nil {
		return Page{}, err
	}
	var p Page
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
func (m *Manager) Get(ctx context.Context, id ID) (Held, []byte, error) {
	h, err := m.find(ctx, id)
	if err != nil {
		return Held{}, nil, err
	}
	raw, err := m.read(ctx, h)
	return h, raw, err
}

func (m *Manager) find(ctx context.Context, id ID) (Held, error) {
	all, err := m.cfg.Store.All(ctx)
	if err != nil {
		return Held{}, err
	}
	i, ok := slices.BinarySearchFunc(all, id, func(h Held, id ID) int { return strings.Compare(string(h.ID), string(id)) })
	if !ok {
		return Held{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return all[i], nil
}

func (m *Manager) read(ctx context.Context, h Held) ([]byte, error) {
	b, err := m.cfg.Store.Body(ctx, h.ID)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if b.Size() != h.Size {
		return nil, fmt.Errorf("%w: quarantined %s: %d bytes, record says %d", ErrCorrupt, h.ID, b.Size(), h.Size)
	}
	raw := make([]byte, h.Size)
	if _, err := b.ReadAt(raw, 0); err != nil && !(errors.Is(err, io.EOF) && len(raw) == 0) {
		return nil, fmt.Errorf("quarantine: reading quarantined %s: %w", h.ID, err)
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
func (m *Manager) Release(ctx context.Context, id ID) (queue.ID, error) {
	if !m.begin(id) {
		return "", fmt.Errorf("%w: %s", ErrInUse, id)
	}
	defer m.end(id)
	h, err := m.find(ctx, id)
	if err != nil {
		return "", err
	}
	return m.release(ctx, h, "operator")
}

// release queues a held message and removes its record; the caller holds
// the operation.
func (m *Manager) release(ctx context.Context, h Held, why string) (queue.ID, error) {
	if m.cfg.Queue == nil {
		return "", ErrNoQueue
	}
	raw, err := m.read(ctx, h)
	if err != nil {
		return "", err
	}
	if !h.Releasing {
		h.Releasing = true
		if err := m.cfg.Store.Update(ctx, h); err != nil {
			return "", err
		}
	}
	qid, err := m.enqueue(ctx, h.Envelope, raw)
	if err != nil {
		return "", err
	}
	if err := m.cfg.Store.Remove(ctx, h.ID); err != nil && !errors.Is(err, ErrNotFound) {
		// Queued and still held: a later release delivers it again (a
		// duplicate, never a loss).
		return qid, fmt.Errorf("quarantine: released %s as %s but removing it failed: %w", h.ID, qid, err)
	}
	m.cfg.Metrics.Add("portcullis_quarantine_released_total", 1, "by", why)
	m.cfg.Logger.InfoContext(ctx, "quarantine: released", "id", h.ID, "queue_id", qid, "by", why)
	return qid, nil
}

// enqueue queues a message, waiting out backpressure: a release must not
// push live mail out of a full queue, and must not give up on a busy one.
func (m *Manager) enqueue(ctx context.Context, env filter.Envelope, raw []byte) (queue.ID, error) {
	wait := 100 * time.Millisecond
	for {
		id, err := m.cfg.Queue.Enqueue(ctx, env, bytes.NewReader(raw))
		if !errors.Is(err, queue.ErrBusy) {
			return id, err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("quarantine: releasing into a busy queue: %w (%w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// Delete removes a quarantined message for good.
func (m *Manager) Delete(ctx context.Context, id ID) error {
	if !m.begin(id) {
		return fmt.Errorf("%w: %s", ErrInUse, id)
	}
	defer m.end(id)
	if err := m.cfg.Store.Remove(ctx, id); err != nil {
		return err
	}
	m.cfg.Metrics.Add("portcullis_quarantine_deleted_total", 1)
	m.cfg.Logger.InfoContext(ctx, "quarantine: deleted", "id", id)
	return nil
}

// Expire removes the messages held longer than the retention and returns
// how many. A message under an operation in this process, or whose
// release has started, is never removed. Call it periodically (hourly).
func (m *Manager) Expire(ctx context.Context) (int, error) {
	all, err := m.cfg.Store.All(ctx)
	if err != nil {
		return 0, err
	}
	cutoff := m.cfg.Now().Add(-m.cfg.Retention)
	n := 0
	for _, h := range all {
		if !h.HeldAt.Before(cutoff) || h.Releasing || !m.begin(h.ID) {
			continue
		}
		err := m.cfg.Store.Remove(ctx, h.ID)
		m.end(h.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
		m.cfg.Metrics.Add("portcullis_quarantine_expired_total", 1)
		m.cfg.Logger.InfoContext(ctx, "quarantine: expired", "id", h.ID, "held", h.HeldAt)
	}
	m.cfg.Metrics.Set("portcullis_quarantine_size", float64(len(all)-n))
	return n, nil
}

// Digest returns, per recipient (lower case), the records held for them
// since a time, oldest first: the data of a daily quarantine report or a
// web page. A non-empty recipient restricts it to that recipient.
func (m *Manager) Digest(ctx context.Context, recipient string, since time.Time) (map[string][]Held, error) {
	all, err := m.cfg.Store.All(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]Held{}
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
