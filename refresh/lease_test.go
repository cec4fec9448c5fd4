package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// leaseSecret marks every lease id the fake issues: it must never reach
// the log or the status file.
const leaseSecret = "LEASEID-b41f"

// fakeLease is one lease the fake Vault issued.
type fakeLease struct {
	n        int
	issued   time.Time
	end, max time.Time
	revoked  time.Time // zero: not revoked
	// restarts is how many restarts the command had when it was revoked.
	restarts int
}

// leaseStore is a store of dynamic credentials on the Loop's clock, as
// Vault's lease manager behaves: every read issues new credentials under
// a new lease of ttl, renewable (when renewable) up to maxTTL from its
// issue. It keeps a token of tokenTTL (0: none) the same way.
type leaseStore struct {
	clock     *fakeClock
	actor     *actor
	ttl, max  time.Duration
	renewable bool
	noID      bool // leases without an id (as a PKI certificate's expiration)

	mu       sync.Mutex
	leases   []*fakeLease
	renewals int
	fail     error // every call fails while set
	deny     bool  // renewals and token calls are denied (the policy lacks them)
	// token lookups and renewals are denied, with the TTL the login said
	// (a token of a login without the default policy)
	denyToken bool
	openFail  bool // the Loop's Leaser cannot be opened (the resolution's reads still work)
	denied    int  // calls denied

	token struct {
		ttl, max     time.Duration
		renewable    bool
		login        bool
		end, maxEnd  time.Time
		renews, ins  int
		lookups      int
		neverExpires bool
	}
}

func (s *leaseStore) opener() provider.Opener {
	return func(context.Context, provider.Settings) (provider.Store, error) { return s, nil }
}

// leaserOpener is the Loop's opener of s as a Leaser: it fails while
// openFail is set.
func (s *leaseStore) leaserOpener() provider.Opener {
	return func(context.Context, provider.Settings) (provider.Store, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.openFail {
			return nil, errors.New("vault client configuration: a transient failure")
		}
		return s, nil
	}
}

func (s *leaseStore) Fetch(_ context.Context, targets []provider.Target) []provider.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]provider.Result, len(targets))
	for i := range targets {
		if s.fail != nil {
			out[i].Err = s.fail
			continue
		}
		now := s.clock.now
		l := &fakeLease{n: len(s.leases) + 1, issued: now, end: now.Add(s.ttl), max: now.Add(s.max)}
		s.leases = append(s.leases, l)
		out[i] = provider.Result{
			Value:     fmt.Appendf(nil, `{"username":"user-%d","password":"pass-%d-%s"}`, l.n, l.n, canary),
			Lease:     s.ttl,
			Renewable: s.renewable,
		}
		if !s.noID {
			out[i].LeaseID = provider.LeaseID(fmt.Sprintf("database/creds/app/%s-%d", leaseSecret, l.n))
		}
	}
	return out
}

func (s *leaseStore) lease(id provider.LeaseID) *fakeLease {
	var n int
	fmt.Sscanf(strings.TrimPrefix(id.Reveal(), "database/creds/app/"+leaseSecret+"-"), "%d", &n)
	if n < 1 || n > len(s.leases) {
		return nil
	}
	return s.leases[n-1]
}

func (s *leaseStore) RenewLease(_ context.Context, id provider.LeaseID, increment time.Duration) provider.LeaseState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return provider.LeaseState{Err: s.fail}
	}
	if s.deny {
		s.denied++
		return provider.LeaseState{Err: fmt.Errorf("%w: the Vault token needs the \"update\" capability on sys/leases/renew", provider.ErrDenied)}
	}
	now := s.clock.now
	l := s.lease(id)
	if l == nil || !l.revoked.IsZero() || !now.Before(l.end) || !s.renewable {
		return provider.LeaseState{Err: fmt.Errorf("Vault refused sys/leases/renew: %w", provider.ErrNotFound)}
	}
	s.renewals++
	l.end = now.Add(increment)
	if l.end.After(l.max) {
		l.end = l.max
	}
	return provider.LeaseState{TTL: l.end.Sub(now), Renewable: true}
}

func (s *leaseStore) RevokeLease(_ context.Context, id provider.LeaseID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if l := s.lease(id); l != nil && l.revoked.IsZero() {
		l.revoked = s.clock.now
		if s.actor != nil {
			l.restarts = len(s.actor.restarts)
		}
	}
	return nil
}

func (s *leaseStore) Token(_ context.Context, op provider.TokenOp) provider.LeaseState {
	s.mu.Lock()
	defer s.mu.Unlock()
	tk := &s.token
	if s.fail != nil {
		return provider.LeaseState{Err: s.fail, Login: tk.login}
	}
	if s.deny {
		s.denied++
		return provider.LeaseState{Err: fmt.Errorf("%w: the Vault token needs the \"read\" capability on auth/token/lookup-self", provider.ErrDenied)}
	}
	now := s.clock.now
	if s.denyToken && op != provider.TokenLogin {
		s.denied++
		if tk.end.IsZero() {
			tk.end, tk.maxEnd = now.Add(tk.ttl), now.Add(tk.max)
		}
		return provider.LeaseState{Err: fmt.Errorf("%w: the Vault token needs the \"read\" capability on auth/token/lookup-self", provider.ErrDenied),
			Login: tk.login, TTL: max(tk.end.Sub(now), 0)}
	}
	if tk.neverExpires {
		return provider.LeaseState{}
	}
	if tk.end.IsZero() { // issued at the start
		tk.end, tk.maxEnd = now.Add(tk.ttl), now.Add(tk.max)
	}
	switch op {
	case provider.TokenLookup:
		tk.lookups++
	case provider.TokenRenew:
		if !tk.renewable || !now.Before(tk.end) {
			return provider.LeaseState{Err: errors.New("token not renewable or expired"), Login: tk.login}
		}
		tk.renews++
		tk.end = now.Add(tk.ttl)
		if tk.end.After(tk.maxEnd) {
			tk.end = tk.maxEnd
		}
	case provider.TokenLogin:
		if !tk.login {
			return provider.LeaseState{Err: errors.New("no login")}
		}
		tk.ins++
		tk.end, tk.maxEnd = now.Add(tk.ttl), now.Add(tk.max)
	}
	// A login whose token may not look itself up does not know whether
	// it is renewable (the vault store says it is not).
	return provider.LeaseState{TTL: tk.end.Sub(now), Renewable: tk.renewable && !s.denyToken, Login: tk.login}
}

// startLeases runs a Loop over the fake store as Vault's, with cfg's
// Leasers set to it.
func startLeases(t *testing.T, st *leaseStore, cfg Config, environ ...string) *harness {
	t.Helper()
	stores := map[provider.Kind]provider.Opener{provider.Vault: st.opener()}
	cfg.Leasers = map[provider.Kind]provider.Opener{provider.Vault: st.leaserOpener()}
	if cfg.Interval == 0 {
		cfg.Interval = -1 // --refresh leases
	}
	// The fake runs on the harness's clock, made by startWith: point it
	// there before the first read.
	var h *harness
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st.clock = clock
	h = startWith(t, cfg, stores, nil, environ...)
	st.clock, st.actor = h.clock, h.actor
	t.Cleanup(func() {
		if strings.Contains(h.log.String(), leaseSecret) {
			t.Errorf("the log holds a lease id:\n%s", h.log)
		}
		if b, _ := os.ReadFile(h.status); strings.Contains(string(b), leaseSecret) {
			t.Errorf("the status file holds a lease id:\n%s", b)
		}
	})
	return h
}

// alive reports which leases are neither revoked nor ended at now.
func (s *leaseStore) alive(now time.Time) []int {
	var out []int
	for _, l := range s.leases {
		if l.revoked.IsZero() && now.Before(l.end) {
			out = append(out, l.n)
		}
	}
	return out
}

// A renewable lease of 6s (max 15s) is renewed at two thirds of its TTL,
// read again as soon as a renewal is cut by the max TTL, the command restarted
// with the new credentials, and the old lease revoked after the restart.
func TestLeaseRenewThenRereadAndRevoke(t *testing.T) {
	st := &leaseStore{ttl: 6 * time.Second, max: 15 * time.Second, renewable: true}
	h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username", "DB_PASS=vault:database/creds/app#password")
	t0 := h.clock.now
	h.run(t0.Add(11 * time.Second))
	if st.renewals != 2 || len(h.actor.restarts) != 0 {
		t.Fatalf("after 11s: %d renewals (want 2: at 4s, 8s), %d restarts (want 0)\n%s", st.renewals, len(h.actor.restarts), h.log)
	}
	// At 12s the renewal is cut by the max TTL (to 3s): new credentials
	// at once.
	h.run(t0.Add(15 * time.Second))
	if st.renewals != 3 {
		t.Errorf("%d renewals, want 3", st.renewals)
	}
	if len(h.actor.restarts) != 1 {
		t.Fatalf("after 15s: %d restarts, want 1\n%s", len(h.actor.restarts), h.log)
	}
	at := h.actor.restarts[0]
	if !at.Before(st.leases[0].max) {
		t.Errorf("restarted at %v, after the first lease ended at %v", at.Sub(t0), st.leases[0].max.Sub(t0))
	}
	if got := envOf(h.actor.envs[0], "DB_USER"); got != "user-2" {
		t.Errorf("restarted with DB_USER=%q, want user-2", got)
	}
	if len(st.leases) != 2 {
		t.Fatalf("%d reads, want 2 (one per lease)", len(st.leases))
	}
	if r := st.leases[0]; r.revoked.IsZero() || r.restarts != 1 {
		t.Errorf("the old lease was revoked at %v, after %d restarts; want after the restart", r.revoked, r.restarts)
	}
	if a := st.alive(h.clock.now); len(a) != 1 || a[0] != 2 {
		t.Errorf("alive leases %v, want [2]", a)
	}
	for _, want := range []string{"refresh: lease renewed", "refresh: lease ending; reading new credentials", "restarting the command", "superseded lease revoked"} {
		if !strings.Contains(h.log.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, h.log)
		}
	}
	s := h.readStatus()
	for _, v := range s.Variables {
		if v.LeaseExpiry == nil || !v.LeaseExpiry.After(h.clock.now) || v.State != "ok" {
			t.Errorf("status of %s: lease expiry %v, state %s; want a future expiry, ok", v.Name, v.LeaseExpiry, v.State)
		}
	}
	if s.Leases.Renewals != 3 || s.Leases.Rereads != 1 || s.Leases.Revocations != 1 {
		t.Errorf("lease counters %+v", s.Leases)
	}
}

// Over a month of 1h leases (max 24h), the command is restarted once a
// day, always before its lease ends, and every superseded lease is
// revoked after, never before, the restart that replaced it; the months
// run in milliseconds.
func TestLeaseMonth(t *testing.T) {
	st := &leaseStore{ttl: time.Hour, max: 24 * time.Hour, renewable: true}
	h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username")
	t0 := h.clock.now
	h.loop.cfg.StatusFile = ""
	h.run(t0.Add(30 * 24 * time.Hour))
	n := len(h.actor.restarts)
	if n < 30 || n > 32 {
		t.Errorf("%d restarts in 30 days of leases with a max TTL of 24h, want about 31", n)
	}
	if len(st.leases) != n+1 {
		t.Errorf("%d reads for %d restarts", len(st.leases), n)
	}
	for i, at := range h.actor.restarts {
		old, now := st.leases[i], st.leases[i+1]
		if !at.Before(old.end) {
			t.Errorf("restart %d at %v: the old lease had ended at %v", i, at, old.end)
		}
		if old.revoked.IsZero() || old.revoked.Before(at) || old.restarts != i+1 {
			t.Errorf("lease %d revoked at %v after %d restarts; restart %d at %v", old.n, old.revoked, old.restarts, i+1, at)
		}
		if !now.revoked.IsZero() && i+1 == n {
			t.Errorf("the current lease was revoked")
		}
	}
	t.Logf("30 days of 1h leases (max 24h): %d renewals, %d reads, %d restarts, %d revocations", st.renewals, len(st.leases), n, h.loop.lease.counters.Revocations)
	if st.renewals < 20*30 {
		t.Errorf("%d renewals in 30 days of 1h leases", st.renewals)
	}
}

// A lease that cannot be renewed (not renewable, or with no lease id, as
// a certificate's expiration) is read again at two thirds of its life,
// with no renewal call.
func TestLeaseNotRenewable(t *testing.T) {
	for _, noID := range []bool{false, true} {
		t.Run(fmt.Sprint("noID=", noID), func(t *testing.T) {
			st := &leaseStore{ttl: 9 * time.Second, max: 9 * time.Second, renewable: false, noID: noID}
			h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username")
			t0 := h.clock.now
			h.run(t0.Add(7 * time.Second))
			if len(h.actor.restarts) != 1 || st.renewals != 0 {
				t.Fatalf("%d restarts, %d renewals; want 1, 0\n%s", len(h.actor.restarts), st.renewals, h.log)
			}
			if at := h.actor.restarts[0].Sub(t0); at != 6*time.Second {
				t.Errorf("re-read at %v, want 6s (two thirds of 9s)", at)
			}
			if !noID && st.leases[0].revoked.IsZero() {
				t.Errorf("the superseded lease was not revoked")
			}
		})
	}
}

// With a signal as the action (?file&refresh=HUP), the old command keeps
// running with the old credentials: the superseded lease is not revoked.
func TestLeaseSignalKeepsOldLease(t *testing.T) {
	st := &leaseStore{ttl: 9 * time.Second, max: 9 * time.Second}
	h := startLeases(t, st, Config{}, "DB=vault:database/creds/app?file&refresh=HUP")
	h.run(h.clock.now.Add(7 * time.Second))
	if len(h.actor.signals) != 1 || len(h.actor.restarts) != 0 {
		t.Fatalf("%d signals, %d restarts; want 1, 0\n%s", len(h.actor.signals), len(h.actor.restarts), h.log)
	}
	if !st.leases[0].revoked.IsZero() {
		t.Errorf("the old lease was revoked while its command still ran")
	}
}

// A renewal failing (Vault unreachable) leaves the command alone, marks
// the variable stale and tries again; near the end, new credentials are
// read instead, once Vault answers again.
func TestLeaseRenewalFailure(t *testing.T) {
	st := &leaseStore{ttl: time.Hour, max: 24 * time.Hour, renewable: true}
	h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username")
	t0 := h.clock.now
	st.fail = errors.New("cannot reach Vault")
	h.run(t0.Add(50 * time.Minute))
	if s := h.readStatus(); s.Variables[0].State != "stale" {
		t.Errorf("state %q while renewals fail, want stale", s.Variables[0].State)
	}
	if len(h.actor.restarts) != 0 {
		t.Errorf("restarted while Vault was down")
	}
	st.fail = nil
	h.run(t0.Add(61 * time.Minute))
	if len(h.actor.restarts) != 1 || len(st.leases) != 2 {
		t.Errorf("once Vault is back near the end: %d restarts, %d reads; want 1, 2\n%s", len(h.actor.restarts), len(st.leases), h.log)
	}
	if s := h.readStatus(); s.Variables[0].State != "ok" {
		t.Errorf("state %q after recovery, want ok", s.Variables[0].State)
	}
	if !strings.Contains(h.log.String(), "cannot renew a lease; trying again") {
		t.Errorf("no log line for the failed renewal:\n%s", h.log)
	}
}

// The token is renewed at two thirds of its TTL; when its max TTL cuts a
// renewal, secrets-init logs in again and reads the leased secrets again
// (their leases end with the old token).
func TestTokenRenewThenLogin(t *testing.T) {
	st := &leaseStore{ttl: time.Hour, max: 1000 * time.Hour, renewable: true}
	st.token.ttl, st.token.max, st.token.renewable, st.token.login = 30*time.Minute, 2*time.Hour, true, true
	h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username")
	t0 := h.clock.now
	h.run(t0.Add(75 * time.Minute))
	if st.token.lookups != 1 || st.token.renews != 3 || st.token.ins != 0 {
		t.Fatalf("after 75m: %d lookups, %d renewals, %d logins; want 1, 3 (at 20m, 40m, 60m), 0\n%s", st.token.lookups, st.token.renews, st.token.ins, h.log)
	}
	h.run(t0.Add(2 * time.Hour))
	if st.token.ins != 1 {
		t.Fatalf("no new login before the token's max TTL:\n%s", h.log)
	}
	if len(h.actor.restarts) != 1 || len(st.leases) != 2 {
		t.Errorf("after the new login: %d restarts, %d reads; want 1, 2", len(h.actor.restarts), len(st.leases))
	}
	for _, want := range []string{"refresh: token renewed", "refresh: logged in again for a new token"} {
		if !strings.Contains(h.log.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

// A given token that cannot be renewed gets one warning, and no call
// after the lookup; one that does not expire gets none.
func TestTokenNotRenewable(t *testing.T) {
	st := &leaseStore{ttl: 1000 * time.Hour, max: 1000 * time.Hour, renewable: true}
	st.token.ttl, st.token.max = time.Hour, time.Hour
	h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username")
	h.run(h.clock.now.Add(3 * time.Hour))
	if n := strings.Count(h.log.String(), "the token cannot be renewed"); n != 1 {
		t.Errorf("%d warnings about the token, want 1:\n%s", n, h.log)
	}
	if st.token.lookups != 1 || st.token.renews != 0 || st.token.ins != 0 {
		t.Errorf("%d lookups, %d renewals, %d logins; want 1, 0, 0", st.token.lookups, st.token.renews, st.token.ins)
	}
}

// --refresh D also manages leases, and does not poll a leased target
// (reading it would issue new credentials).
func TestLeasesWithPolling(t *testing.T) {
	st := &leaseStore{ttl: time.Hour, max: 24 * time.Hour, renewable: true}
	h := startLeases(t, st, Config{Interval: time.Minute}, "DB_USER=vault:database/creds/app#username")
	h.run(h.clock.now.Add(2 * time.Hour))
	if len(st.leases) != 1 || st.renewals < 2 {
		t.Errorf("%d reads, %d renewals in 2h; want 1, >= 2", len(st.leases), st.renewals)
	}
	b, _ := json.Marshal(h.readStatus())
	if strings.Contains(string(b), leaseSecret) {
		t.Errorf("status holds a lease id")
	}
}

// A LeaseID never prints.
func TestLeaseIDNeverPrints(t *testing.T) {
	id := provider.LeaseID("database/creds/app/" + leaseSecret)
	b, _ := json.Marshal(struct{ ID provider.LeaseID }{id})
	for _, s := range []string{fmt.Sprint(id), fmt.Sprintf("%v %s %q %x %#v %+v", id, id, id, id, id, id), string(b),
		fmt.Sprint(provider.Status{LeaseID: id}), fmt.Sprintf("%+v", provider.Result{LeaseID: id})} {
		if strings.Contains(s, leaseSecret) {
			t.Errorf("printed: %s", s)
		}
	}
}

// A lease revoked behind secrets-init's back (its renewal is refused as
// gone) is replaced at once: new credentials at the failed renewal, not
// at the lease's end.
func TestLeaseRevokedElsewhere(t *testing.T) {
	st := &leaseStore{ttl: time.Hour, max: 24 * time.Hour, renewable: true}
	h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username")
	t0 := h.clock.now
	st.leases[0].revoked = t0.Add(time.Minute)
	h.run(t0.Add(41 * time.Minute))
	if len(h.actor.restarts) != 1 || h.actor.restarts[0].Sub(t0) != 40*time.Minute {
		t.Fatalf("restarts %v; want one at the failed renewal (40m)\n%s", h.actor.restarts, h.log)
	}
	if !strings.Contains(h.log.String(), "a lease can no longer be renewed; reading new credentials now") {
		t.Errorf("no log line for the lost lease:\n%s", h.log)
	}
}

// check --refresh: a leased value costs one renewal per two thirds of its
// TTL, counted once per target.
func TestLeasePlan(t *testing.T) {
	read, _, _ := provider.Parse("vault:database/creds/app#username")
	write, _, _ := provider.Parse(`>>vault:pki/issue/web#certificate#{"common_name":"w"}`)
	for _, c := range []struct {
		name string
		s    provider.Status
		how  string
	}{
		{"renewable", provider.Status{Ref: read, Lease: time.Hour, LeaseID: "l", Renewable: true}, "renewed at about 2/3 of its TTL (sys/leases/renew)"},
		{"not renewable", provider.Status{Ref: read, Lease: time.Hour, LeaseID: "l"}, "cannot be renewed: not polled; new credentials read"},
		{"no lease id", provider.Status{Ref: read, Lease: time.Hour, Renewable: true}, "cannot be renewed"},
		{"certificate", provider.Status{Ref: write, Lease: time.Hour}, "a Vault write: not polled; issued again"},
		{"leased write", provider.Status{Ref: write, Lease: time.Hour, LeaseID: "l", Renewable: true}, "renewed at about 2/3"},
	} {
		p := LeasePlan(c.s, false)
		if p.PerMonth != 1080 || !strings.Contains(p.How, c.how) {
			t.Errorf("%s: %+v, want 1080 calls a month and %q", c.name, p, c.how)
		}
		if c.how != "renewed at about 2/3" && c.name != "renewable" && strings.Contains(p.How, "sys/leases/renew") {
			t.Errorf("%s: %q names renewals", c.name, p.How)
		}
		if p := LeasePlan(c.s, true); p.PerMonth != 0 {
			t.Errorf("%s: a shared target counted again: %+v", c.name, p)
		}
	}
}

// A policy without renewals (sys/leases/renew, lookup-self denied): one
// warning each, no call again, and new credentials before the lease ends.
func TestLeaseRenewalDenied(t *testing.T) {
	st := &leaseStore{ttl: time.Hour, max: 24 * time.Hour, renewable: true, deny: true}
	st.token.ttl, st.token.max, st.token.renewable = time.Hour, 24*time.Hour, true
	h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username")
	t0 := h.clock.now
	h.run(t0.Add(59 * time.Minute))
	if st.denied != 2 {
		t.Errorf("%d denied calls, want 2 (one renewal, one token lookup)", st.denied)
	}
	if len(h.actor.restarts) != 1 || !h.actor.restarts[0].Before(t0.Add(time.Hour)) {
		t.Errorf("restarts %v; want one before the lease's end at 1h\n%s", h.actor.restarts, h.log)
	}
	for _, want := range []string{"renewing a lease is denied", "cannot look up the token, and will not try again"} {
		if n := strings.Count(h.log.String(), want); n != 1 {
			t.Errorf("%d lines %q, want 1:\n%s", n, want, h.log)
		}
	}
}

// One variable of a leased secret with ?refresh=off makes the whole lease
// off: its variables never mix the credentials of two leases (SPEC §3),
// and no lease is read again, renewed or revoked.
func TestLeaseOneVariableOff(t *testing.T) {
	for _, first := range []string{"off", "on"} {
		t.Run("first="+first, func(t *testing.T) {
			st := &leaseStore{ttl: 9 * time.Second, max: 9 * time.Second}
			user := "DB_USER=vault:database/creds/app#username?refresh=off"
			pass := "DB_PASS=vault:database/creds/app#password"
			env := []string{user, pass}
			if first == "on" {
				env = []string{pass, user}
			}
			h := startLeases(t, st, Config{}, env...)
			h.run(h.clock.now.Add(30 * time.Second))
			if len(h.actor.restarts) != 0 || len(st.leases) != 1 || st.renewals != 0 {
				t.Fatalf("%d restarts, %d reads, %d renewals; want 0, 1, 0\n%s", len(h.actor.restarts), len(st.leases), st.renewals, h.log)
			}
			if !st.leases[0].revoked.IsZero() {
				t.Errorf("the lease in use was revoked")
			}
			if !strings.Contains(h.log.String(), "off=DB_USER") {
				t.Errorf("the log does not say why the lease is not kept:\n%s", h.log)
			}
		})
	}
}

// When a re-read's new credentials cannot all be delivered (a file=PATH
// write fails, so that variable keeps the old ones), the restart that
// follows does not revoke the superseded lease; the next successful
// restart does.
func TestLeaseKeptUntilDelivered(t *testing.T) {
	st := &leaseStore{ttl: 9 * time.Second, max: 9 * time.Second}
	h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username",
		"DB_PASS=vault:database/creds/app#password?file=DIR/pass")
	t0 := h.clock.now
	path := filepath.Join(h.dir, "pass")
	// A directory in its place: the rename of the new file fails.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	h.run(t0.Add(7 * time.Second))
	if len(h.actor.restarts) != 1 || len(st.leases) != 2 {
		t.Fatalf("%d restarts, %d reads; want 1, 2\n%s", len(h.actor.restarts), len(st.leases), h.log)
	}
	if !st.leases[0].revoked.IsZero() {
		t.Fatalf("the superseded lease was revoked while DB_PASS still holds its password\n%s", h.log)
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	h.run(t0.Add(13 * time.Second))
	if len(h.actor.restarts) != 2 {
		t.Fatalf("%d restarts, want 2\n%s", len(h.actor.restarts), h.log)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.HasPrefix(string(b), "pass-3-") {
		t.Errorf("DB_PASS's file does not hold lease 3's password (%v)", err)
	}
	for _, n := range []int{0, 1} {
		if r := st.leases[n]; r.revoked.IsZero() || r.restarts != 2 {
			t.Errorf("lease %d: revoked at %v after %d restarts; want after the second restart", n+1, r.revoked, r.restarts)
		}
	}
}

// A logged-in token that may not look itself up nor renew itself (no
// default policy) is replaced by a new login at two thirds of the TTL
// its login gave, before it ends, with the leases read under it.
func TestTokenDeniedLogsInAgain(t *testing.T) {
	st := &leaseStore{ttl: 10 * time.Hour, max: 240 * time.Hour, renewable: true, denyToken: true}
	st.token.ttl, st.token.max, st.token.renewable, st.token.login = time.Hour, 24*time.Hour, true, true
	h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username")
	t0 := h.clock.now
	h.run(t0.Add(3 * time.Hour))
	if st.token.ins != 4 || st.denied != 1 {
		t.Fatalf("%d logins, %d denied calls in 3h of a 1h token; want 4 (every 40m), 1\n%s", st.token.ins, st.denied, h.log)
	}
	if !h.clock.now.Before(st.token.end) {
		t.Errorf("the token ended at %v", st.token.end.Sub(t0))
	}
	if len(h.actor.restarts) != 4 {
		t.Errorf("%d restarts, want 4 (the leases of each old token read again)", len(h.actor.restarts))
	}
	if n := strings.Count(h.log.String(), "logging in again before the login's TTL ends"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, h.log)
	}
}

// A Leaser that cannot be opened for a while is a failed call, tried
// again: not a store without renewals (no needless re-read and restart),
// and a superseded lease is revoked once it opens.
func TestLeaserOpenFails(t *testing.T) {
	t.Run("renew", func(t *testing.T) {
		st := &leaseStore{ttl: 9 * time.Second, max: 100 * time.Second, renewable: true, openFail: true}
		h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username")
		t0 := h.clock.now
		h.run(t0.Add(6500 * time.Millisecond))
		if len(st.leases) != 1 || len(h.actor.restarts) != 0 || st.renewals != 0 {
			t.Fatalf("%d reads, %d restarts, %d renewals; want 1, 0, 0\n%s", len(st.leases), len(h.actor.restarts), st.renewals, h.log)
		}
		if !strings.Contains(h.log.String(), "cannot open the store") {
			t.Errorf("the failure is not logged:\n%s", h.log)
		}
		st.openFail = false
		h.run(t0.Add(20 * time.Second))
		if len(st.leases) != 1 || len(h.actor.restarts) != 0 || st.renewals < 3 {
			t.Errorf("%d reads, %d restarts, %d renewals; want 1, 0, 3 or more\n%s", len(st.leases), len(h.actor.restarts), st.renewals, h.log)
		}
	})
	t.Run("revoke", func(t *testing.T) {
		st := &leaseStore{ttl: 9 * time.Second, max: 9 * time.Second, openFail: true}
		h := startLeases(t, st, Config{}, "DB_USER=vault:database/creds/app#username")
		t0 := h.clock.now
		h.run(t0.Add(7 * time.Second))
		if len(h.actor.restarts) != 1 || !st.leases[0].revoked.IsZero() {
			t.Fatalf("%d restarts, lease 1 revoked at %v; want 1, not revoked\n%s", len(h.actor.restarts), st.leases[0].revoked, h.log)
		}
		if !strings.Contains(h.log.String(), "cannot revoke a superseded lease now; trying again") {
			t.Errorf("the failure is not logged:\n%s", h.log)
		}
		st.openFail = false
		h.run(t0.Add(11 * time.Second))
		if r := st.leases[0]; r.revoked.IsZero() || len(h.actor.restarts) != 1 {
			t.Errorf("lease 1 revoked at %v, %d restarts; want revoked at 11s, 1 restart\n%s", r.revoked, len(h.actor.restarts), h.log)
		}
	})
}
