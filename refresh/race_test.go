package refresh

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
)

// racer is a Detector that changes the store once, right after its next
// check has answered: a rotation racing between the check and the re-read
// of what the check saw change (SPEC §8: the re-read is pinned to the
// version just seen).
type racer struct {
	Detector
	then func()
}

func (r *racer) Detect(ctx context.Context, ts []provider.Target) []Seen {
	seen := r.Detector.Detect(ctx, ts)
	if f := r.then; f != nil {
		r.then = nil
		f()
	}
	return seen
}

// race puts a racer in front of the detector of kind's targets in h's Loop.
func race(h *harness, kind provider.Kind) *racer {
	r := &racer{}
	for _, t := range h.loop.targets {
		if t.t.Kind == kind {
			if r.Detector == nil {
				r.Detector = t.det
			}
			t.det = r
		}
	}
	if r.Detector == nil {
		h.t.Fatalf("no %s target", kind)
	}
	return r
}

// varState is the status of the variable name.
func varState(t testing.TB, s Status, name string) VarState {
	t.Helper()
	for _, v := range s.Variables {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no variable %s in the status", name)
	return VarState{}
}

// A second rotation between the check and the read: Secrets Manager is
// read at the VersionId the check saw (one GetSecretValue with that id),
// SSM at name:N (one GetParameters), and the status names those versions;
// the next round delivers the newer one.
func TestRaceAWS(t *testing.T) {
	f := awsFake()
	f.PutSecret("eu-west-1", "race-db", awsfake.Secret{String: "one-" + canary})
	f.PutParameter("eu-west-1", "/race/key", awsfake.Parameter{Value: "k1-" + canary, Secure: true, Labels: []string{"live"}})
	h := startWith(t, Config{}, awsStores, nil, "PW=aws:secretsmanager:race-db", "KEY=aws:ssm:/race/key:live")
	sm, ssm := race(h, provider.SecretsManager), race(h, provider.SSM)
	count := func() [4]int {
		return [4]int{f.Count("DescribeSecret"), f.Count("GetParameters"), f.Count("GetSecretValue"),
			f.Count("BatchGetSecretValue") + f.Count("GetParameter")}
	}
	h.round()
	v2 := f.Rotate("eu-west-1", "race-db", awsfake.Secret{String: "two-" + canary})
	f.PutParameter("eu-west-1", "/race/key", awsfake.Parameter{Value: "k2-" + canary, Secure: true, Labels: []string{"live"}})
	var v3 string
	sm.then = func() { v3 = f.Rotate("eu-west-1", "race-db", awsfake.Secret{String: "three-" + canary}) }
	ssm.then = func() {
		f.PutParameter("eu-west-1", "/race/key", awsfake.Parameter{Value: "k3-" + canary, Secure: true, Labels: []string{"live"}})
	}
	before := count()
	h.round()
	// The checks (one DescribeSecret, one GetParameters), then one pinned
	// read each: a GetSecretValue with the VersionId, a GetParameters of
	// /race/key:2.
	if got := count(); got != [4]int{before[0] + 1, before[1] + 2, before[2] + 1, before[3]} {
		t.Errorf("DescribeSecret, GetParameters, GetSecretValue, other reads: %v → %v", before, got)
	}
	if len(h.actor.envs) != 1 || envOf(h.actor.envs[0], "PW") != "two-"+canary || envOf(h.actor.envs[0], "KEY") != "k2-"+canary {
		t.Fatalf("after a rotation raced by a second one: %d restarts (want the version the check saw)", len(h.actor.envs))
	}
	s := h.loop.Status()
	if pw, key := varState(t, s, "PW"), varState(t, s, "KEY"); pw.Version != v2 || key.Version != "2" || pw.State != "ok" {
		t.Errorf("status: %+v %+v; want versions %s and 2", pw, key, v2)
	}
	h.round()
	if len(h.actor.envs) != 2 || envOf(h.actor.envs[1], "PW") != "three-"+canary || envOf(h.actor.envs[1], "KEY") != "k3-"+canary {
		t.Fatalf("the next round: %d restarts", len(h.actor.envs))
	}
	if pw := varState(t, h.loop.Status(), "PW"); pw.Version != v3 {
		t.Errorf("status version %s, want %s", pw.Version, v3)
	}
}

// A file has no versions: the read is compared with the hash the check
// saw. When the file changed again in between, nothing is delivered (nor
// counted as a failure), and the next round delivers what it then reads
// twice.
func TestRaceFile(t *testing.T) {
	h := start(t, Config{}, map[string]string{"db": "one-" + canary}, "DB=secretfile:DIR/db")
	r := race(h, provider.File)
	h.round()
	write(t, filepath.Join(h.dir, "db"), "two-"+canary)
	r.then = func() { write(t, filepath.Join(h.dir, "db"), "three-"+canary) }
	h.round()
	s := h.loop.Status()
	if len(h.actor.envs) != 0 || s.ConsecutiveFailures != 0 || s.Counters.Failures != 0 {
		t.Fatalf("a read that is not what the check saw: %d restarts, status %+v", len(h.actor.envs), s)
	}
	if !strings.Contains(h.log.String(), "changed again while it was read") {
		t.Errorf("log:\n%s", h.log)
	}
	h.round()
	if len(h.actor.envs) != 1 || envOf(h.actor.envs[0], "DB") != "three-"+canary {
		t.Fatalf("next round: %d restarts", len(h.actor.envs))
	}
	if v := varState(t, h.loop.Status(), "DB").Version; v != h.loop.byT[h.loop.targets[0].t].fingerprint || !strings.HasPrefix(v, "hmac:") {
		t.Errorf("status version %s", v)
	}
	if n := h.det.calls; n != 3 {
		t.Errorf("%d checks in 3 rounds", n)
	}
}

// With DescribeSecret denied, a secret is checked by its value's keyed
// hash, and a re-read that is not what the check read (a second rotation
// in between) is not delivered; the next round delivers it.
func TestRaceDeniedFallback(t *testing.T) {
	f := awsFake()
	t.Cleanup(f.Heal)
	f.PutSecret("eu-west-1", "race-denied", awsfake.Secret{String: "one-" + canary})
	f.FailOp("DescribeSecret", "AccessDeniedException", "User is not authorized to perform: secretsmanager:DescribeSecret")
	h := startWith(t, Config{}, awsStores, nil, "PW=aws:secretsmanager:race-denied")
	r := race(h, provider.SecretsManager)
	reads := func() int { return f.Count("GetSecretValue") + f.Count("BatchGetSecretValue") }
	describes := f.Count("DescribeSecret")
	h.round()
	f.Rotate("eu-west-1", "race-denied", awsfake.Secret{String: "two-" + canary})
	r.then = func() { f.Rotate("eu-west-1", "race-denied", awsfake.Secret{String: "three-" + canary}) }
	before := reads()
	h.round()
	if got := reads(); got != before+2 || len(h.actor.envs) != 0 {
		t.Fatalf("the check's read and the re-read: %d reads, %d restarts", got-before, len(h.actor.envs))
	}
	h.round()
	if len(h.actor.envs) != 1 || envOf(h.actor.envs[0], "PW") != "three-"+canary {
		t.Fatalf("next round: %d restarts", len(h.actor.envs))
	}
	if n := f.Count("DescribeSecret") - describes; n != 1 {
		t.Errorf("%d DescribeSecret calls: the denied call is made once", n)
	}
	if strings.Count(h.log.String(), "level=WARN") != 1 || !strings.Contains(h.log.String(), "secretsmanager:DescribeSecret") {
		t.Errorf("log:\n%s", h.log)
	}
}
