package admin

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/portcullis-mail/portcullis/fleet"
)

// fleetTimeout bounds one read of the fleet's state.
const fleetTimeout = 10 * time.Second

// fleetRefresh is how often the fleet page reloads itself, in seconds.
const fleetRefresh = 15

// readFleet calls Config.Fleet under fleetTimeout.
func (h *Handler) readFleet(ctx context.Context) (fleet.View, error) {
	ctx, cancel := context.WithTimeout(ctx, fleetTimeout)
	defer cancel()
	return h.cfg.Fleet(ctx)
}

// apiFleetRules is the published set in the API (its files left out).
type apiFleetRules struct {
	Version   uint64    `json:"version"`
	Digest    string    `json:"digest"`
	Published time.Time `json:"published"`
	Publisher string    `json:"publisher,omitempty"`
}

// apiFleet answers GET /api/fleet: the published rule set and every
// node's status (the token or an admin user; 503 without a fleet or when
// it cannot be read).
func (h *Handler) apiFleet(w http.ResponseWriter, r *http.Request) {
	who, ok := h.apiPrincipal(r)
	if !ok {
		h.unauthorized(w, r)
		return
	}
	if !who.Admin {
		jsonError(w, http.StatusForbidden, "the fleet is for admins")
		return
	}
	if h.cfg.Fleet == nil {
		jsonError(w, http.StatusServiceUnavailable, "no fleet configured")
		return
	}
	v, err := h.readFleet(r.Context())
	if err != nil {
		h.log.Warn("admin: reading the fleet failed", "err", err)
		jsonError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	out := struct {
		Rules *apiFleetRules     `json:"rules"`
		Nodes []fleet.NodeStatus `json:"nodes"`
	}{Nodes: v.Nodes}
	if out.Nodes == nil {
		out.Nodes = []fleet.NodeStatus{}
	}
	if v.Rules != nil {
		out.Rules = &apiFleetRules{Version: v.Rules.Version, Digest: v.Rules.Digest, Published: v.Rules.Published, Publisher: v.Rules.Publisher}
	}
	writeJSON(w, http.StatusOK, out)
}

// fleetView is the fleet page.
type fleetView struct {
	Rules    *fleet.RuleSet
	Short    string // the published set's short digest
	Nodes    []fleetRow
	Ready    int // nodes ready
	Current  int // nodes serving the published version
	Refusing int // nodes that refused a version
	Troubled int // nodes with an engine down or suspect
	Checked  string
}

type fleetRow struct {
	Node       string
	Rules      string // version served, "none" before the first
	Behind     bool
	Digest     string
	Ready      bool
	NotReady   string
	Queue      int
	Held       int
	Engines    []fleetEngine
	Zones      []fleetEngine // DNS list zones served from memory
	Age        string
	UpdatedISO string
	Refused    string   // "version N: reason"
	ZoneNotes  []string // "zen: refused version N: reason"
}

type fleetEngine struct {
	Name, State, Version string
	Class                string // ok, warn, bad
}

func (h *Handler) pageFleet(w http.ResponseWriter, r *http.Request) {
	s := h.session(r)
	if s == nil {
		http.Redirect(w, r, h.url("/quarantine/login"), http.StatusSeeOther)
		return
	}
	if !s.who.Admin {
		h.renderError(w, s, http.StatusForbidden, "The fleet is for admins.")
		return
	}
	if h.cfg.Fleet == nil {
		h.renderError(w, s, http.StatusServiceUnavailable, "No fleet is configured.")
		return
	}
	v, err := h.readFleet(r.Context())
	if err != nil {
		h.log.Warn("admin: reading the fleet failed", "who", s.who.Name, "err", err)
		h.renderError(w, s, http.StatusServiceUnavailable, "The fleet's status could not be read: "+err.Error())
		return
	}
	now := h.cfg.Now()
	fv := fleetView{Rules: v.Rules, Checked: now.UTC().Format("2006-01-02 15:04:05 UTC")}
	if v.Rules != nil {
		fv.Short = v.Rules.Short()
	}
	for _, n := range v.Nodes {
		row := fleetRow{Node: n.Node, Rules: "none", Behind: v.Behind(n), Digest: n.RulesDigest, Ready: n.Ready,
			NotReady: clip(n.NotReady, 300), Queue: n.QueueDepth, Held: n.QueueHeld,
			Age: age(now.Sub(n.Updated)), UpdatedISO: n.Updated.UTC().Format(time.RFC3339)}
		if n.RulesVersion != 0 {
			row.Rules = strconv.FormatUint(n.RulesVersion, 10)
		}
		if n.Ready {
			fv.Ready++
		}
		if v.Rules != nil && n.RulesVersion == v.Rules.Version {
			fv.Current++
		}
		if n.Refused != nil {
			fv.Refusing++
			row.Refused = "version " + strconv.FormatUint(n.Refused.Version, 10) + ": " + clip(n.Refused.Reason, 300)
		}
		trouble := false
		for _, e := range n.Engines {
			fe := fleetEngine{Name: e.Name, State: e.State, Version: e.Version, Class: "ok"}
			switch {
			case e.State == "open":
				fe.Class, trouble = "bad", true
			case e.FleetSuspect:
				fe.Class, fe.State, trouble = "bad", "suspect update (fleet-wide)", true
				fe.Version = "signature version " + e.Version + " doubted across the fleet"
			case e.Suspect:
				fe.Class, fe.State, trouble = "bad", "suspect update", true
			case e.State != "closed":
				fe.Class, trouble = "warn", true
			}
			row.Engines = append(row.Engines, fe)
		}
		if trouble {
			fv.Troubled++
		}
		for _, z := range n.Zones {
			fz := fleetEngine{Name: z.Zone, State: "version " + strconv.FormatUint(z.Version, 10), Class: "ok",
				Version: strconv.Itoa(z.Entries) + " entries " + z.Digest}
			if z.Version == 0 {
				fz.State, fz.Class = "none loaded", "bad"
			}
			if z.Refused != nil {
				if fz.Class == "ok" {
					fz.Class = "warn"
				}
				row.ZoneNotes = append(row.ZoneNotes, "zone "+z.Zone+" refused version "+strconv.FormatUint(z.Refused.Version, 10)+": "+clip(z.Refused.Reason, 300))
			}
			row.Zones = append(row.Zones, fz)
		}
		fv.Nodes = append(fv.Nodes, row)
	}
	h.render(w, http.StatusOK, "fleet", pageData{Title: "Fleet", Who: &s.who, CSRF: s.csrf, Refresh: fleetRefresh, Fleet: &fv})
}
