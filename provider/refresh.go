package provider

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

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

// Changed is a target that a check saw change, and what it saw: the
// store's version id, or (when the check read the value instead, as for a
// secretfile: or a denied version call) the fingerprint of that value.
type Changed struct {
	Target      Target
	Version     string // the version id the check saw: the re-read is pinned to it
	Fingerprint string // else the Config.Fingerprint of the value the check read
}

// MovedError is RefetchAt's error when a target checked by its value's
// fingerprint changed again between the check and the read (it has no
// version to pin the read to): nothing is staged, and the next round
// checks it again. It is not a failure of the store. It holds no value.
type MovedError struct{ Targets []Target }

func (e *MovedError) Error() string {
	names := make([]string, len(e.Targets))
	for i, t := range e.Targets {
		names[i] = t.Kind.String() + " " + t.Name
	}
	return "changed again between the check and the read: " + strings.Join(names, ", ")
}

// Refetch fetches targets again at whatever version they hold now: see
// RefetchAt.
func (r *Resolution) Refetch(ctx context.Context, targets []Target) ([]Fetched, error) {
	cs := make([]Changed, len(targets))
	for i, t := range targets {
		cs[i].Target = t
	}
	return r.RefetchAt(ctx, cs)
}

// RefetchAt fetches changed targets again and applies every selector and
// option of the variables that name them (but not those with
// ?refresh=off, which keep their first values), as Resolve does.
//
// Each read is the one the check saw (SPEC §8: "re-read only what changed,
// pinned to the version just seen"), so that a second change racing
// between the check and the read is not delivered under the first one's
// version: a target with a Version is read pinned to it (Target.At); one
// with a Fingerprint is read as it is, and when the value read is not the
// one the check saw, nothing is staged and the error is a *MovedError.
//
// Only when all of that succeeds are the new values staged for Commit;
// otherwise nothing is, and the error is a *Failure naming each variable.
// A target that no longer exists is not a failure: its variables keep
// their values (Deleted), and an optional one that was missing stays
// unset.
func (r *Resolution) RefetchAt(ctx context.Context, changed []Changed) ([]Fetched, error) {
	if r.vars == nil && len(changed) > 0 {
		return nil, errors.New("internal error: the resolution was not made for refresh")
	}
	ctx, cause, cancel := withTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	want := make(map[Target]Changed, len(changed))
	for _, c := range changed {
		want[c.Target] = c
	}
	var olds, news []*variable
	for _, v := range r.vars {
		c, ok := want[v.ref.Target]
		if v.stat.Err == nil && v.ref.Opts.Refresh.Kind != ActOff && ok {
			ref := v.ref
			ref.Target = c.Target.At(c.Version)
			olds = append(olds, v)
			news = append(news, &variable{index: v.index, name: v.name, ref: ref,
				stat: Status{Name: v.name, Kind: v.ref.Kind, Reference: v.stat.Reference, Ref: v.ref}})
		}
	}
	cfg := r.cfg
	cfg.IgnoreMissing = false // a deletion keeps the last value, below
	fetch(ctx, cause, cfg, news)
	var failed []Status
	var moved []Target
	fetched := map[Target]*Fetched{}
	for i, n := range news {
		t := olds[i].ref.Target
		c := want[t]
		f := fetched[t]
		if f == nil {
			f = &Fetched{Target: t, Version: cmp.Or(n.stat.Version, c.Version), Fingerprint: n.stat.Fingerprint}
			fetched[t] = f
			if n.stat.Err == nil && c.Fingerprint != "" && n.stat.Fingerprint != c.Fingerprint {
				moved = append(moved, t)
			}
		}
		switch {
		case errors.Is(n.stat.Err, ErrNotFound), n.stat.Missing:
			f.Deleted = true
			n.stat.Err = nil
			continue
		case n.stat.Err == nil && c.Version != "" && n.stat.Version != "" && n.stat.Version != c.Version:
			n.stat.Err = fmt.Errorf("the store served version %s, not the version %s it was asked for", n.stat.Version, c.Version)
		case n.stat.Err == nil:
			n.stat.Version = cmp.Or(n.stat.Version, c.Version)
			n.stat.Err = n.finish(cfg)
		}
		if n.stat.Err != nil {
			failed = append(failed, n.stat)
		}
	}
	if len(failed) > 0 {
		return nil, &Failure{Vars: failed}
	}
	if len(moved) > 0 {
		return nil, &MovedError{Targets: moved}
	}
	for i, n := range news {
		old := olds[i]
		f := fetched[old.ref.Target]
		if f.Deleted {
			continue
		}
		old.stat.Version, old.stat.Fingerprint = n.stat.Version, n.stat.Fingerprint
		old.stat.Lease, old.stat.Expires = n.stat.Lease, n.stat.Expires
		old.stat.LeaseID, old.stat.Renewable = n.stat.LeaseID, n.stat.Renewable
		old.next, old.staged = n.content, true
	}
	var out []Fetched
	for _, c := range changed {
		if f := fetched[c.Target]; f != nil {
			out = append(out, *f)
			delete(fetched, c.Target) // a target named twice is reported once
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
