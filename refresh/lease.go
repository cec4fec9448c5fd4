package refresh

import (
	"context"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// Leases (SPEC §8, "Vault dynamic secrets"). A value that came with a
// lease (provider.Status.Lease) is not polled: the Loop acts at about two
// thirds of the lease's remaining life. A renewable lease whose store is
// a provider.Leaser is renewed then; any other (not renewable, no lease
// id, a renewal cut short by the lease's max TTL, a PKI certificate's
// expiration) is read again, and the new values are acted on as for a
// change. The lease a re-read supersedes is revoked once the command
// that used it has been reaped by a restart; after a signal or no action
// the old command still runs with it, so it is left to expire. At exit,
// leases are left alone (as vault-env does): the credentials end with
// their TTL.
//
// The store's token is looked up at the first step and renewed at two
// thirds of its TTL; one that cannot be renewed (or whose renewal is cut
// by its max TTL) is replaced by a new login when the store has an auth
// method, and the leases read under the old one, which end with it, are
// read again at once. Otherwise one warning says when it ends.

// A failed lease or token call is tried again after a third of the time
// left, at least minWait; once the lease or token has ended, after a
// third of its TTL, between minRetry and maxRetry.
const (
	minWait  = time.Second
	minRetry = 5 * time.Second
	maxRetry = 10 * time.Minute
)

// leased is one target whose value came with a lease.
type leased struct {
	t         provider.Target
	names     []string // its variables, for log lines
	id        provider.LeaseID
	renewable bool
	ttl       time.Duration // as issued: the increment asked at each renewal
	end       time.Time     // when its credentials stop
	next      time.Time     // when to renew it or read it again
	reread    bool          // at next: read new credentials instead of renewing
	checked   time.Time     // last successful renewal or read
	state     string        // ok, stale
}

// tokenWatch keeps one store's token alive.
type tokenWatch struct {
	kind     provider.Kind
	next     time.Time // zero: nothing to do
	op       provider.TokenOp
	ttl      time.Duration // the longest TTL seen: a renewal that gives less was cut by the max TTL
	end      time.Time     // zero: it does not end
	failures int           // in a row (the first one is logged)
	warned   bool
}

// superseded is a lease that a re-read replaced, waiting for the restart
// that reaps the command that used it.
type superseded struct {
	t     provider.Target
	id    provider.LeaseID
	names []string
}

// leases is the Loop's lease state.
type leases struct {
	list       []*leased
	byT        map[provider.Target]*leased
	tokens     []*tokenWatch
	leasers    map[provider.Kind]provider.Leaser
	noLeaser   map[provider.Kind]bool
	superseded []superseded
	// reaped are superseded leases whose command was reaped, waiting for
	// the store to open to be revoked, at revokeAt (zero: none).
	reaped   []superseded
	revokeAt time.Time
	counters LeaseCounters
}

// LeaseCounters count lease events since secrets-init started.
type LeaseCounters struct {
	Renewals    int `json:"renewals"`
	Rereads     int `json:"rereads"`
	Revocations int `json:"revocations"`
	TokenRenews int `json:"token_renewals"`
	Logins      int `json:"logins"`
}

// initLeases finds the stores to keep tokens of: those with a Leaser
// opener that the resolution used.
func (l *Loop) initLeases() {
	l.lease.byT = map[provider.Target]*leased{}
	l.lease.leasers = map[provider.Kind]provider.Leaser{}
	l.lease.noLeaser = map[provider.Kind]bool{}
	used := map[provider.Kind]bool{}
	for _, s := range l.res.Targets() {
		used[s.Kind] = true
	}
	for _, k := range provider.Kinds {
		if used[k] && l.cfg.Leasers[k] != nil {
			l.lease.tokens = append(l.lease.tokens, &tokenWatch{kind: k, next: l.now, op: provider.TokenLookup})
		}
	}
}

// track takes a target with a lease into the Loop's care.
func (l *Loop) track(s provider.Status) {
	le := &leased{t: s.Ref.Target, state: "ok", checked: l.now}
	for _, v := range l.res.Variables() {
		if v.Ref.Target == s.Ref.Target && v.Err == nil && v.Ref.Opts.Refresh.Kind != provider.ActOff {
			le.names = append(le.names, v.Name)
		}
	}
	le.take(s, l.now)
	l.lease.list = append(l.lease.list, le)
	l.lease.byT[le.t] = le
}

// take records a new lease of le's target, and when to act on it.
func (le *leased) take(s provider.Status, now time.Time) {
	le.id, le.renewable, le.ttl = s.LeaseID, s.Renewable, s.Lease
	// The engine counts the lease from its call (Expires); the Loop's
	// clock may be another (a test's): never later than either.
	le.end = now.Add(s.Lease)
	if !s.Expires.IsZero() && s.Expires.Before(le.end) {
		le.end = s.Expires
	}
	le.reread = le.id == "" || !le.renewable
	le.next = twoThirds(now, le.end)
}

// cutShort reports whether a renewal that gave ttl, of the asked want,
// was cut by a max TTL. Vault counts in whole seconds: a second less is
// not a cut.
func cutShort(ttl, want time.Duration) bool {
	return ttl < want-max(want/10, time.Second)
}

// twoThirds is two thirds of the way from now to end.
func twoThirds(now, end time.Time) time.Time {
	d := end.Sub(now)
	if d <= 0 {
		return now
	}
	return now.Add(d * 2 / 3)
}

// retryAt is when to try again a call that failed, for something that
// ends at end: after a third of the time left, at least minWait; once it
// has ended, after a third of its ttl, between minRetry and maxRetry.
func retryAt(now, end time.Time, ttl time.Duration) time.Time {
	d := end.Sub(now) / 3
	if d <= 0 {
		return now.Add(min(max(ttl/3, minRetry), maxRetry))
	}
	return now.Add(max(d, minWait))
}

// leaseWake is when the next lease or token call is due (zero: never).
func (l *Loop) leaseWake() time.Time {
	var wake time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	for _, le := range l.lease.list {
		earliest(le.next)
	}
	for _, tw := range l.lease.tokens {
		earliest(tw.next)
	}
	earliest(l.lease.revokeAt)
	return wake
}

// leaser returns the Leaser of kind, opened at the first need (nil and
// no error: the store has none; its leases can only be read again). An
// error is a store that could not be opened this time: the caller tries
// again later.
func (l *Loop) leaser(ctx context.Context, kind provider.Kind) (provider.Leaser, error) {
	if lr := l.lease.leasers[kind]; lr != nil || l.lease.noLeaser[kind] {
		return lr, nil
	}
	open := l.cfg.Leasers[kind]
	if open == nil {
		l.lease.noLeaser[kind] = true
		return nil, nil
	}
	st, err := open(ctx, provider.Settings{Log: l.cfg.Log, Limit: provider.NewLimiter(1)})
	if err != nil {
		return nil, errors.New("cannot open the store: " + oneLine(err))
	}
	lr, ok := st.(provider.Leaser)
	if !ok {
		l.lease.noLeaser[kind] = true
		return nil, nil
	}
	l.lease.leasers[kind] = lr
	return lr, nil
}

// leaseStep makes the token and lease calls due now, and then writes the
// status file.
func (l *Loop) leaseStep(ctx context.Context) {
	defer l.writeStatus()
	if l.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Timeout)
		defer cancel()
	}
	for _, tw := range l.lease.tokens {
		if !tw.next.IsZero() && !l.now.Before(tw.next) {
			l.tokenCall(ctx, tw)
		}
	}
	var reread []*leased
	for _, le := range l.lease.list {
		if le.next.IsZero() || l.now.Before(le.next) {
			continue
		}
		if !le.reread {
			l.renew(ctx, le)
		}
		if le.reread && !l.now.Before(le.next) {
			reread = append(reread, le)
		}
	}
	if len(reread) > 0 {
		l.reread(ctx, reread)
	}
	if !l.lease.revokeAt.IsZero() && !l.now.Before(l.lease.revokeAt) {
		l.revokeReaped(ctx)
	}
}

// renew renews one lease. A renewal cut short by the max TTL (it lasts
// less than the lease's TTL), no longer renewable, or refused as gone
// means new credentials at once; a denied one, before the lease ends.
func (l *Loop) renew(ctx context.Context, le *leased) {
	lr, err := l.leaser(ctx, le.t.Kind)
	if lr == nil && err == nil {
		le.reread = true
		return
	}
	log := l.cfg.Log.With("variables", strings.Join(le.names, ","))
	st := provider.LeaseState{Err: err} // a store that did not open: as a failed renewal
	if err == nil {
		st = lr.RenewLease(ctx, le.id, le.ttl)
	}
	if st.Err != nil {
		le.state = "stale"
		le.next = retryAt(l.now, le.end, le.ttl)
		switch {
		case errors.Is(st.Err, provider.ErrDenied):
			// No renewals for this token: new credentials before the end.
			le.renewable, le.reread, le.next = false, true, twoThirds(l.now, le.end)
			log.Warn("refresh: renewing a lease is denied; new credentials will be read before it ends instead", "expires", stamp(le.end), "err", oneLine(st.Err))
			return
		case errors.Is(st.Err, provider.ErrNotFound):
			// Revoked, or no longer renewable: it never will be again.
			le.reread, le.next = true, l.now
			log.Warn("refresh: a lease can no longer be renewed; reading new credentials now", "expires", stamp(le.end), "err", oneLine(st.Err))
			return
		case le.end.Sub(l.now) < le.ttl/3:
			le.reread = true // too close to the end: new credentials instead
		}
		log.Warn("refresh: cannot renew a lease; trying again", "expires", stamp(le.end), "err", oneLine(st.Err))
		return
	}
	l.lease.counters.Renewals++
	le.state, le.checked = "ok", l.now
	le.end = l.now.Add(st.TTL)
	le.next = twoThirds(l.now, le.end)
	if !st.Renewable || cutShort(st.TTL, le.ttl) {
		// The next renewal would not get past the max TTL: read new
		// credentials now, while the most time is left to act on them.
		le.reread, le.next = true, l.now
		log.Info("refresh: lease renewed up to its max TTL; reading new credentials now", "expires", stamp(le.end))
		return
	}
	log.Info("refresh: lease renewed", "expires", stamp(le.end))
}

// reread reads new credentials for leases that are ending, and stages
// them to be acted on at once, as a change (no --splay: the old ones
// stop soon). The leases they replace wait for the command's restart to
// be revoked.
func (l *Loop) reread(ctx context.Context, les []*leased) {
	targets := make([]provider.Target, len(les))
	var names []string
	for i, le := range les {
		targets[i] = le.t
		names = append(names, le.names...)
	}
	log := l.cfg.Log.With("variables", strings.Join(names, ","))
	log.Info("refresh: lease ending; reading new credentials")
	fetched, err := l.res.Refetch(ctx, targets)
	if err != nil {
		var problems []string
		var f *provider.Failure
		if errors.As(err, &f) {
			for _, v := range f.Vars {
				problems = append(problems, v.Name+": "+v.Reference+": "+v.Reason())
			}
		} else {
			problems = append(problems, oneLine(err))
		}
		for _, le := range les {
			le.state = "stale"
			le.next = retryAt(l.now, le.end, le.ttl)
		}
		l.fail("cannot read new credentials for an ending lease", problems)
		return
	}
	l.lease.counters.Rereads++
	now := l.now
	byT := map[provider.Target]provider.Status{}
	for _, v := range l.res.Variables() {
		if _, ok := byT[v.Ref.Target]; !ok && v.Err == nil && v.Ref.Opts.Refresh.Kind != provider.ActOff {
			byT[v.Ref.Target] = v
		}
	}
	deleted := map[provider.Target]bool{}
	for _, f := range fetched {
		deleted[f.Target] = f.Deleted
	}
	for _, le := range les {
		s := byT[le.t]
		if le.id != "" && le.id != s.LeaseID && !deleted[le.t] {
			l.lease.superseded = append(l.lease.superseded, superseded{t: le.t, id: le.id, names: le.names})
		}
		switch {
		case deleted[le.t]:
			// Gone: it keeps its last value, as a deleted secret does.
			le.next, le.state = time.Time{}, "deleted"
		case s.Lease <= 0:
			// No longer leased: nothing more to do for it.
			le.next, le.state, le.checked = time.Time{}, "ok", now
		default:
			le.state, le.checked = "ok", now
			le.take(s, now)
		}
	}
	if len(l.res.Staged()) > 0 && (l.actAt.IsZero() || l.actAt.After(now)) {
		l.actAt = now
	}
}

// afterAction revokes the superseded leases once a restart has reaped
// the command that used them; after a signal or no action that command
// still runs with them, so they are left to expire. A lease whose
// replacement was not delivered (a variable of its target is still
// staged: its file=PATH could not be written) is kept for the next
// successful restart: a variable of the new command may still hold its
// credentials.
func (l *Loop) afterAction(ctx context.Context, restarted bool) {
	if len(l.lease.superseded) == 0 {
		return
	}
	old := l.lease.superseded
	l.lease.superseded = nil
	if restarted {
		pending := map[provider.Target]bool{}
		for _, c := range l.res.Staged() {
			pending[c.Ref.Target] = true
		}
		var revoke []superseded
		for _, s := range old {
			if pending[s.t] {
				l.lease.superseded = append(l.lease.superseded, s)
				l.cfg.Log.Info("refresh: a superseded lease is kept until its new credentials are delivered", "variables", strings.Join(s.names, ","))
				continue
			}
			revoke = append(revoke, s)
		}
		old = revoke
	}
	if !restarted {
		l.cfg.Log.Debug("refresh: the command still runs with the credentials of the superseded leases; they are left to expire", "leases", len(old))
		return
	}
	if l.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.cfg.Timeout)
		defer cancel()
	}
	l.lease.reaped = append(l.lease.reaped, old...)
	l.revokeReaped(ctx)
}

// revokeReaped revokes the superseded leases whose command was reaped. A
// store that cannot be opened now keeps them for another try, after
// minRetry.
func (l *Loop) revokeReaped(ctx context.Context) {
	old := l.lease.reaped
	l.lease.reaped, l.lease.revokeAt = nil, time.Time{}
	for _, s := range old {
		log := l.cfg.Log.With("variables", strings.Join(s.names, ","))
		lr, err := l.leaser(ctx, s.t.Kind)
		if err != nil {
			if len(l.lease.reaped) == 0 {
				log.Warn("refresh: cannot revoke a superseded lease now; trying again", "err", err.Error())
			}
			l.lease.reaped = append(l.lease.reaped, s)
			l.lease.revokeAt = l.now.Add(minRetry)
			continue
		}
		if lr == nil {
			continue
		}
		if err := lr.RevokeLease(ctx, s.id); err != nil {
			log.Warn("refresh: cannot revoke a superseded lease; it ends with its TTL", "err", oneLine(err))
			continue
		}
		l.lease.counters.Revocations++
		log.Info("refresh: superseded lease revoked (the command that used it was reaped)")
	}
}

// tokenCall looks up, renews or replaces a store's token, and plans the
// next call.
func (l *Loop) tokenCall(ctx context.Context, tw *tokenWatch) {
	tw.next = time.Time{}
	log := l.cfg.Log.With("store", tw.kind.String())
	lr, err := l.leaser(ctx, tw.kind)
	if err != nil {
		if tw.failures == 0 {
			log.Warn("refresh: cannot "+tokenVerb[tw.op]+" the token; trying again", "err", err.Error())
		}
		tw.failures++
		tw.next = l.now.Add(minRetry * 12)
		return
	}
	if lr == nil {
		return
	}
	op := tw.op
	st := lr.Token(ctx, op)
	if st.Err != nil {
		if errors.Is(st.Err, provider.ErrDenied) && op != provider.TokenLogin && st.Login && st.TTL > 0 {
			// Its policy has no lookup-self or renew-self, but the store
			// logged in and its login said how long the token lasts:
			// log in again at two thirds of that.
			tw.op, tw.ttl, tw.end = provider.TokenLogin, st.TTL, l.now.Add(st.TTL)
			tw.next = twoThirds(l.now, tw.end)
			log.Warn("refresh: cannot "+tokenVerb[op]+" the token; logging in again before the login's TTL ends instead", "expires", stamp(tw.end), "login_at", stamp(tw.next), "err", oneLine(st.Err))
			return
		}
		if errors.Is(st.Err, provider.ErrDenied) && op != provider.TokenLogin {
			// Its policy has no lookup-self or renew-self: nothing to do
			// for it but say so, once.
			log.Warn("refresh: cannot "+tokenVerb[op]+" the token, and will not try again", "err", oneLine(st.Err))
			return
		}
		if tw.failures == 0 {
			log.Warn("refresh: cannot "+tokenVerb[op]+" the token; trying again", "err", oneLine(st.Err))
		}
		tw.failures++
		tw.next = retryAt(l.now, tw.end, tw.ttl)
		if tw.end.IsZero() || !l.now.Before(tw.end) { // nothing to go by: back off
			tw.next = l.now.Add(min(minRetry<<min(tw.failures, 12), maxRetry))
		}
		if op == provider.TokenRenew && st.Login {
			switch {
			case errors.Is(st.Err, provider.ErrNotFound): // revoked, or not renewable
				tw.op, tw.next = provider.TokenLogin, l.now
			case !tw.end.IsZero() && tw.end.Sub(l.now) < tw.ttl/3:
				tw.op = provider.TokenLogin
			}
		}
		return
	}
	tw.failures = 0
	oldEnd := tw.end
	if st.TTL <= 0 {
		tw.end = time.Time{}
		log.Debug("refresh: the token does not expire")
		return
	}
	tw.end = l.now.Add(st.TTL)
	cut := op == provider.TokenRenew && cutShort(st.TTL, tw.ttl)
	tw.ttl = max(tw.ttl, st.TTL)
	switch op {
	case provider.TokenRenew:
		l.lease.counters.TokenRenews++
		log.Info("refresh: token renewed", "expires", stamp(tw.end))
	case provider.TokenLogin:
		l.lease.counters.Logins++
		tw.ttl = st.TTL
		log.Info("refresh: logged in again for a new token; reading the leased secrets again, since their leases end with the old token", "expires", stamp(tw.end))
		for _, le := range l.lease.list {
			if le.t.Kind == tw.kind && !le.next.IsZero() {
				if !oldEnd.IsZero() && oldEnd.Before(le.end) {
					le.end = oldEnd
				}
				le.reread, le.next = true, l.now
			}
		}
	}
	tw.next = twoThirds(l.now, tw.end)
	switch {
	case st.Renewable && !cut:
		tw.op = provider.TokenRenew
	case st.Login:
		// It will not last past its max TTL: log in now, so that the
		// leases read under it are replaced while the most time is left.
		tw.op = provider.TokenLogin
		if cut {
			tw.next = l.now
		}
	default:
		tw.next = time.Time{}
		if !tw.warned {
			tw.warned = true
			log.Warn("refresh: the token cannot be renewed (any further) and there is no auth method to log in again with; checks, renewals and re-reads fail once it ends", "expires", stamp(tw.end))
		}
	}
}

var tokenVerb = map[provider.TokenOp]string{provider.TokenLookup: "look up", provider.TokenRenew: "renew", provider.TokenLogin: "log in again for"}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// leaseStatus fills in a variable's lease expiry and state.
func (l *Loop) leaseStatus(vs *VarState, v provider.Status) {
	le := l.lease.byT[v.Ref.Target]
	if le == nil || v.Ref.Opts.Refresh.Kind == provider.ActOff {
		return
	}
	end := le.end.UTC()
	vs.LeaseExpiry = &end
	vs.State = le.state
	c := le.checked.UTC()
	vs.Checked = &c
}

// LeasePlan is how `check --refresh` shows a value s that came with a
// lease: not polled; renewed at about two thirds of its TTL when the lease
// is renewable and has an id (one call each; the re-reads its max TTL
// causes are not counted), else read again (or, for a write, issued
// again) at about two thirds of it. shared is true when an earlier
// reference already counts its target.
func LeasePlan(s provider.Status, shared bool) Plan {
	var how string
	switch {
	case s.LeaseID != "" && s.Renewable:
		how = "a lease: not polled; renewed at about 2/3 of its TTL (sys/leases/renew), new credentials read before it ends"
	case s.Ref.IsWrite():
		how = "a Vault write: not polled; issued again at about 2/3 of its lease or certificate validity"
	default:
		how = "a lease that cannot be renewed: not polled; new credentials read at about 2/3 of its TTL"
	}
	p := Plan{How: how, Implemented: true}
	if !shared && s.Lease > 0 {
		p.PerMonth = int(math.Ceil(float64(month) / float64(s.Lease*2/3)))
	}
	return p
}
