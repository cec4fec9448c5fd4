package refresh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

const canary = "CANARY-7f3a9c-secret-value"

// fakeClock is a clock the test moves.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time                       { return c.now }
func (c *fakeClock) After(time.Duration) <-chan time.Time { return nil }

// actor records what the Loop asks of the supervisor.
type actor struct {
	clock    *fakeClock
	restarts []time.Time
	envs     [][]string
	signals  []syscall.Signal
	stopped  int
	stopAt   time.Time
}

func (a *actor) Restart(env []string) error {
	a.restarts = append(a.restarts, a.clock.now)
	a.envs = append(a.envs, slices.Clone(env))
	return nil
}
func (a *actor) Signal(sig syscall.Signal) error { a.signals = append(a.signals, sig); return nil }
func (a *actor) Stop(code int)                   { a.stopped, a.stopAt = code, a.clock.now }
func (a *actor) PID() int                        { return 42 }

// counting wraps a Detector, counting the targets it checks, and fails
// while fail is set.
type counting struct {
	Detector
	calls int
	fail  error
}

func (c *counting) Detect(ctx context.Context, ts []provider.Target) []Seen {
	c.calls += len(ts)
	if c.fail != nil {
		out := make([]Seen, len(ts))
		for i := range out {
			out[i].Err = c.fail
		}
		return out
	}
	return c.Detector.Detect(ctx, ts)
}

type harness struct {
	t      testing.TB
	dir    string
	clock  *fakeClock
	actor  *actor
	det    *counting
	loop   *Loop
	res    *provider.Resolution
	log    *bytes.Buffer
	status string
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// start resolves environ (secretfile: references to files in dir, which
// files names and fills) and makes a Loop of it.
func start(t testing.TB, cfg Config, files map[string]string, environ ...string) *harness {
	t.Helper()
	return startWith(t, cfg, nil, files, environ...)
}

// startWith is start with more stores than secretfile:, each checked by a
// StoreDetector.
func startWith(t testing.TB, cfg Config, stores map[provider.Kind]provider.Opener, files map[string]string, environ ...string) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), clock: &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, log: &bytes.Buffer{}}
	for name, content := range files {
		write(t, filepath.Join(h.dir, name), content)
	}
	for i, kv := range environ {
		environ[i] = strings.ReplaceAll(kv, "DIR", h.dir)
	}
	fp := NewFingerprint()
	openers := map[provider.Kind]provider.Opener{provider.File: provider.OpenFile}
	for k, o := range stores {
		openers[k] = o
	}
	res, err := provider.Resolve(context.Background(), provider.Config{
		Stores: openers, Concurrency: 4, Timeout: 30 * time.Second,
		FileDir: t.TempDir(), Refresh: true, Fingerprint: fp.Of,
	}, environ)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Files.Remove() })
	h.res = res
	h.actor = &actor{clock: h.clock}
	h.det = &counting{Detector: FileDetector{FP: fp}}
	h.status = filepath.Join(tmpfs(t), "status.json")
	if cfg.Interval == 0 {
		cfg.Interval = time.Minute
	}
	if cfg.OnChange.Kind == 0 {
		cfg.OnChange = provider.Action{Kind: provider.ActRestart}
	}
	if cfg.OnFileChange.Kind == 0 {
		cfg.OnFileChange = provider.Action{Kind: provider.ActRestart}
	}
	cfg.StatusFile = h.status
	cfg.Detectors = map[provider.Kind]Detector{provider.File: h.det}
	for k, o := range stores {
		cfg.Detectors[k] = &StoreDetector{Kind: k, Open: o, FP: fp, Log: slog.New(slog.NewTextHandler(h.log, nil)),
			Settings: provider.Settings{Log: slog.New(slog.NewTextHandler(h.log, nil)), Limit: provider.NewLimiter(4)}}
	}
	cfg.Clock, cfg.Actor = h.clock, h.actor
	cfg.Rand = rand.New(rand.NewPCG(1, 2))
	cfg.Log = slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.loop = New(cfg, res)
	t.Cleanup(func() {
		if strings.Contains(h.log.String(), canary) {
			t.Errorf("the log holds a value:\n%s", h.log)
		}
		if b, _ := os.ReadFile(h.status); bytes.Contains(b, []byte(canary)) {
			t.Errorf("the status file holds a value:\n%s", b)
		}
	})
	return h
}

// run steps the Loop until the clock reaches until (or the Loop stops),
// and returns the times of its checks.
func (h *harness) run(until time.Time) {
	for {
		wake, ok := h.loop.Step(context.Background())
		if !ok || wake.IsZero() || wake.After(until) {
			h.clock.now = until
			return
		}
		h.clock.now = wake
	}
}

// round runs one more check (the next one due).
func (h *harness) round() {
	checks := h.loop.counters.Checks
	for h.loop.counters.Checks == checks {
		wake, ok := h.loop.Step(context.Background())
		if !ok {
			h.t.Fatal("the loop stopped")
		}
		h.clock.now = wake
	}
}

func (h *harness) readStatus() Status {
	h.t.Helper()
	b, err := os.ReadFile(h.status)
	if err != nil {
		h.t.Fatal(err)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// tmpfs is a temporary directory on tmpfs where there is one: the status
// file is synced after each of thousands of rounds.
func tmpfs(t testing.TB) string {
	dir, err := os.MkdirTemp("/dev/shm", "refresh-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func envOf(env []string, name string) string {
	for _, kv := range env {
		if n, v, _ := strings.Cut(kv, "="); n == name {
			return v
		}
	}
	return "<unset>"
}

// A quiet month at one check a minute: about 43,200 rounds, one file read
// per reference each, and no action at all.
func TestQuietMonth(t *testing.T) {
	h := start(t, Config{}, map[string]string{"a": canary, "b": `{"k":"` + canary + `"}`},
		"A=secretfile:DIR/a", "B=secretfile:DIR/b#k", "B2=secretfile:DIR/b?file", "P=plain")
	t0 := h.clock.now
	h.loop.cfg.StatusFile = "" // written once at the end, below: each write is synced
	h.run(t0.Add(30 * 24 * time.Hour))
	h.loop.cfg.StatusFile = h.status
	h.loop.writeStatus()
	c := h.loop.Counters()
	if c.Checks < 39000 || c.Checks > 48000 {
		t.Errorf("%d checks in 30 days at 1m ±10%%", c.Checks)
	}
	if h.det.calls != 2*c.Checks {
		t.Errorf("%d file checks in %d rounds of 2 distinct files", h.det.calls, c.Checks)
	}
	if len(h.actor.restarts) != 0 || len(h.actor.signals) != 0 || c.Changes != 0 || c.Failures != 0 {
		t.Errorf("a quiet month acted: %+v %+v", c, h.actor)
	}
	s := h.readStatus()
	if s.Counters != c || s.PID != 42 || s.Generation != 1 || len(s.Variables) != 3 || s.Variables[0].State != "ok" ||
		!strings.HasPrefix(s.Variables[0].Version, "hmac:") || s.Variables[0].Checked == nil {
		t.Errorf("status: %+v", s)
	}
}

func TestSchedule(t *testing.T) {
	for seed := range uint64(50) {
		h := start(t, Config{Interval: 10 * time.Minute}, map[string]string{"a": "1"}, "A=secretfile:DIR/a")
		h.loop.cfg.Rand = rand.New(rand.NewPCG(seed, seed))
		h.loop.nextCheck = h.clock.now.Add(time.Duration(h.loop.cfg.Rand.Int64N(int64(10 * time.Minute))))
		t0 := h.clock.now
		var times []time.Time
		for range 20 {
			h.round()
			times = append(times, h.loop.lastCheck)
		}
		if d := times[0].Sub(t0); d < 0 || d >= 10*time.Minute {
			t.Errorf("seed %d: first check after %v, want within the first interval", seed, d)
		}
		for i := 1; i < len(times); i++ {
			if d := times[i].Sub(times[i-1]); d < 9*time.Minute || d > 11*time.Minute {
				t.Errorf("seed %d: %v between checks, want 10m ±10%%", seed, d)
			}
		}
	}
}

// 1,000 instances started together spread their first checks over the
// interval, so one rotation does not make a herd.
func TestFirstChecksSpread(t *testing.T) {
	h := start(t, Config{Interval: time.Hour}, map[string]string{"a": "1"}, "A=secretfile:DIR/a")
	var buckets [10]int
	r := rand.New(rand.NewPCG(7, 7))
	for range 1000 {
		h.loop.cfg.Rand = r
		l := New(h.loop.cfg, h.res)
		buckets[l.nextCheck.Sub(h.clock.now)/(6*time.Minute)]++
	}
	for i, n := range buckets {
		if n < 50 || n > 150 {
			t.Errorf("bucket %d of the first hour holds %d of 1000 first checks: %v", i, n, buckets)
		}
	}
}

func TestChangeRestartsOnce(t *testing.T) {
	h := start(t, Config{}, map[string]string{"db": "pw1-" + canary}, "DB=secretfile:DIR/db", "X=1")
	h.round()
	write(t, filepath.Join(h.dir, "db"), "pw2-"+canary)
	h.round()
	for range 10 {
		h.round()
	}
	if len(h.actor.restarts) != 1 || envOf(h.actor.envs[0], "DB") != "pw2-"+canary || envOf(h.actor.envs[0], "X") != "1" {
		t.Fatalf("restarts %v, envs %d", h.actor.restarts, len(h.actor.envs))
	}
	s := h.readStatus()
	if s.Generation != 2 || s.Counters.Restarts != 1 || s.Counters.Changes != 1 || s.Started != h.actor.restarts[0] {
		t.Errorf("status: %+v", s)
	}
	if !strings.Contains(h.log.String(), "restarting") || !strings.Contains(h.log.String(), "variables=DB") {
		t.Errorf("log:\n%s", h.log)
	}
}

func TestOnChangeNone(t *testing.T) {
	h := start(t, Config{OnChange: provider.Action{Kind: provider.ActNone}}, map[string]string{"db": "1"}, "DB=secretfile:DIR/db")
	write(t, filepath.Join(h.dir, "db"), "2")
	h.round()
	if len(h.actor.restarts)+len(h.actor.signals) != 0 || h.loop.Counters().Changes != 1 || envOf(h.res.Env, "DB") != "2" {
		t.Errorf("--on-change none: %+v %+v", h.actor, h.loop.Counters())
	}
}

// In one round the strongest action wins; each distinct signal goes once.
func TestStrongestActionWins(t *testing.T) {
	files := map[string]string{"a": "1", "b": "1", "c": "1", "e": "1"}
	environ := []string{"A=secretfile:DIR/a?file&refresh=HUP", "B=secretfile:DIR/b?file&refresh=USR1",
		"C=secretfile:DIR/c?file", "E=secretfile:DIR/e?refresh=none"}
	hup := provider.Action{Kind: provider.ActSignal, Signal: syscall.SIGHUP}

	h := start(t, Config{OnFileChange: hup}, files, slices.Clone(environ)...)
	for _, f := range []string{"a", "b", "c", "e"} {
		write(t, filepath.Join(h.dir, f), "2")
	}
	h.round()
	if !slices.Equal(h.actor.signals, []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1}) || len(h.actor.restarts) != 0 {
		t.Errorf("signals %v restarts %d; want HUP and USR1 once each", h.actor.signals, len(h.actor.restarts))
	}
	write(t, filepath.Join(h.dir, "e"), "3")
	h.round()
	if len(h.actor.signals) != 2 || len(h.actor.restarts) != 0 || h.loop.Counters().Changes != 5 {
		t.Errorf("refresh=none: %+v %+v", h.actor, h.loop.Counters())
	}

	h = start(t, Config{OnFileChange: hup}, files, append(slices.Clone(environ), "R=secretfile:DIR/a")...)
	write(t, filepath.Join(h.dir, "a"), "2")
	h.round()
	if len(h.actor.restarts) != 1 || len(h.actor.signals) != 0 {
		t.Errorf("restart and HUP in one round: %+v", h.actor)
	}
}

// The signal comes after the files switched.
func TestSignalAfterFilesSwitched(t *testing.T) {
	h := start(t, Config{}, map[string]string{"tls": `{"cert":"c1","key":"k1"}`},
		"CERT=secretfile:DIR/tls#cert?file&refresh=HUP", "KEY=secretfile:DIR/tls#key?file&refresh=HUP")
	certPath, keyPath := envOf(h.res.Env, "CERT"), envOf(h.res.Env, "KEY")
	var seen []string
	h.loop.cfg.Actor = signalReader{h.actor, func() {
		c, _ := os.ReadFile(certPath)
		k, _ := os.ReadFile(keyPath)
		seen = append(seen, string(c)+"/"+string(k))
	}}
	write(t, filepath.Join(h.dir, "tls"), `{"cert":"c2","key":"k2"}`)
	h.round()
	if !slices.Equal(seen, []string{"c2/k2"}) {
		t.Errorf("at the signal the files held %q", seen)
	}
}

type signalReader struct {
	*actor
	read func()
}

func (s signalReader) Signal(sig syscall.Signal) error { s.read(); return s.actor.Signal(sig) }

func TestSplayMergesAndLimitsRestarts(t *testing.T) {
	h := start(t, Config{Splay: 50 * time.Second}, map[string]string{"a": "0", "b": "0"}, "A=secretfile:DIR/a", "B=secretfile:DIR/b")
	// A change every round for 200 rounds.
	for i := range 200 {
		write(t, filepath.Join(h.dir, "a"), strings.Repeat("a", i+1))
		if i%3 == 0 {
			write(t, filepath.Join(h.dir, "b"), strings.Repeat("b", i+1))
		}
		h.round()
	}
	r := h.actor.restarts
	if len(r) < 150 || len(r) > 200 {
		t.Errorf("%d restarts in 200 rounds of changes", len(r))
	}
	for i := 1; i < len(r); i++ {
		if r[i].Sub(r[i-1]) < time.Minute {
			t.Fatalf("restarts %v apart with --refresh 1m --splay 50s", r[i].Sub(r[i-1]))
		}
	}
	// The last restart delivered the newest values.
	h.run(h.clock.now.Add(3 * time.Minute))
	if got := envOf(h.actor.envs[len(h.actor.envs)-1], "A"); got != strings.Repeat("a", 200) {
		t.Errorf("last restart had A of %d bytes", len(got))
	}
}

func TestFailureKeepsValuesAndRecovers(t *testing.T) {
	h := start(t, Config{}, map[string]string{"db": `{"pw":"` + canary + `"}`}, "PW=secretfile:DIR/db#pw", "RAW=secretfile:DIR/db?file")
	write(t, filepath.Join(h.dir, "db"), `{"other":"`+canary+`"}`) // the key is gone: invalid
	h.round()
	h.round()
	if len(h.actor.restarts) != 0 || h.loop.Counters().Failures != 2 || envOf(h.res.Env, "PW") != canary {
		t.Fatalf("a failing round acted: %+v %+v", h.actor, h.loop.Counters())
	}
	s := h.readStatus()
	if s.ConsecutiveFailures != 2 || s.Variables[0].State != "error" {
		t.Errorf("status after failures: %+v", s)
	}
	if !strings.Contains(h.log.String(), `JSON key \"pw\" not in secret`) || strings.Count(h.log.String(), "keeping the last good values") != 2 {
		t.Errorf("log:\n%s", h.log)
	}
	write(t, filepath.Join(h.dir, "db"), `{"pw":"new"}`)
	h.round()
	if len(h.actor.restarts) != 1 || envOf(h.actor.envs[0], "PW") != "new" || h.readStatus().ConsecutiveFailures != 0 {
		t.Errorf("no recovery: %+v", h.actor)
	}
}

func TestDeletedKeepsValue(t *testing.T) {
	h := start(t, Config{}, map[string]string{"db": canary}, "DB=secretfile:DIR/db")
	os.Remove(filepath.Join(h.dir, "db"))
	h.round()
	h.round()
	if len(h.actor.restarts) != 0 || envOf(h.res.Env, "DB") != canary || h.loop.Counters().Failures != 0 {
		t.Errorf("deletion: %+v", h.actor)
	}
	if s := h.readStatus(); s.Variables[0].State != "deleted" {
		t.Errorf("state %q, want deleted", s.Variables[0].State)
	}
	if strings.Count(h.log.String(), "deleted") != 1 {
		t.Errorf("want one log line for the deletion:\n%s", h.log)
	}
	write(t, filepath.Join(h.dir, "db"), "back")
	h.round()
	if len(h.actor.restarts) != 1 || h.readStatus().Variables[0].State != "ok" {
		t.Errorf("after the file came back: %+v", h.actor)
	}
}

func TestMaxStale(t *testing.T) {
	h := start(t, Config{MaxStale: 10 * time.Minute}, map[string]string{"db": "1"}, "DB=secretfile:DIR/db")
	t0 := h.clock.now
	h.round()
	h.det.fail = errors.New("store unreachable")
	last := h.loop.lastSuccess
	h.run(t0.Add(time.Hour))
	if h.actor.stopped != ExitStale || h.actor.stopAt != last.Add(10*time.Minute) {
		t.Errorf("stopped %d at %v, want %d at %v", h.actor.stopped, h.actor.stopAt, ExitStale, last.Add(10*time.Minute))
	}
	if _, ok := h.loop.Step(context.Background()); ok {
		t.Error("the loop goes on after stopping")
	}
	if s := h.readStatus(); s.ConsecutiveFailures < 8 || s.Variables[0].State != "stale" {
		t.Errorf("status: %+v", s)
	}
}

// Nothing to check: --max-stale never fires.
func TestMaxStaleWithNothingToCheck(t *testing.T) {
	h := start(t, Config{MaxStale: 10 * time.Minute}, map[string]string{"a": "1"}, "A=secretfile:DIR/a?refresh=off", "P=plain")
	if wake, ok := h.loop.Step(context.Background()); !ok || !wake.IsZero() {
		t.Errorf("Step = %v, %v; want never again", wake, ok)
	}
	h.clock.now = h.clock.now.Add(24 * time.Hour)
	if _, ok := h.loop.Step(context.Background()); !ok || h.actor.stopped != 0 {
		t.Errorf("stopped with nothing to check")
	}
}

// --refresh leases checks no value: every variable is unchecked.
func TestLeasesOnlyChecksNoValue(t *testing.T) {
	h := start(t, Config{}, map[string]string{"a": "1"}, "A=secretfile:DIR/a")
	cfg := h.loop.cfg
	cfg.Interval = 0
	l := New(cfg, h.res)
	if wake, ok := l.Step(context.Background()); !ok || !wake.IsZero() || l.Status().Variables[0].State != "unchecked" {
		t.Errorf("leases only: wake %v %v, status %+v", wake, ok, l.Status())
	}
	if strings.Contains(h.log.String(), "no change detection") {
		t.Errorf("a warning about stores with leases only:\n%s", h.log)
	}
}

func TestOffIsNeverChecked(t *testing.T) {
	h := start(t, Config{}, map[string]string{"a": "1", "b": "1"}, "A=secretfile:DIR/a?refresh=off", "B=secretfile:DIR/b")
	write(t, filepath.Join(h.dir, "a"), "2")
	for range 5 {
		h.round()
	}
	if h.det.calls != 5 || len(h.actor.restarts) != 0 {
		t.Errorf("calls %d restarts %d", h.det.calls, len(h.actor.restarts))
	}
	if s := h.readStatus(); s.Variables[0].State != "off" || s.Variables[1].State != "ok" {
		t.Errorf("status: %+v", s.Variables)
	}
	// A target named by an off variable and a checked one: only the
	// checked one changes.
	h = start(t, Config{}, map[string]string{"a": "1"}, "A=secretfile:DIR/a?refresh=off", "B=secretfile:DIR/a")
	write(t, filepath.Join(h.dir, "a"), "2")
	h.round()
	if len(h.actor.restarts) != 1 || envOf(h.actor.envs[0], "A") != "1" || envOf(h.actor.envs[0], "B") != "2" {
		t.Errorf("off and on for one file: %+v", h.actor.envs)
	}
}

func TestCheckNow(t *testing.T) {
	h := start(t, Config{Interval: time.Hour}, map[string]string{"a": "1"}, "A=secretfile:DIR/a")
	next := h.loop.nextCheck
	write(t, filepath.Join(h.dir, "a"), "2")
	h.loop.CheckNow(context.Background())
	if len(h.actor.restarts) != 1 || h.loop.nextCheck != next {
		t.Errorf("CheckNow: restarts %d, schedule moved %v → %v", len(h.actor.restarts), next, h.loop.nextCheck)
	}
}

func TestFingerprintIsKeyed(t *testing.T) {
	a, b := NewFingerprint(), NewFingerprint()
	if a.Of([]byte("x")) == b.Of([]byte("x")) || a.Of([]byte("x")) != a.Of([]byte("x")) || a.Of([]byte("x")) == a.Of([]byte("y")) {
		t.Error("fingerprints are not keyed per process")
	}
}
