package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/portcullis-mail/portcullis/filter"
	"github.com/portcullis-mail/portcullis/fleet/zone"
	"github.com/portcullis-mail/portcullis/rbl"
)

// Errors of the zones.
var (
	ErrZoneTooLarge = errors.New("fleet: zone too large")
	ErrZoneName     = errors.New("fleet: invalid zone name")
	ErrNoZone       = errors.New("fleet: no zone published")
	ErrZoneNotReady = errors.New("fleet: zone not ready")
)

// Defaults of the zones.
const (
	// ZonesBucket names both the KV bucket of the zone manifests and the
	// object store of the zone data.
	ZonesBucket = "portcullis-zones"
	// DefaultMaxZoneBytes bounds a zone's data, at publication and on
	// every node.
	DefaultMaxZoneBytes = 256 << 20
	// maxManifestBytes bounds a manifest (a KV value): a few hundred
	// bytes in practice.
	maxManifestBytes = 64 << 10
	// defaultZoneRetry is the wait before a node fetches a zone again
	// after a transport failure.
	defaultZoneRetry = 2 * time.Second
)

// ZoneLimitError is a zone larger than a byte limit.
type ZoneLimitError struct {
	Zone  string
	Limit int64
	Size  int64 // the size seen so far: at least Limit+1
}

func (e *ZoneLimitError) Error() string {
	return fmt.Sprintf("fleet: zone %s: more than %d bytes (%d seen)", e.Zone, e.Limit, e.Size)
}
func (e *ZoneLimitError) Unwrap() error { return ErrZoneTooLarge }

// ZoneInfo is a zone's manifest: the KV value at the zone's name, which
// names the object holding the data. Version is the KV revision.
type ZoneInfo struct {
	Version   uint64    `json:"-"`
	Zone      string    `json:"zone"`
	Object    string    `json:"object"`
	Size      int64     `json:"size"`
	Digest    string    `json:"digest"` // "sha256:<hex>" of the data
	Entries   int       `json:"entries,omitempty"`
	Published time.Time `json:"published"`
	Publisher string    `json:"publisher,omitempty"`
}

// Short is the digest's first 12 hex digits.
func (z *ZoneInfo) Short() string {
	d := strings.TrimPrefix(z.Digest, "sha256:")
	return d[:min(len(d), 12)]
}

// decodeZoneInfo parses a manifest and checks it names its own zone.
func decodeZoneInfo(key string, data []byte, rev uint64) (*ZoneInfo, error) {
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("%w: manifest of %d bytes", ErrDecode, len(data))
	}
	zi := &ZoneInfo{}
	if err := json.Unmarshal(data, zi); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrDecode, err)
	}
	zi.Version = rev
	switch {
	case zi.Zone != key:
		return nil, fmt.Errorf("%w: manifest of zone %q under key %q", ErrDecode, zi.Zone, key)
	case !strings.HasPrefix(zi.Object, key+"/"):
		return nil, fmt.Errorf("%w: object %q is not one of zone %s", ErrDecode, zi.Object, key)
	case zi.Size < 0:
		return nil, fmt.Errorf("%w: size %d", ErrDecode, zi.Size)
	case len(zi.Digest) != len("sha256:")+64 || !strings.HasPrefix(zi.Digest, "sha256:"):
		return nil, fmt.Errorf("%w: digest %q", ErrDecode, zi.Digest)
	}
	return zi, nil
}

// CheckZoneName reports whether name can name a zone: a DNS zone name
// in lower case (letters, digits, '-', '_', dots between labels).
func CheckZoneName(name string) error {
	ok := name != "" && len(name) <= 253 && !strings.HasPrefix(name, ".") && !strings.HasSuffix(name, ".") && !strings.Contains(name, "..")
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return fmt.Errorf("%w: %q (want a lower-case DNS zone name)", ErrZoneName, name)
	}
	return nil
}

func zoneStores(ctx context.Context, js jetstream.JetStream, b Bucket) (jetstream.KeyValue, jetstream.ObjectStore, error) {
	name := b.Name
	if name == "" {
		name = ZonesBucket
	}
	kv, err := bindKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: name, History: 8, Replicas: max(b.Replicas, 1),
		Description: "Portcullis DNS list zone manifests", Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, nil, err
	}
	obs, err := js.ObjectStore(ctx, name)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: name, Replicas: max(b.Replicas, 1), Storage: jetstream.FileStorage,
			Description: "Portcullis DNS list zone data",
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			obs, err = js.ObjectStore(ctx, name)
		}
		if err == nil {
			err = streamLeader(ctx, js, "OBJ_"+name)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("fleet: object store %s: %w", name, err)
	}
	return kv, obs, nil
}

// capReader hashes what it reads and fails with a *ZoneLimitError past
// max bytes.
type capReader struct {
	r    io.Reader
	n    int64
	max  int64
	zone string
	h    hash.Hash
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	if c.n > c.max {
		return 0, &ZoneLimitError{Zone: c.zone, Limit: c.max, Size: c.n}
	}
	return n, err
}

func (c *capReader) digest() string { return "sha256:" + hex.EncodeToString(c.h.Sum(nil)) }

// ZonePublication is a zone to publish.
type ZonePublication struct {
	Zone      string    // the DNS zone, e.g. "bl.example" (see CheckZoneName)
	Data      io.Reader // rbldnsd ip4set text
	MaxBytes  int64     // 0 means DefaultMaxZoneBytes
	Entries   int       // as the publisher counted them (informative)
	Publisher string
}

// PublishZone stores a zone's data as a new object (chunked by the
// object store), then its manifest as the zone's current version, and
// returns the manifest. It does not parse the data: the publisher does
// (rulecheck publish-zone), and every node does again. Data over
// MaxBytes is a *ZoneLimitError and publishes nothing. Objects of the
// zone older than the previous version's are deleted afterwards.
func PublishZone(ctx context.Context, js jetstream.JetStream, b Bucket, p ZonePublication) (*ZoneInfo, error) {
	if err := CheckZoneName(p.Zone); err != nil {
		return nil, err
	}
	if p.MaxBytes <= 0 {
		p.MaxBytes = DefaultMaxZoneBytes
	}
	kv, obs, err := zoneStores(ctx, js, b)
	if err != nil {
		return nil, err
	}
	var prev string
	if e, err := kv.Get(ctx, p.Zone); err == nil {
		if zi, err := decodeZoneInfo(p.Zone, e.Value(), e.Revision()); err == nil {
			prev = zi.Object
		}
	}
	zi := &ZoneInfo{Zone: p.Zone, Object: p.Zone + "/" + time.Now().UTC().Format("20060102T150405.000000000Z"),
		Entries: p.Entries, Published: time.Now().UTC(), Publisher: p.Publisher}
	cr := &capReader{r: p.Data, max: p.MaxBytes, zone: p.Zone, h: sha256.New()}
	oi, err := obs.Put(ctx, jetstream.ObjectMeta{Name: zi.Object, Description: "zone " + p.Zone}, cr)
	if err != nil {
		return nil, fmt.Errorf("fleet: publish zone %s: %w", p.Zone, err)
	}
	zi.Size, zi.Digest = int64(oi.Size), cr.digest()
	data, _ := json.Marshal(zi)
	rev, err := kv.Put(ctx, p.Zone, data)
	if err != nil {
		_ = obs.Delete(ctx, zi.Object)
		return nil, fmt.Errorf("fleet: publish zone %s: %w", p.Zone, err)
	}
	zi.Version = rev
	// A node may still be reading the previous version: keep it, and
	// delete only the objects older than it (names sort by time), so that
	// a concurrent publisher's newer object is never deleted.
	if objs, err := obs.List(ctx); err == nil && prev != "" {
		for _, o := range objs {
			if strings.HasPrefix(o.Name, p.Zone+"/") && o.Name < prev {
				_ = obs.Delete(ctx, o.Name)
			}
		}
	}
	return zi, nil
}

// CurrentZone reads a zone's current manifest.
func CurrentZone(ctx context.Context, js jetstream.JetStream, b Bucket, name string) (*ZoneInfo, error) {
	kv, _, err := zoneStores(ctx, js, b)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoZone, name)
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	return decodeZoneInfo(name, e.Value(), e.Revision())
}

// PublishedZones reads every zone's current manifest, sorted by name; a
// fleet without zones has none.
func PublishedZones(ctx context.Context, js jetstream.JetStream, b Bucket) ([]ZoneInfo, error) {
	var out []ZoneInfo
	err := eachEntry(ctx, js, b, ZonesBucket, func(e jetstream.KeyValueEntry) {
		if zi, err := decodeZoneInfo(e.Key(), e.Value(), e.Revision()); err == nil {
			out = append(out, *zi)
		}
	})
	slices.SortFunc(out, func(a, b ZoneInfo) int { return strings.Compare(a.Zone, b.Zone) })
	return out, err
}

// ZonesConfig configures Zones.
type ZonesConfig struct {
	JetStream jetstream.JetStream
	Bucket    Bucket
	// MaxBytes refuses zones larger than this; 0 means DefaultMaxZoneBytes.
	MaxBytes int64
	// Limits bound a zone's entries and lines (zone.Limits defaults).
	Limits zone.Limits
	// Retry is the wait before fetching again after a transport failure;
	// 0 means 2 s.
	Retry time.Duration
	// Resync is how often the zones' current manifests are also read
	// directly, besides the watch: when a NATS server dies, nats.go
	// notices the watch's lost consumer only after two missed 5 s
	// heartbeats. 0 means 5 s; each is one KV get per zone.
	Resync  time.Duration
	Logger  *slog.Logger   // nil discards
	Metrics filter.Metrics // nil discards
}

// Zones serves the fleet's zones from memory: Run watches the manifests
// of the zones asked for (Zone) and loads each new version. See the
// package comment.
type Zones struct {
	cfg     ZonesConfig
	log     *slog.Logger
	metrics filter.Metrics

	mu      sync.Mutex
	zones   map[string]*Zone
	rewatch chan struct{} // a zone was added: watch again for its value
	changed chan struct{}
}

// NewZones returns Zones serving nothing yet.
func NewZones(cfg ZonesConfig) *Zones {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxZoneBytes
	}
	if cfg.Retry <= 0 {
		cfg.Retry = defaultZoneRetry
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Zones{cfg: cfg, log: log, metrics: filter.OrNop(cfg.Metrics), zones: map[string]*Zone{},
		rewatch: make(chan struct{}, 1), changed: make(chan struct{}, 1)}
}

// Zone returns the named zone, watched from now on (the same *Zone for
// the same name). It is not loaded until Run has fetched its current
// version.
func (zs *Zones) Zone(name string) (*Zone, error) {
	if err := CheckZoneName(name); err != nil {
		return nil, err
	}
	zs.mu.Lock()
	defer zs.mu.Unlock()
	if z := zs.zones[name]; z != nil {
		return z, nil
	}
	z := &Zone{name: name}
	zs.zones[name] = z
	select {
	case zs.rewatch <- struct{}{}:
	default:
	}
	return z, nil
}

func (zs *Zones) list() []*Zone {
	zs.mu.Lock()
	defer zs.mu.Unlock()
	return slices.SortedFunc(maps.Values(zs.zones), func(a, b *Zone) int { return strings.Compare(a.name, b.name) })
}

func (zs *Zones) get(name string) *Zone {
	zs.mu.Lock()
	defer zs.mu.Unlock()
	return zs.zones[name]
}

// Ready is nil when every zone asked for serves the fleet's current
// version (filter.Readier-like; rbl.List.RequireLocal uses each Zone's).
func (zs *Zones) Ready() error {
	for _, z := range zs.list() {
		if err := z.Ready(); err != nil {
			return err
		}
	}
	return nil
}

// Changed is signalled after each install or refusal, and when a
// version first fails to be fetched (capacity 1).
func (zs *Zones) Changed() <-chan struct{} { return zs.changed }

// Status is what each zone serves, for the fleet status.
func (zs *Zones) Status() []ZoneStatus {
	var out []ZoneStatus
	for _, z := range zs.list() {
		st := ZoneStatus{Zone: z.name, Refused: z.Refused()}
		if s := z.cur.Load(); s != nil {
			st.Version, st.Digest, st.Entries = s.info.Version, s.info.Digest, s.set.Len()
		}
		out = append(out, st)
	}
	return out
}

// ZoneStatus is one zone a node serves.
type ZoneStatus struct {
	Zone    string   `json:"zone"`
	Version uint64   `json:"version"` // 0: none loaded
	Digest  string   `json:"digest,omitempty"`
	Entries int      `json:"entries"`
	Refused *Refusal `json:"refused,omitempty"`
}

// Run watches the manifests and loads each new version of the zones
// asked for until ctx ends. It returns only the error of binding the
// buckets or creating the watch, or ctx's.
func (zs *Zones) Run(ctx context.Context) error {
	kv, obs, err := zoneStores(ctx, zs.cfg.JetStream, zs.cfg.Bucket)
	if err != nil {
		return err
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	resync := time.NewTicker(zs.cfg.Resync)
	defer resync.Stop()
	for {
		w, err := kv.WatchAll(ctx)
		if err != nil {
			return fmt.Errorf("fleet: watch zones: %w", err)
		}
		resumed := false
	watch:
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					resumed = true
					break watch
				}
				if e != nil && zs.apply(ctx, obs, e) {
					retry.Reset(zs.cfg.Retry)
				}
			case <-zs.rewatch:
				break watch // the current values come again, the new zone's among them
			case <-retry.C:
				zs.retry(ctx, kv, obs, retry, false)
			case <-resync.C:
				zs.retry(ctx, kv, obs, retry, true)
			case <-ctx.Done():
				_ = w.Stop()
				return ctx.Err()
			}
		}
		_ = w.Stop()
		if resumed {
			zs.log.Warn("fleet: zones watch ended, resuming")
		}
	}
}

// retry reads the current manifest of the zones whose last fetch failed
// (all of them with every) and applies what is new.
func (zs *Zones) retry(ctx context.Context, kv jetstream.KeyValue, obs jetstream.ObjectStore, t *time.Timer, every bool) {
	again := false
	for _, z := range zs.list() {
		if !every && z.handled.Load() >= z.seen.Load() {
			continue
		}
		e, err := kv.Get(ctx, z.name)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // not published yet: the watch will say when it is
		}
		if err != nil {
			again = again || !every
			continue
		}
		again = zs.apply(ctx, obs, e) || again
	}
	if again {
		t.Reset(zs.cfg.Retry)
	}
}

// apply loads one manifest revision; it reports a transport failure,
// to be retried.
func (zs *Zones) apply(ctx context.Context, obs jetstream.ObjectStore, e jetstream.KeyValueEntry) bool {
	z := zs.get(e.Key())
	if z == nil || e.Operation() != jetstream.KeyValuePut {
		return false // not a zone this node serves; a delete leaves the zone serving
	}
	rev := e.Revision()
	if s := z.cur.Load(); (s != nil && rev <= s.info.Version) || rev <= z.handled.Load() {
		return false
	}
	if rev > z.seen.Load() {
		z.seen.Store(rev)
	}
	zi, err := decodeZoneInfo(z.name, e.Value(), rev)
	if err == nil && zi.Size > zs.cfg.MaxBytes {
		err = &ZoneLimitError{Zone: z.name, Limit: zs.cfg.MaxBytes, Size: zi.Size}
	}
	if err != nil {
		zs.refuse(z, &ZoneInfo{Version: rev}, err)
		return false
	}
	start := time.Now()
	set, err := zs.fetch(ctx, obs, zi)
	var content *contentError
	switch {
	case errors.As(err, &content):
		zs.refuse(z, zi, content.err)
		return false
	case err != nil:
		first := z.setFailing(err)
		zs.metrics.Add("portcullis_fleet_zone_fetch_errors_total", 1, "zone", z.name)
		if ctx.Err() == nil {
			zs.log.Warn("fleet: zone not fetched, retrying", "zone", z.name, "version", rev, "err", err)
		}
		if first {
			zs.signal() // the status says why the node is loading
		}
		return true
	}
	old := z.cur.Swap(&servedZone{info: *zi, set: set})
	z.handled.Store(rev)
	z.setFailing(nil)
	zs.metrics.Set("portcullis_fleet_zone_version", float64(rev), "zone", z.name)
	zs.metrics.Set("portcullis_fleet_zone_entries", float64(set.Len()), "zone", z.name)
	zs.metrics.Add("portcullis_fleet_zone_installed_total", 1, "zone", z.name)
	var was uint64
	if old != nil {
		was = old.info.Version
	}
	zs.log.Info("fleet: zone installed", "zone", z.name, "version", rev, "previous", was, "digest", zi.Digest,
		"entries", set.Len(), "bytes", zi.Size, "duration", time.Since(start).Round(time.Millisecond))
	zs.signal()
	return false
}

// contentError is a zone whose data is wrong (refused), as opposed to
// one that could not be fetched (retried).
type contentError struct{ err error }

func (e *contentError) Error() string { return e.err.Error() }

// fetch reads and parses a zone's object, checking its size and digest
// against the manifest.
func (zs *Zones) fetch(ctx context.Context, obs jetstream.ObjectStore, zi *ZoneInfo) (*zone.Set, error) {
	res, err := obs.Get(ctx, zi.Object)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	cr := &capReader{r: res, max: zs.cfg.MaxBytes, zone: zi.Zone, h: sha256.New()}
	set, err := zone.Read(cr, zs.cfg.Limits)
	var le *ZoneLimitError
	switch {
	case errors.Is(err, zone.ErrSyntax) || errors.Is(err, zone.ErrLimit) || errors.As(err, &le):
		return nil, &contentError{err}
	case errors.Is(err, jetstream.ErrDigestMismatch):
		return nil, &contentError{fmt.Errorf("%w: object digest mismatch", ErrDecode)}
	case err != nil:
		return nil, err
	}
	if d := cr.digest(); d != zi.Digest || cr.n != zi.Size {
		return nil, &contentError{fmt.Errorf("%w: %d bytes hashing to %s, the manifest says %d bytes %s", ErrDecode, cr.n, d, zi.Size, zi.Digest)}
	}
	return set, nil
}

func (zs *Zones) refuse(z *Zone, zi *ZoneInfo, err error) {
	z.mu.Lock()
	z.refused = &Refusal{Version: zi.Version, Digest: zi.Digest, Reason: err.Error()}
	z.failing = nil
	z.mu.Unlock()
	z.handled.Store(zi.Version)
	zs.metrics.Add("portcullis_fleet_zone_refused_total", 1, "zone", z.name)
	zs.metrics.Set("portcullis_fleet_zone_refused_version", float64(zi.Version), "zone", z.name)
	var serving uint64
	if s := z.cur.Load(); s != nil {
		serving = s.info.Version
	}
	zs.log.Error("fleet: zone refused, keeping the current one", "zone", z.name, "version", zi.Version, "serving", serving, "err", err)
	zs.signal()
}

func (zs *Zones) signal() {
	select {
	case zs.changed <- struct{}{}:
	default:
	}
}

// servedZone is a loaded version.
type servedZone struct {
	info ZoneInfo
	set  *zone.Set
}

// Zone is one zone served from memory: an rbl.Local. Lookups read the
// current version through an atomic pointer, so a new version is
// swapped in between two lookups, never during one.
type Zone struct {
	name    string
	cur     atomic.Pointer[servedZone]
	seen    atomic.Uint64 // newest revision seen
	handled atomic.Uint64 // newest revision installed or refused

	mu      sync.Mutex
	refused *Refusal
	failing error // the last fetch failure of the revision being loaded
}

var _ rbl.Local = (*Zone)(nil)

// Name is the zone's name.
func (z *Zone) Name() string { return z.name }

// LookupLocal implements rbl.Local: an IPv4 address is answered from the
// current version; IPv6, or no version loaded, is not covered.
func (z *Zone) LookupLocal(ip netip.Addr) (rbl.LocalAnswer, bool) {
	s := z.cur.Load()
	ip = ip.Unmap()
	if s == nil || !ip.Is4() {
		return rbl.LocalAnswer{}, false
	}
	as := s.set.Answers(ip)
	if len(as) == 0 {
		return rbl.LocalAnswer{}, true
	}
	// As rbldnsd answers: each A value once, each non-empty TXT once, in
	// zone order; rbl joins several TXT records with "; ".
	la := rbl.LocalAnswer{Listed: true}
	var txts []string
	for _, a := range as {
		if !slices.Contains(la.Codes, a.A) {
			la.Codes = append(la.Codes, a.A)
		}
		if a.TXT != "" && !slices.Contains(txts, a.TXT) {
			txts = append(txts, a.TXT)
		}
	}
	la.Reason = strings.Join(txts, "; ")
	return la, true
}

// Served is the version loaded, or nil.
func (z *Zone) Served() *ZoneInfo {
	s := z.cur.Load()
	if s == nil {
		return nil
	}
	zi := s.info
	return &zi
}

// Refused is the newest refused version newer than the one served, or nil.
func (z *Zone) Refused() *Refusal {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.refused == nil {
		return nil
	}
	if s := z.cur.Load(); s != nil && s.info.Version > z.refused.Version {
		return nil
	}
	r := *z.refused
	return &r
}

// setFailing records the fetch failure (nil: none) and reports whether
// it is the first one since the last success.
func (z *Zone) setFailing(err error) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	first := z.failing == nil && err != nil
	z.failing = err
	return first
}

// Ready is nil once the zone serves a version and has handled (loaded or
// refused) the newest one it has seen. A refused version leaves a
// serving zone ready: a broken publication must not take the fleet
// down.
func (z *Zone) Ready() error {
	s := z.cur.Load()
	z.mu.Lock()
	failing := z.failing
	z.mu.Unlock()
	if s == nil {
		if ref := z.Refused(); ref != nil && z.handled.Load() >= z.seen.Load() {
			return fmt.Errorf("%w: %s: none loaded; version %d refused: %s", ErrZoneNotReady, z.name, ref.Version, ref.Reason)
		}
		if failing != nil {
			return fmt.Errorf("%w: %s: loading version %d: %v", ErrZoneNotReady, z.name, z.seen.Load(), failing)
		}
		return fmt.Errorf("%w: %s: not loaded yet", ErrZoneNotReady, z.name)
	}
	if seen := z.seen.Load(); z.handled.Load() < seen {
		msg := fmt.Sprintf("%s: serving version %d, loading version %d", z.name, s.info.Version, seen)
		if failing != nil {
			msg += ": " + failing.Error()
		}
		return fmt.Errorf("%w: %s", ErrZoneNotReady, msg)
	}
	return nil
}
