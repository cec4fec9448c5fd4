package refresh

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/secrets-init/secrets-init/internal/atomicfile"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/signals"
)

// An Actor is what the Loop acts on: the supervisor of the command.
type Actor interface {
	// Restart stops the command and starts it again with env; it returns
	// once the new command runs, or why it could not start.
	Restart(env []string) error
	// Signal sends sig to the command (as --forward-to says).
	Signal(sig syscall.Signal) error
	// Stop stops the command and makes secrets-init exit with code.
	Stop(code int)
	// PID is the command's pid now.
	PID() int
}

// Config configures a Loop.
type Config struct {
	Interval     time.Duration   // about how often to check (0: never, as with --refresh leases)
	OnChange     provider.Action // for a value in the environment
	OnFileChange provider.Action // for a ?file value
	Splay        time.Duration   // a random wait in [0, Splay] before acting
	Timeout      time.Duration   // bounds each round's checks (--timeout; 0: none)
	MaxStale     time.Duration   // stop with ExitStale when no check succeeded for this long (0: never)
	StatusFile   string          // "" for none
	Detectors    map[provider.Kind]Detector
	// Leasers open the stores that renew and revoke their leases and keep
	// their token (lease.go): the resolution's own stores (provider.Keep).
	Leasers map[provider.Kind]provider.Opener
	Clock   Clock
	Rand    *rand.Rand
	Log     *slog.Logger
	Actor   Actor
	// Idle, when set, is called each time Run goes to sleep until its
	// next wake-up: the supervisor returns the round's garbage to the
	// system there (debug.FreeOSMemory), see docs/performance.md.
	Idle func()
}

// ExitStale is secrets-init's exit code after --max-stale.
const ExitStale = 125

// target is one distinct fetch target that the Loop checks.
type target struct {
	t           provider.Target
	det         Detector
	version     string // the store's version id last seen or fetched
	fingerprint string // the fingerprint of the value last fetched
	checked     time.Time
	state       string // ok, stale, deleted, error
}

// Loop is the refresh loop of one run.
type Loop struct {
	cfg     Config
	res     *provider.Resolution
	targets []*target
	byT     map[provider.Target]*target
	unknown map[provider.Target]bool // of a store with no Detector: not checked

	now         time.Time
	nextCheck   time.Time // zero: never
	actAt       time.Time // zero: nothing to do
	lastCheck   time.Time
	lastSuccess time.Time
	lastRestart time.Time
	started     time.Time
	failures    int // in a row
	errVars     map[string]bool
	generation  int
	counters    Counters
	stopped     bool
	lease       leases
}

// Counters count the Loop's events since secrets-init started.
type Counters struct {
	Checks   int `json:"checks"`
	Changes  int `json:"changes"`
	Restarts int `json:"restarts"`
	Signals  int `json:"signals"`
	Failures int `json:"failures"`
}

// New prepares the Loop of a resolution made with provider's
// Config.Refresh (and its Fingerprint), whose command started now. The
// first check comes at a random time within the first interval.
func New(cfg Config, res *provider.Resolution) *Loop {
	now := cfg.Clock.Now()
	l := &Loop{cfg: cfg, res: res, byT: map[provider.Target]*target{}, unknown: map[provider.Target]bool{},
		now: now, lastSuccess: now, started: now, generation: 1, errVars: map[string]bool{}}
	watched := map[provider.Target]bool{}
	off := map[provider.Target][]string{}
	for _, v := range res.Variables() {
		if v.Ref.Opts.Refresh.Kind != provider.ActOff && !v.Ref.Pinned() {
			watched[v.Ref.Target] = true
		}
		if v.Ref.Opts.Refresh.Kind == provider.ActOff {
			off[v.Ref.Target] = append(off[v.Ref.Target], v.Name)
		}
	}
	skipped := map[provider.Kind][]string{}
	l.initLeases()
	for _, s := range res.Targets() {
		if !watched[s.Ref.Target] {
			continue
		}
		if s.Lease > 0 && len(off[s.Ref.Target]) > 0 {
			// Every key of one read comes from the same lease (SPEC
			// §3): one variable off makes the whole lease off, or its
			// variables would mix the credentials of two leases.
			cfg.Log.Info("refresh: a leased secret has a variable with ?refresh=off; none of its variables is renewed or read again",
				"store", s.Ref.Kind.String(), "secret", s.Ref.Target.Name, "off", strings.Join(off[s.Ref.Target], ","))
			continue
		}
		if s.Lease > 0 { // renewed or read again near its end, not polled
			l.track(s)
			continue
		}
		if s.Ref.IsWrite() {
			// A write without lease or expiration: never polled (each
			// poll would issue anew), as PlanOf says.
			l.unknown[s.Ref.Target] = true
			continue
		}
		det := cfg.Detectors[s.Ref.Kind]
		if cfg.Interval <= 0 { // --refresh leases: no value is checked
			l.unknown[s.Ref.Target] = true
			continue
		}
		if det == nil {
			l.unknown[s.Ref.Target] = true
			skipped[s.Ref.Kind] = append(skipped[s.Ref.Kind], s.Name)
			continue
		}
		t := &target{t: s.Ref.Target, det: det, version: s.Version, fingerprint: s.Fingerprint, state: "ok"}
		l.targets = append(l.targets, t)
		l.byT[t.t] = t
	}
	for _, k := range provider.Kinds {
		if names := skipped[k]; len(names) > 0 {
			cfg.Log.Warn("refresh: this build has no change detection for this store; its references are not checked",
				"store", k.String(), "variables", strings.Join(names, ","))
		}
	}
	if cfg.Interval > 0 && len(l.targets) > 0 {
		l.nextCheck = now.Add(time.Duration(cfg.Rand.Int64N(int64(cfg.Interval))))
	}
	return l
}

// Run runs the Loop until ctx ends or the Loop stops the command. A
// receive on checkNow (--refresh-signal) checks at once.
func (l *Loop) Run(ctx context.Context, checkNow <-chan struct{}) {
	l.writeStatus()
	for {
		wake, ok := l.Step(ctx)
		if !ok {
			return
		}
		var timer <-chan time.Time
		if !wake.IsZero() {
			timer = l.cfg.Clock.After(wake.Sub(l.cfg.Clock.Now()))
		}
		if l.cfg.Idle != nil {
			l.cfg.Idle()
		}
		select {
		case <-ctx.Done():
			return
		case <-timer:
		case <-checkNow:
			l.CheckNow(ctx)
		}
	}
}

// Step does whatever is due at the clock's time: stop for --max-stale, a
// check, an action. It returns when it is next due (zero: never), or false
// once the Loop has stopped the command.
func (l *Loop) Step(ctx context.Context) (time.Time, bool) {
	if l.stopped {
		return time.Time{}, false
	}
	l.now = l.cfg.Clock.Now()
	if stale := l.staleAt(); !stale.IsZero() && !l.now.Before(stale) {
		l.cfg.Log.Error("refresh: no check has succeeded within --max-stale; stopping the command",
			"max_stale", l.cfg.MaxStale, "last_success", l.lastSuccess.UTC().Format(time.RFC3339))
		l.stopped = true
		l.cfg.Actor.Stop(ExitStale)
		return time.Time{}, false
	}
	if !l.nextCheck.IsZero() && !l.now.Before(l.nextCheck) {
		l.check(ctx)
		l.nextCheck = l.now.Add(l.jitter())
	}
	if due := l.leaseWake(); !due.IsZero() && !l.now.Before(due) {
		l.leaseStep(ctx)
	}
	if !l.actAt.IsZero() && !l.now.Before(l.actAt) {
		l.actAt = time.Time{}
		l.act(ctx)
	}
	wake := l.nextCheck
	for _, t := range []time.Time{l.actAt, l.staleAt(), l.leaseWake()} {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	return wake, true
}

// CheckNow checks at once (and acts, when a change is due now), leaving
// the schedule as it was.
func (l *Loop) CheckNow(ctx context.Context) {
	if l.stopped {
		return
	}
	l.now = l.cfg.Clock.Now()
	l.cfg.Log.Info("refresh: checking now (--refresh-signal)")
	l.check(ctx)
	if !l.actAt.IsZero() && !l.now.Before(l.actAt) {
		l.actAt = time.Time{}
		l.act(ctx)
	}
}

// staleAt is when --max-stale stops the command (zero: never; also when
// nothing is checked at all).
func (l *Loop) staleAt() time.Time {
	if l.cfg.MaxStale <= 0 || l.nextCheck.IsZero() {
		return time.Time{}
	}
	return l.lastSuccess.Add(l.cfg.MaxStale)
}

// jitter is the interval ±10 %.
func (l *Loop) jitter() time.Duration {
	d := l.cfg.Interval
	return d - d/10 + time.Duration(l.cfg.Rand.Int64N(int64(d/5)+1))
}

// check is one round's fetch half: detect, re-read what changed, stage.
// Nothing is delivered; on any failure nothing is staged.
func (l *Loop) check(ctx context.Context) {
	l.counters.Checks++
	l.lastCheck = l.now
	defer l.writeStatus()
	if l.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Timeout)
		defer cancel()
	}
	byDet := map[Detector][]*target{}
	var dets []Detector
	for _, t := range l.targets {
		if _, ok := byDet[t.det]; !ok {
			dets = append(dets, t.det)
		}
		byDet[t.det] = append(byDet[t.det], t)
	}
	var changed []provider.Changed
	var problems []string
	for _, d := range dets {
		ts := byDet[d]
		ptargets := make([]provider.Target, len(ts))
		for i, t := range ts {
			ptargets[i] = t.t
		}
		seen := d.Detect(ctx, ptargets)
		for i, t := range ts {
			s := Seen{Err: errors.New("internal error: the detector answered no version")}
			if i < len(seen) {
				s = seen[i]
			}
			t.checked = l.now
			switch {
			case s.Err != nil:
				t.state = "stale"
				problems = append(problems, t.t.Kind.String()+" "+t.t.Name+": "+oneLine(s.Err))
			case s.Unchecked:
				t.state = "unchecked"
			case s.Deleted:
				if t.state != "deleted" {
					l.cfg.Log.Warn("refresh: a secret was deleted; its variables keep their last values", "store", t.t.Kind.String(), "secret", t.t.Name)
				}
				t.state = "deleted"
			case s.Version != t.seenAs(s):
				changed = append(changed, t.changed(s))
				t.state = "ok"
			default:
				t.state = "ok"
			}
		}
	}
	if len(problems) > 0 {
		l.fail("cannot check", problems)
		return
	}
	if len(changed) > 0 {
		fetched, err := l.res.RefetchAt(ctx, changed)
		var moved *provider.MovedError
		if errors.As(err, &moved) { // nothing staged: the next round sees it again
			l.cfg.Log.Info("refresh: a secret changed again while it was read; it is read again next round", "detail", oneLine(err))
			fetched, err = nil, nil
		}
		if err != nil {
			var f *provider.Failure
			if errors.As(err, &f) {
				for _, v := range f.Vars {
					problems = append(problems, v.Name+": "+v.Reference+": "+v.Reason())
					l.errVars[v.Name] = true
				}
			} else {
				problems = append(problems, oneLine(err))
			}
			l.fail("cannot re-read a changed secret", problems)
			return
		}
		for _, f := range fetched {
			t := l.byT[f.Target]
			switch {
			case f.Deleted:
				t.state = "deleted"
			default:
				t.version, t.fingerprint = f.Version, f.Fingerprint
			}
		}
	}
	clear(l.errVars)
	l.lastSuccess, l.failures = l.now, 0
	l.cfg.Log.Debug("refresh: checked", "targets", len(l.targets), "changed", len(changed))
	if staged := l.res.Staged(); len(staged) > 0 && l.actAt.IsZero() {
		l.actAt = l.actTime(l.strongest(staged))
	}
}

// seenAs is what a Seen's Version is compared with: the fingerprint or
// the version id of the value last fetched.
func (t *target) seenAs(s Seen) string {
	if s.ByFingerprint || t.det.ByFingerprint() {
		return t.fingerprint
	}
	return t.version
}

// changed is what the re-read of a changed target is pinned to: the
// version id s saw, or the fingerprint of the value it read.
func (t *target) changed(s Seen) provider.Changed {
	if s.ByFingerprint || t.det.ByFingerprint() {
		return provider.Changed{Target: t.t, Fingerprint: s.Version}
	}
	return provider.Changed{Target: t.t, Version: s.Version}
}

// fail records a failed round: the command keeps its last good values.
func (l *Loop) fail(what string, problems []string) {
	l.failures++
	l.counters.Failures++
	l.cfg.Log.Warn("refresh: "+what+"; keeping the last good values and trying again next round",
		"failures_in_a_row", l.failures, "problems", strings.Join(problems, "; "))
}

// actTime is when to act on a change: now, or with --splay a random time
// within it, and never a second restart within one interval.
func (l *Loop) actTime(a provider.Action) time.Time {
	if l.cfg.Splay <= 0 {
		return l.now
	}
	at := l.now.Add(time.Duration(l.cfg.Rand.Int64N(int64(l.cfg.Splay) + 1)))
	if a.Kind == provider.ActRestart && !l.lastRestart.IsZero() {
		if earliest := l.lastRestart.Add(l.cfg.Interval); at.Before(earliest) {
			at = earliest
		}
	}
	return at
}

// action is what a change to a variable calls for.
func (l *Loop) action(c provider.Change) provider.Action {
	switch {
	case c.Ref.Opts.Refresh.Kind != provider.ActDefault:
		return c.Ref.Opts.Refresh
	case c.Ref.Opts.File:
		return l.cfg.OnFileChange
	}
	return l.cfg.OnChange
}

// strongest is the action of a round: restart, else the signals, else none.
func (l *Loop) strongest(changes []provider.Change) provider.Action {
	best := provider.Action{Kind: provider.ActNone}
	for _, c := range changes {
		if a := l.action(c); a.Kind > best.Kind {
			best = a
		}
	}
	return best
}

// act is one round's second half: deliver what is staged (the files switch
// as one set), then restart, signal, or only log.
func (l *Loop) act(ctx context.Context) {
	changes, err := l.res.Commit()
	if err != nil {
		l.fail("cannot deliver the new values", []string{oneLine(err)})
		l.writeStatus()
		if len(changes) == 0 {
			return
		}
	}
	if len(changes) == 0 {
		l.afterAction(ctx, false)
		return
	}
	l.generation++
	l.counters.Changes += len(changes)
	names := make([]string, len(changes))
	var sigs []syscall.Signal
	for i, c := range changes {
		names[i] = c.Name
		if a := l.action(c); a.Kind == provider.ActSignal && !slices.Contains(sigs, a.Signal) {
			sigs = append(sigs, a.Signal)
		}
	}
	best := l.strongest(changes)
	log := l.cfg.Log.With("variables", strings.Join(names, ","), "generation", l.generation)
	switch best.Kind {
	case provider.ActRestart:
		log.Info("refresh: values changed; restarting the command")
		l.counters.Restarts++
		l.lastRestart, l.started = l.now, l.now
		err := l.cfg.Actor.Restart(l.res.Env)
		if err != nil {
			log.Error("refresh: restart failed", "err", err)
		}
		l.afterAction(ctx, err == nil)
	case provider.ActSignal:
		slices.Sort(sigs)
		words := make([]string, len(sigs))
		for i, s := range sigs {
			words[i] = signals.Name(s)
		}
		log.Info("refresh: values changed; signalling the command", "signals", strings.Join(words, ","))
		for _, s := range sigs {
			l.counters.Signals++
			if err := l.cfg.Actor.Signal(s); err != nil {
				log.Warn("refresh: cannot signal the command", "signal", signals.Name(s), "err", err)
			}
		}
	default:
		log.Info("refresh: values changed; no action (--on-change none)")
	}
	if best.Kind != provider.ActRestart {
		l.afterAction(ctx, false)
	}
	l.writeStatus()
}

// Counters returns the Loop's counters.
func (l *Loop) Counters() Counters { return l.counters }

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// writeStatus replaces the status file.
func (l *Loop) writeStatus() {
	if l.cfg.StatusFile == "" {
		return
	}
	if err := atomicfile.Write(l.cfg.StatusFile, strings.NewReader(string(l.Status().JSON())), 0o644); err != nil {
		l.cfg.Log.Warn("refresh: cannot write the status file", "err", err)
	}
}
