package refresh

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/secrets-init/secrets-init/provider"
)

// StoreDetector checks the targets of one store by its cheap version call
// (provider.Versioner: DescribeSecret, GetParameters, Google's latest,
// Azure's version id, Vault KV v2 metadata). A target whose call is denied
// (provider.ErrDenied) is read instead, and its value's fingerprint
// compared, from then on: the fallback is logged once per store, and a
// round never makes both calls for one target again. A target the store
// keeps no versions of (provider.ErrUnversioned: a Vault KV v1 secret, a
// dynamic secret) is not checked at all: reading a dynamic secret would
// issue new credentials every round. It is logged once, and never asked
// again.
type StoreDetector struct {
	Kind     provider.Kind
	Open     provider.Opener
	Settings provider.Settings // with a Limit
	FP       *Fingerprint
	Log      *slog.Logger

	store   provider.Store           // opened at the first check, kept
	byValue map[provider.Target]bool // targets read instead of versioned
	never   map[provider.Target]bool // targets with no versions: not checked
	logged  bool
	loggedU bool
}

// ByFingerprint is false: a Seen says when it is a fingerprint.
func (d *StoreDetector) ByFingerprint() bool { return false }

// Detect asks the store for the current version of each target.
func (d *StoreDetector) Detect(ctx context.Context, targets []provider.Target) []Seen {
	out := make([]Seen, len(targets))
	if d.store == nil {
		st, err := d.Open(ctx, d.Settings)
		if err != nil {
			for i := range out {
				out[i].Err = err
			}
			return out
		}
		d.store = st
	}
	if d.byValue == nil {
		d.byValue, d.never = map[provider.Target]bool{}, map[provider.Target]bool{}
	}
	v, versioned := d.store.(provider.Versioner)
	var ask, read []int
	for i, t := range targets {
		if d.never[t] {
			out[i].Unchecked = true
			continue
		}
		if versioned && !d.byValue[t] {
			ask = append(ask, i)
		} else {
			read = append(read, i)
		}
	}
	if len(ask) > 0 {
		rs := provider.Versions(ctx, v, pick(targets, ask))
		var why, unversioned []string
		for k, i := range ask {
			r := rs[k]
			switch {
			case errors.Is(r.Err, provider.ErrDenied):
				d.byValue[targets[i]] = true
				read = append(read, i)
				why = append(why, oneLine(r.Err))
			case errors.Is(r.Err, provider.ErrUnversioned):
				d.never[targets[i]] = true
				out[i].Unchecked = true
				unversioned = append(unversioned, targets[i].Name)
			case errors.Is(r.Err, provider.ErrNotFound):
				out[i].Deleted = true
			case r.Err != nil:
				out[i].Err = r.Err
			default:
				out[i].Version = r.Version
			}
		}
		if len(why) > 0 && !d.logged {
			d.logged = true
			d.Log.Warn("refresh: the store's version check is denied; reading values and comparing a keyed hash instead",
				"store", d.Kind.String(), "reason", strings.Join(why, "; "))
		}
		if len(unversioned) > 0 && !d.loggedU {
			d.loggedU = true
			d.Log.Warn("refresh: the store keeps no versions of these secrets, so they are not checked",
				"store", d.Kind.String(), "secrets", strings.Join(unversioned, ","))
		}
	}
	if len(read) > 0 {
		rs := d.store.Fetch(ctx, pick(targets, read))
		for k, i := range read {
			var r provider.Result
			if k < len(rs) {
				r = rs[k]
			}
			switch {
			case errors.Is(r.Err, provider.ErrNotFound):
				out[i].Deleted = true
			case r.Err != nil:
				out[i].Err = r.Err
			case r.Value == nil:
				out[i].Err = errors.New("the store returned no value")
			default:
				out[i].Version, out[i].ByFingerprint = d.FP.Of(r.Value), true
			}
		}
	}
	return out
}

func pick(targets []provider.Target, at []int) []provider.Target {
	out := make([]provider.Target, len(at))
	for k, i := range at {
		out[k] = targets[i]
	}
	return out
}
