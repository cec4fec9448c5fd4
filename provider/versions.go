package provider

import (
	"context"
	"errors"
)

// ErrDenied is wrapped by a Versioner's error when the store refuses the
// cheap version call for lack of permission (the role may read values but
// not metadata). The caller can fall back to reading values.
var ErrDenied = errors.New("the version check is denied")

// ErrUnversioned is wrapped by a Versioner's error when the store keeps
// no versions of the target (a Vault KV v1 secret, any other Vault path):
// only its value can tell whether it changed.
var ErrUnversioned = errors.New("the store keeps no versions of it")

// A Versioner is a Store that can tell the version it holds now of each
// target without reading its value: the cheap change detection of refresh
// (SPEC §8). Call it through Versions, which never asks about a pinned
// target.
type Versioner interface {
	// Versions returns one Result per target, in the same order, with
	// only Version set (never a Value): the version a Fetch of the target
	// would serve now, in the form Fetch reports it. Err wraps
	// ErrNotFound when the secret (or the version its stage, label or
	// alias names) is gone, ErrDenied when the call is refused for lack
	// of permission, and ErrUnversioned when the store has no versions
	// for it. As for Fetch: calls go through Settings.Limit, failures are
	// retried under the engine's Backoff until ctx ends, and a Result
	// left unset because ctx ended gets ctx's error from Versions.
	Versions(ctx context.Context, targets []Target) []Result
}

// Versions asks v for the current version of every target that is not
// Pinned, in one call with all of them. A pinned target is never asked: its
// Result is its own Version. The Results hold no Value whatever v returns.
func Versions(ctx context.Context, v Versioner, targets []Target) []Result {
	rs := make([]Result, len(targets))
	var ask []Target
	var at []int
	for i, t := range targets {
		if t.Pinned() {
			rs[i].Version = t.Version
			continue
		}
		ask = append(ask, t)
		at = append(at, i)
	}
	if len(ask) == 0 {
		return rs
	}
	got := v.Versions(ctx, ask)
	for k, i := range at {
		var r Result
		if k < len(got) {
			r = got[k]
		}
		rs[i] = Result{Version: r.Version, Err: r.Err}
		switch {
		case r.Err != nil:
			rs[i].Version = ""
		case r.Version == "" && ctx.Err() != nil:
			rs[i].Err = ctx.Err()
		case r.Version == "":
			rs[i].Err = errors.New("the store reported no version")
		}
	}
	return rs
}

// At returns t pinned to version, a version its store reported for it (a
// Versioner's, or a Fetch's Result.Version), in the store's own pinned
// form: a Secrets Manager VersionId (the stage dropped), an SSM name:N, a
// Google versions/N, an Azure /VERSION, a Vault KV v2 version=N. The
// result is Pinned. A target of a store without versions (secretfile:,
// jwe:) and an empty version leave t as it is. This is the one rule by
// which a refresh re-read reads exactly the version its check saw.
func (t Target) At(version string) Target {
	if version == "" {
		return t
	}
	switch t.Kind {
	case SecretsManager:
		t.Version, t.Stage = version, ""
	case SSM, Google, Vault, Azure:
		t.Version = version
	}
	return t
}
