package refresh

import (
	"encoding/json"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// Status is the value-free state of a run, as --status-file holds it.
type Status struct {
	Generation          int           `json:"generation"` // 1 at start; +1 per delivery of new values
	PID                 int           `json:"pid"`        // the command's
	Started             time.Time     `json:"started"`    // when the command (re)started
	LastCheck           *time.Time    `json:"last_check"`
	LastSuccess         time.Time     `json:"last_success"` // the first resolution counts
	ConsecutiveFailures int           `json:"consecutive_failures"`
	Counters            Counters      `json:"counters"`
	Leases              LeaseCounters `json:"leases"`
	Variables           []VarState    `json:"variables"`
}

// VarState is one variable's state. Version is the store's version id, or
// a keyed hash (hmac:…) for stores without versions, never a value.
type VarState struct {
	Name    string     `json:"name"`
	Store   string     `json:"store"`
	Version string     `json:"version,omitempty"`
	Checked *time.Time `json:"checked_at"`
	// State: ok, stale (its check failed; the last good value stays),
	// deleted (the secret is gone; the last value stays), error (the new
	// value failed validation; the last good value stays), pinned (an
	// explicit version: never checked), off (?refresh=off), unchecked
	// (its store has no change detection yet). A value with a lease is
	// ok, stale (its renewal or re-read failed) or deleted.
	State string `json:"state"`
	// LeaseExpiry is when the value's lease ends (null: no lease), as
	// renewed; its state is stale while renewals or re-reads fail.
	LeaseExpiry *time.Time `json:"lease_expiry"`
}

// Status returns the Loop's status now.
func (l *Loop) Status() Status {
	s := Status{Generation: l.generation, PID: l.cfg.Actor.PID(), Started: l.started.UTC(),
		LastSuccess: l.lastSuccess.UTC(), ConsecutiveFailures: l.failures, Counters: l.counters, Leases: l.lease.counters, Variables: []VarState{}}
	if !l.lastCheck.IsZero() {
		t := l.lastCheck.UTC()
		s.LastCheck = &t
	}
	for _, v := range l.res.Variables() {
		vs := VarState{Name: v.Name, Store: v.Kind.String(), State: "ok"}
		t := l.byT[v.Ref.Target]
		switch {
		case v.Ref.Opts.Refresh.Kind == provider.ActOff:
			vs.State = "off"
		case v.Ref.Pinned():
			vs.State = "pinned"
		case l.unknown[v.Ref.Target]:
			vs.State = "unchecked"
		case l.errVars[v.Name]:
			vs.State = "error"
		case t != nil:
			vs.State = t.state
		}
		if t != nil && !t.checked.IsZero() && vs.State != "off" {
			c := t.checked.UTC()
			vs.Checked = &c
		}
		vs.Version = v.Version
		if vs.Version == "" && v.Fingerprint != "" {
			vs.Version = v.Fingerprint
		}
		if v.Missing {
			vs.Version = ""
		}
		l.leaseStatus(&vs, v)
		s.Variables = append(s.Variables, vs)
	}
	return s
}

// JSON is the status as indented JSON.
func (s Status) JSON() []byte {
	b, _ := json.MarshalIndent(s, "", "  ")
	return append(b, '\n')
}
