package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Config is what a resolution needs besides the environment.
type Config struct {
	Stores        map[Kind]Opener // the stores this binary was built with
	Settings      Settings        // handed to the stores' Openers
	Timeout       time.Duration   // bounds the whole resolution (0: none)
	Concurrency   int             // concurrent store calls (0: 1)
	ExpandJSON    bool            // --expand-json
	IgnoreMissing bool            // --ignore-missing
	Skip          []string        // --skip: variables never resolved
	AuthInputs    []string        // only for secrets-init to log in with: removed from the child's environment
	Passthrough   []string        // auth inputs the child may keep
	DryRun        bool            // check: resolve, but write no file
	FileDir       string          // where ?file's private directory goes (empty: /dev/shm or $TMPDIR)
	DetectJWE     bool            // SECRETS_INIT_JWE_DETECT: a bare JWE value is a jwe: reference
	// Refresh keeps what later rounds need (see Refetch), and puts the
	// private ?file files behind a directory symlink that switches them
	// as one set.
	Refresh bool
	// Fingerprint, when set, is applied to every value as fetched; its
	// result is Status.Fingerprint. It must be a keyed hash, so that it
	// tells nothing about the value.
	Fingerprint func(value []byte) string
}

// Status is the value-free outcome of one variable, for `check`.
type Status struct {
	Name      string
	Kind      Kind
	Reference string
	Version   string
	Err       error         // nil: resolved
	Missing   bool          // left unset: optional and not found
	Latency   time.Duration // how long its store took
	Ref       Ref           // the parsed reference (zero when malformed)
	// Fingerprint is Config.Fingerprint of the value as fetched, before
	// any selector ("" without one).
	Fingerprint string
	// Lease is Result.Lease: how long the value's credentials last (0:
	// no lease), and Expires when they stop, counted from the fetch.
	Lease   time.Duration
	Expires time.Time
	// LeaseID and Renewable are the Result's: the lease the value came
	// with, when its store can renew or revoke it.
	LeaseID   LeaseID
	Renewable bool
}

// Reason is why the variable failed, on one line ("" when it did not).
func (s Status) Reason() string {
	if s.Err == nil {
		return ""
	}
	return strings.Join(strings.Fields(s.Err.Error()), " ")
}

// Resolution is the result of Resolve.
type Resolution struct {
	Env    []string // the child's environment
	Files  *Files   // files written for ?file; Remove them on exit
	Report []Status // one per reference, in environment order

	// With Config.Refresh, what Refetch and Commit need.
	cfg     Config
	environ []string
	vars    []*variable
}

// Failure reports every variable that failed. Its Error has one line per
// variable: NAME: REFERENCE: reason.
type Failure struct{ Vars []Status }

func (f *Failure) Error() string {
	lines := make([]string, len(f.Vars))
	for i, v := range f.Vars {
		lines[i] = v.Name + ": " + v.Reference + ": " + v.Reason()
	}
	return strings.Join(lines, "\n")
}

// variable is one environment entry being resolved.
type variable struct {
	index   int // in environ
	name    string
	ref     Ref
	value   []byte // what the environment gets: the value, or its file's path
	content []byte // what is delivered: the value, in the environment or its file
	path    string // a private ?file's path, which never changes
	res     *Result
	stat    Status

	staged bool   // next is to be delivered at the next Commit
	next   []byte // the new content
}

// Resolve finds the references in environ (NAME=VALUE entries), resolves
// them and returns the child's environment. On any failure it returns a
// *Failure naming every failed variable, and no files remain.
func Resolve(ctx context.Context, cfg Config, environ []string) (*Resolution, error) {
	ctx, cause, cancel := withTimeout(ctx, cfg.Timeout)
	defer cancel()
	vars := collect(environ, cfg.Skip, cfg.DetectJWE)
	fetch(ctx, cause, cfg, vars)

	res := &Resolution{Files: &Files{dir: cfg.FileDir, switchSet: cfg.Refresh}}
	var failed []Status
	for _, v := range vars {
		if v.stat.Err == nil && !v.stat.Missing {
			v.stat.Err = v.finish(cfg)
		}
		if v.stat.Err != nil {
			failed = append(failed, v.stat)
		}
		res.Report = append(res.Report, v.stat)
	}
	if len(failed) == 0 && !cfg.DryRun {
		failed = writeFiles(vars, res.Files)
	}
	if len(failed) > 0 {
		res.Files.rollback()
		return res, &Failure{Vars: failed}
	}
	res.Env = childEnv(environ, vars, cfg)
	if cfg.Refresh {
		for _, v := range vars {
			v.res = nil // the raw value: only what is delivered is kept
		}
		res.cfg, res.environ, res.vars = cfg, environ, vars
	}
	return res, nil
}

// collect parses every environment entry; entries that are not references
// are not returned.
func collect(environ []string, skip []string, detectJWE bool) []*variable {
	var vars []*variable
	for i, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || slices.Contains(skip, name) {
			continue
		}
		ref, isRef, err := Parse(value)
		if !isRef && detectJWE {
			ref, isRef, err = ParseBare(value)
		}
		if !isRef {
			continue
		}
		v := &variable{index: i, name: name, ref: ref}
		v.stat = Status{Name: name, Kind: ref.Kind, Reference: Shown(value, ref, err, detectJWE), Err: err, Ref: ref}
		if err != nil {
			v.stat.Kind = 0
			v.stat.Err = fmt.Errorf("malformed reference: %w", err)
		}
		vars = append(vars, v)
	}
	return vars
}

// withTimeout bounds ctx by timeout (--timeout; 0: no bound) and returns
// the deadline's cause: nil means context.DeadlineExceeded (an earlier
// deadline of ctx's own).
func withTimeout(ctx context.Context, timeout time.Duration) (context.Context, error, context.CancelFunc) {
	if timeout <= 0 {
		return ctx, nil, func() {}
	}
	var cause error
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > timeout {
		cause = deadlineError{timeout}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, cause)
	return ctx, cause, cancel
}

// fetch resolves the distinct targets of vars, every store at once. cause
// is the cause of ctx's deadline.
func fetch(ctx context.Context, cause error, cfg Config, vars []*variable) {
	byKind := map[Kind][]Target{}
	slot := map[Target]int{}
	for _, v := range vars {
		if v.stat.Err != nil {
			continue
		}
		t := v.ref.Target
		if _, ok := slot[t]; !ok {
			slot[t] = len(byKind[t.Kind])
			byKind[t.Kind] = append(byKind[t.Kind], t)
		}
	}
	type answer struct {
		kind    Kind
		results []Result
		start   time.Time // when the store was called
		latency time.Duration
	}
	answers := make(chan answer, len(byKind))
	s := cfg.Settings
	s.Limit = NewLimiter(cfg.Concurrency)
	// The stores' context ends a grace before the deadline, in which they
	// report why they ran out of time; a store that ignores its context
	// must not keep the command from starting or failing past it.
	ctx, cancel := storeContext(ctx, cause)
	defer cancel()
	for kind, targets := range byKind {
		go func() {
			start := time.Now()
			rs := fetchKind(ctx, cfg.Stores[kind], s, kind, targets)
			answers <- answer{kind, rs, start, time.Since(start)}
		}()
	}
	got := map[Kind]answer{}
	done, late := ctx.Done(), (<-chan time.Time)(nil)
wait:
	for len(got) < len(byKind) {
		select {
		case a := <-answers:
			got[a.kind] = a
		case <-done:
			done, late = nil, time.After(graceAfterDeadline)
		case <-late:
			break wait
		}
	}
	for _, v := range vars {
		if v.stat.Err != nil {
			continue
		}
		a, ok := got[v.ref.Kind]
		if !ok {
			v.stat.Err = contextError(ctx, ctx.Err())
			continue
		}
		r := a.results[slot[v.ref.Target]]
		v.res, v.stat.Latency, v.stat.Version = &r, a.latency, r.Version
		if r.Lease > 0 && r.Err == nil {
			// Counted from the call, not the answer: never later
			// than the store's own end of the lease.
			v.stat.Lease, v.stat.Expires = r.Lease, a.start.Add(r.Lease)
			v.stat.LeaseID, v.stat.Renewable = r.LeaseID, r.Renewable
		}
		if cfg.Fingerprint != nil && r.Value != nil {
			v.stat.Fingerprint = cfg.Fingerprint(r.Value)
		}
		switch {
		case r.Err != nil:
			v.stat.Err = contextError(ctx, r.Err)
		case r.Value == nil && ctx.Err() != nil: // a call the deadline kept from starting
			v.stat.Err = contextError(ctx, ctx.Err())
		case r.Value == nil:
			v.stat.Err = errors.New("the store returned no value")
		}
		if errors.Is(v.stat.Err, ErrNotFound) && (v.ref.Opts.Optional || cfg.IgnoreMissing) {
			v.stat.Err, v.stat.Missing = nil, true
		}
	}
}

// fetchKind opens one store and fetches its targets. Whatever the store
// does, it returns one Result per target.
func fetchKind(ctx context.Context, open Opener, s Settings, kind Kind, targets []Target) (rs []Result) {
	if open == nil {
		return Failed(len(targets), fmt.Errorf("this binary was built without the %s store (build tag no_%s)", kind, kind.tag()))
	}
	defer func() {
		if recover() != nil {
			rs = Failed(len(targets), fmt.Errorf("internal error in the %s store", kind))
		}
	}()
	p, err := open(ctx, s)
	if err != nil {
		return Failed(len(targets), err)
	}
	rs = p.Fetch(ctx, targets)
	if len(rs) != len(targets) {
		return Failed(len(targets), fmt.Errorf("internal error: the %s store answered %d of %d targets", kind, len(rs), len(targets)))
	}
	return rs
}

// graceAfterDeadline is how long stores may take, once their context has
// ended, to say why they ran out of time: their context ends that much
// before the deadline.
const graceAfterDeadline = 250 * time.Millisecond

// storeContext returns the context stores are given: ctx, ending
// graceAfterDeadline before ctx's deadline, so that a store that reports
// when its context ends is heard by the deadline. With less than twice
// the grace left (a short --timeout), it ends halfway to the deadline,
// and the engine waits for reports past it. cause is the deadline's.
func storeContext(ctx context.Context, cause error) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	early := min(graceAfterDeadline, time.Until(d)/2)
	return context.WithDeadlineCause(ctx, d.Add(-early), cause)
}

// timerSkew is how much sooner than a context a client's timer for the
// same deadline may fire: an error of a context's kind that close to its
// deadline is the deadline's.
const timerSkew = 50 * time.Millisecond

// deadlineError is the cause of a resolution that ran out of time.
type deadlineError struct{ d time.Duration }

func (e deadlineError) Error() string {
	return fmt.Sprintf("deadline of %s exceeded (--timeout)", e.d)
}

// contextError explains err in terms of the resolution's end, when the
// context ended it, keeping what the store said it was doing.
func contextError(ctx context.Context, err error) error {
	if !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return err
	}
	cause := context.Cause(ctx)
	if d, ok := ctx.Deadline(); ok && cause == nil && time.Until(d) < timerSkew {
		// A client's own timer for ctx's deadline (gRPC's, net/http's)
		// can fire a moment before ctx ends: ctx ends at d, so wait.
		<-ctx.Done()
		cause = context.Cause(ctx)
	}
	if cause == nil {
		return err
	}
	if err == ctx.Err() || err.Error() == ctx.Err().Error() {
		return cause
	}
	return fmt.Errorf("%v: %w", cause, err)
}

// finish turns a fetched value into what the variable is given: it applies
// the selector, the encoding and trim, and checks it can be delivered.
func (v *variable) finish(cfg Config) error {
	val := v.res.Value
	o := v.ref.Opts
	if o.File && v.res.FileValue != nil {
		val = v.res.FileValue
	}
	if v.res.Binary && !o.File {
		return errors.New("the secret is binary: deliver it in a file with ?file")
	}
	if v.ref.Key != "" {
		var err error
		if val, err = selectKey(val, v.ref.Key); err != nil {
			return err
		}
	}
	if o.Base64 {
		var err error
		if val, err = decodeBase64(val); err != nil {
			return err
		}
	}
	if o.Trim {
		val = trimNewline(val)
	}
	if !o.File && slices.Contains(val, 0) {
		return errors.New("the value contains a NUL byte, which an environment variable cannot hold: deliver it with ?file")
	}
	v.value, v.content = val, val
	if cfg.ExpandJSON && v.ref.Key == "" && !o.File && isJSONObject(val) {
		if _, err := expandJSON(v.name, val); err != nil {
			return err
		}
	}
	return nil
}

// writeFiles delivers the ?file values, and reports the variables whose
// file could not be written.
func writeFiles(vars []*variable, files *Files) []Status {
	var failed []Status
	set := map[string][]byte{}
	var inSet []*variable
	for _, v := range vars {
		if v.stat.Err != nil || v.stat.Missing || !v.ref.Opts.File {
			continue
		}
		if files.switchSet && v.ref.Opts.FilePath == "" {
			path, err := files.reserve(v.name)
			if err != nil {
				v.stat.Err = err
				failed = append(failed, v.stat)
				continue
			}
			v.path, v.value = path, []byte(path)
			set[path] = v.content
			inSet = append(inSet, v)
			continue
		}
		path, err := files.Write(v.name, v.ref.Opts.FilePath, v.value)
		if err != nil {
			v.stat.Err = err
			failed = append(failed, v.stat)
			continue
		}
		v.value = []byte(path)
	}
	if len(set) > 0 {
		if err := files.writeSet(set); err != nil {
			for _, v := range inSet {
				v.stat.Err = err
				failed = append(failed, v.stat)
			}
		}
	}
	return failed
}

// childEnv builds the child's environment: environ in its order, with
// references replaced, missing optional ones dropped, JSON expanded, and
// cfg.AuthInputs removed unless passed through.
func childEnv(environ []string, vars []*variable, cfg Config) []string {
	byIndex := make(map[int]*variable, len(vars))
	for _, v := range vars {
		byIndex[v.index] = v
	}
	explicit := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		explicit[name] = true
	}
	env := make([]string, 0, len(environ))
	for i, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(cfg.AuthInputs, name) && !slices.Contains(cfg.Passthrough, name) {
			continue
		}
		v, ok := byIndex[i]
		switch {
		case !ok:
			env = append(env, kv)
		case v.stat.Missing:
		case cfg.ExpandJSON && v.ref.Key == "" && !v.ref.Opts.File && isJSONObject(v.value):
			members, _ := expandJSON(v.name, v.value)
			for _, m := range members {
				if !explicit[m.name] {
					env = append(env, m.name+"="+m.value)
				}
			}
		default:
			env = append(env, name+"="+string(v.value))
		}
	}
	return env
}
