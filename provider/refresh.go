package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/secrets-init/secrets-init/internal/atomicfile"
)

// Refresh support: a Resolution made with Config.Refresh can fetch some of
// its targets again (Refetch), through the very code of Resolve, stage the
// new values, and deliver them (Commit). Nothing a running command sees
// changes before Commit, and Commit changes the private files as one set.

// Fetched is what Refetch learnt about one target.
type Fetched struct {
	Target      Target
	Version     string // the version the store served ("" when it does not say)
	Fingerprint string // Config.Fingerprint of the value as fetched
	Deleted     bool   // the secret no longer exists: its variables keep their values
}

// Change is a variable whose delivered value changes at a Commit. It holds
// no value.
type Change struct {
	Name string
	Ref  Ref
}

// Targets lists the distinct targets of the resolved references, in
// environment order, with the Status of the first variable that names each.
func (r *Resolution) Targets() []Status {
	var out []Status
	seen := map[Target]bool{}
	for _, v := range r.vars {
		if v.stat.Err != nil || seen[v.ref.Target] {
			continue
		}
		seen[v.ref.Target] = true
		out = append(out, v.stat)
	}
	return out
}

// Variables returns the Status of every resolved variable as it is now
// (its Version and Fingerprint those of the value last fetched).
func (r *Resolution) Variables() []Status {
	out := make([]Status, 0, len(r.vars))
	for _, v := range r.vars {
		out = append(out, v.stat)
	}
	return out
}

// Refetch fetches targets again and applies every selector and option of
// the variables that name them (but not those with ?refresh=off, which
// keep their first values), as Resolve does. Only when all of that
// succeeds are the new values staged for Commit; otherwise nothing is, and
// the error is a *Failure naming each variable. A target that no longer
// exists is not a failure: its variables keep their values (Deleted), and
// an optional one that was missing stays unset.
func (r *Resolution) Refetch(ctx context.Context, targets []Target) ([]Fetched, error) {
	if r.vars == nil && len(targets) > 0 {
		return nil, errors.New("internal error: the resolution was not made for refresh")
	}
	ctx, cause, cancel := withTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var olds, news []*variable
	for _, v := range r.vars {
		if v.stat.Err == nil && v.ref.Opts.Refresh.Kind != ActOff && slices.Contains(targets, v.ref.Target) {
			olds = append(olds, v)
			news = append(news, &variable{index: v.index, name: v.name, ref: v.ref,
				stat: Status{Name: v.name, Kind: v.ref.Kind, Reference: v.stat.Reference, Ref: v.ref}})
		}
	}
	cfg := r.cfg
	cfg.IgnoreMissing = false // a deletion keeps the last value, below
	fetch(ctx, cause, cfg, news)
	var failed []Status
	fetched := map[Target]*Fetched{}
	for _, n := range news {
		f := fetched[n.ref.Target]
		if f == nil {
			f = &Fetched{Target: n.ref.Target, Version: n.stat.Version, Fingerprint: n.stat.Fingerprint}
			fetched[n.ref.Target] = f
		}
		switch {
		case errors.Is(n.stat.Err, ErrNotFound), n.stat.Missing:
			f.Deleted = true
			n.stat.Err = nil
			continue
		case n.stat.Err == nil:
			n.stat.Err = n.finish(cfg)
		}
		if n.stat.Err != nil {
			failed = append(failed, n.stat)
		}
	}
	if len(failed) > 0 {
		return nil, &Failure{Vars: failed}
	}
	for i, n := range news {
		old := olds[i]
		f := fetched[n.ref.Target]
		if f.Deleted {
			continue
		}
		old.stat.Version, old.stat.Fingerprint = n.stat.Version, n.stat.Fingerprint
		old.stat.Lease, old.stat.Expires = n.stat.Lease, n.stat.Expires
		old.stat.LeaseID, old.stat.Renewable = n.stat.LeaseID, n.stat.Renewable
		old.next, old.staged = n.content, true
	}
	var out []Fetched
	for _, t := range targets {
		if f := fetched[t]; f != nil {
			out = append(out, *f)
		}
	}
	return out, nil
}

// Staged lists the variables whose value Commit would change.
func (r *Resolution) Staged() []Change {
	var out []Change
	for _, v := range r.vars {
		if v.changes() {
			out = append(out, Change{Name: v.name, Ref: v.ref})
		}
	}
	return out
}

// changes reports whether v's staged value differs from its delivered one
// (or v was unset and now has a value).
func (v *variable) changes() bool {
	return v.staged && (v.stat.Missing || !bytes.Equal(v.next, v.content))
}

// Commit delivers the staged values: the private files switch as one set,
// file=PATH files are replaced by rename, and Env is rebuilt. It returns
// the variables that changed. When the private set cannot be written,
// nothing changes and the staged values stay for the next Commit.
func (r *Resolution) Commit() ([]Change, error) {
	var changed []*variable
	set := map[string][]byte{}
	for _, v := range r.vars {
		if v.changes() {
			changed = append(changed, v)
		}
	}
	if len(changed) == 0 {
		r.unstage()
		return nil, nil
	}
	files := r.Files
	setChanges := false
	for _, v := range r.vars {
		if v.stat.Err != nil || !v.ref.Opts.File || v.ref.Opts.FilePath != "" {
			continue
		}
		content := v.content
		if v.changes() {
			content, setChanges = v.next, true
		} else if v.stat.Missing {
			continue
		}
		if v.path == "" {
			path, err := files.reserve(v.name)
			if err != nil {
				return nil, err
			}
			v.path = path
		}
		set[v.path] = content
	}
	if setChanges {
		if err := files.writeSet(set); err != nil {
			return nil, err
		}
	}
	var out []Change
	var errs []error
	for _, v := range changed {
		if v.ref.Opts.FilePath != "" {
			path, err := filePath(v.ref.Opts.FilePath)
			if err == nil {
				err = atomicfile.Write(path, bytes.NewReader(v.next), 0o400)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: ?file: %w", v.name, err))
				continue // it stays staged, for the next round
			}
			v.value = []byte(path)
		} else if v.ref.Opts.File {
			v.value = []byte(v.path)
		} else {
			v.value = v.next
		}
		v.content, v.stat.Missing, v.staged, v.next = v.next, false, false, nil
		out = append(out, Change{Name: v.name, Ref: v.ref})
	}
	r.Env = childEnv(r.environ, r.vars, r.cfg)
	return out, errors.Join(errs...)
}

// unstage drops staged values equal to the delivered ones.
func (r *Resolution) unstage() {
	for _, v := range r.vars {
		v.staged, v.next = false, nil
	}
}

// UsageErrors returns the references of environ whose options are a usage
// error rather than a failure to resolve: refresh=SIGNAL without ?file.
func UsageErrors(environ, skip []string) []Status {
	var out []Status
	for _, v := range collect(environ, skip, false) {
		if errors.Is(v.stat.Err, ErrSignalNeedsFile) {
			out = append(out, v.stat)
		}
	}
	return out
}
