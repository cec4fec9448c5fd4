package refresh

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/gcp"
	"github.com/secrets-init/secrets-init/provider/gcp/gcpfake"
)

// gcpFake starts a Google Secret Manager fake for one test, reached as an
// emulator (plaintext gRPC) through SECRET_MANAGER_EMULATOR_HOST.
func gcpFake(t *testing.T) *gcpfake.Server {
	f, err := gcpfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	t.Setenv(gcp.EmulatorEnv, f.Addr)
	return f
}

var gcpStores = map[provider.Kind]provider.Opener{provider.Google: gcp.Opener(gcp.Options{Project: "p"})}

// gcpCalls counts the fake's calls: GetSecretVersion (the checks),
// AccessSecretVersion (value reads).
func gcpCalls(f *gcpfake.Server) [2]int {
	return [2]int{f.Count("GetSecretVersion"), f.Count("AccessSecretVersion")}
}

// Google over the wire, through the Loop: quiet rounds make exactly one
// GetSecretVersion per checked secret and read no payload (a pinned
// version is never asked); a new version is read once, at the number the
// check saw, and restarts once; a rotation racing between the check and
// the read is read at the checked version; a moved alias is a change; an
// outage (hang, then server faults) keeps the values, and the rounds after
// it recover; a deleted secret keeps its value.
func TestLoopOverGoogle(t *testing.T) {
	f := gcpFake(t)
	f.Add("projects/p/secrets/db", []byte(`{"password":"one-`+canary+`"}`))
	f.Add("projects/p/secrets/api", []byte("a1-"+canary))
	f.Alias("projects/p/secrets/api", "stable", 1)
	f.Add("projects/p/secrets/pin", []byte("p1"))
	h := startWith(t, Config{}, gcpStores, nil,
		"PW=gcp:secretmanager:db#password", "RAW=gcp:secretmanager:db?file", "API=gcp:secretmanager:api/versions/stable",
		"PIN=gcp:secretmanager:pin/versions/1")
	before := gcpCalls(f)
	for range 50 {
		h.round()
	}
	if got := gcpCalls(f); got != [2]int{before[0] + 100, before[1]} || len(h.actor.envs) != 0 {
		t.Fatalf("50 quiet rounds: GetSecretVersion, AccessSecretVersion %v → %v (want +100, +0); %d restarts", before, got, len(h.actor.envs))
	}
	if s := varState(t, h.loop.Status(), "PIN"); s.State != "pinned" {
		t.Errorf("PIN: %+v", s)
	}

	// A rotation: one read, pinned to versions/2, one restart.
	f.Add("projects/p/secrets/db", []byte(`{"password":"two-`+canary+`"}`))
	before = gcpCalls(f)
	h.round()
	h.round()
	if got := gcpCalls(f); got != [2]int{before[0] + 4, before[1] + 1} {
		t.Errorf("a rotation: %v → %v (want +4, +1)", before, got)
	}
	if r := f.Requests(); r[len(r)-1] != "projects/p/secrets/db/versions/2" {
		t.Errorf("read %s", r[len(r)-1])
	}
	if len(h.actor.envs) != 1 || envOf(h.actor.envs[0], "PW") != "two-"+canary {
		t.Fatalf("%d restarts", len(h.actor.envs))
	}

	// A second new version between the check and the read.
	r := race(h, provider.Google)
	f.Add("projects/p/secrets/db", []byte(`{"password":"three-`+canary+`"}`))
	r.then = func() { f.Add("projects/p/secrets/db", []byte(`{"password":"four-`+canary+`"}`)) }
	before = gcpCalls(f)
	h.round()
	if got := gcpCalls(f); got != [2]int{before[0] + 2, before[1] + 1} {
		t.Errorf("a raced rotation: %v → %v (want +2, +1)", before, got)
	}
	if r := f.Requests(); r[len(r)-1] != "projects/p/secrets/db/versions/3" {
		t.Errorf("read %s, want versions/3", r[len(r)-1])
	}
	if len(h.actor.envs) != 2 || envOf(h.actor.envs[1], "PW") != "three-"+canary || varState(t, h.loop.Status(), "PW").Version != "3" {
		t.Fatalf("raced: %d restarts, status %+v", len(h.actor.envs), varState(t, h.loop.Status(), "PW"))
	}
	h.round()
	if len(h.actor.envs) != 3 || envOf(h.actor.envs[2], "PW") != "four-"+canary || varState(t, h.loop.Status(), "PW").Version != "4" {
		t.Fatalf("after the race: %d restarts", len(h.actor.envs))
	}

	// An outage that never answers: one call per secret, the values kept.
	f.Hang(true)
	f.Add("projects/p/secrets/api", []byte("a2-"+canary))
	f.Alias("projects/p/secrets/api", "stable", 2) // a moved alias, seen after the outage
	h.loop.cfg.Timeout = 300 * time.Millisecond
	before = gcpCalls(f)
	for range 3 {
		h.round()
	}
	s := h.loop.Status()
	if got := gcpCalls(f); got != [2]int{before[0] + 6, before[1]} || len(h.actor.envs) != 3 || s.ConsecutiveFailures != 3 || varState(t, s, "API").State != "stale" {
		t.Fatalf("an outage: %v → %v, %d restarts, status %+v", before, got, len(h.actor.envs), s)
	}
	if !strings.Contains(h.log.String(), "keeping the last good values") {
		t.Errorf("log:\n%s", h.log)
	}
	// Server faults that pass: retried within the round.
	f.Hang(false)
	f.Fail(codes.Unavailable, 2)
	h.loop.cfg.Timeout = time.Minute
	before = gcpCalls(f)
	h.round()
	s = h.loop.Status()
	if got := gcpCalls(f); got != [2]int{before[0] + 4, before[1] + 1} || len(h.actor.envs) != 4 || envOf(h.actor.envs[3], "API") != "a2-"+canary || s.ConsecutiveFailures != 0 {
		t.Fatalf("recovery: %v → %v, %d restarts, status %+v", before, got, len(h.actor.envs), s)
	}
	if v := varState(t, s, "API"); v.State != "ok" || v.Version != "2" {
		t.Errorf("API: %+v", v)
	}

	// Deletion: the last value stays.
	f.Delete("projects/p/secrets/db")
	h.round()
	h.round()
	s = h.loop.Status()
	if v := varState(t, s, "PW"); v.State != "deleted" || s.ConsecutiveFailures != 0 || len(h.actor.envs) != 4 {
		t.Errorf("deleted: %+v, %d restarts", s, len(h.actor.envs))
	}
	if strings.Count(h.log.String(), "was deleted") != 1 {
		t.Errorf("deletion logged %d times", strings.Count(h.log.String(), "was deleted"))
	}
}

// A caller without secretmanager.versions.get: one logged fallback to
// reading the values (AccessSecretVersion), the denied call never made
// again, a change still seen and read once more to compare.
func TestLoopOverGoogleDenied(t *testing.T) {
	f := gcpFake(t)
	f.Add("projects/p/secrets/db", []byte("one-"+canary))
	f.Add("projects/p/secrets/api", []byte("a1-"+canary))
	f.DenyGet(true)
	h := startWith(t, Config{}, gcpStores, nil, "PW=gcp:secretmanager:db", "API=gcp:secretmanager:api")
	before := gcpCalls(f)
	for range 10 {
		h.round()
	}
	if got := gcpCalls(f); got != [2]int{before[0] + 2, before[1] + 20} || len(h.actor.envs) != 0 {
		t.Fatalf("10 denied rounds: %v → %v (want +2, +20)", before, got)
	}
	if strings.Count(h.log.String(), "level=WARN") != 1 || !strings.Contains(h.log.String(), "secretmanager.versions.get") {
		t.Errorf("log:\n%s", h.log)
	}
	f.Add("projects/p/secrets/db", []byte("two-"+canary))
	before = gcpCalls(f)
	h.round()
	if got := gcpCalls(f); got != [2]int{before[0], before[1] + 3} || len(h.actor.envs) != 1 || envOf(h.actor.envs[0], "PW") != "two-"+canary {
		t.Fatalf("a rotation by value: %v → %v, %d restarts", before, got, len(h.actor.envs))
	}
	if s := h.loop.Status(); s.ConsecutiveFailures != 0 || varState(t, s, "PW").Version != "2" {
		t.Errorf("status %+v", s)
	}
}
