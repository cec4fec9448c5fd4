package refresh

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/aws"
	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
)

// awsFake is the wire-level AWS fake, one for this test binary: the AWS
// store reads its environment once per process. Tests use names of their
// own and inject no failure (provider/aws's tests of StoreDetector do,
// each on a fake of its own).
var awsFake = sync.OnceValue(func() *awsfake.Server {
	f := awsfake.New()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			os.Unsetenv(k)
		}
	}
	for k, v := range f.Env() {
		os.Setenv(k, v)
	}
	os.Setenv("AWS_REGION", "eu-west-1")
	return f
})

var awsStores = map[provider.Kind]provider.Opener{provider.SecretsManager: aws.OpenSecretsManager, provider.SSM: aws.OpenSSM}

// Secrets Manager and SSM over the wire, through the Loop: quiet rounds
// make exactly the cheap calls (one DescribeSecret per secret, one
// GetParameters per 10 parameters, none for a pinned one) and read no
// value; a rotation restarts once with the new values, each read once; a
// deleted secret keeps its value.
func TestLoopOverAWS(t *testing.T) {
	f := awsFake()
	f.PutSecret("eu-west-1", "loop-db", awsfake.Secret{String: `{"password":"one-` + canary + `"}`})
	f.PutParameter("eu-west-1", "/loop/key", awsfake.Parameter{Value: "k1-" + canary, Secure: true})
	f.PutParameter("eu-west-1", "/loop/pinned", awsfake.Parameter{Value: "p1"})
	h := startWith(t, Config{}, awsStores, nil,
		"PW=aws:secretsmanager:loop-db:password", "RAW=aws:secretsmanager:loop-db?file", "KEY=aws:ssm:/loop/key", "PIN=aws:ssm:/loop/pinned:1")
	count := func() [3]int {
		return [3]int{f.Count("DescribeSecret"), f.Count("GetParameters"), f.Count("GetSecretValue") + f.Count("BatchGetSecretValue") + f.Count("GetParameter")}
	}
	before := count()
	for range 50 {
		h.round()
	}
	if got := count(); got != [3]int{before[0] + 50, before[1] + 50, before[2]} {
		t.Errorf("50 quiet rounds: DescribeSecret, GetParameters, value reads went from %v to %v; want +50, +50, +0", before, got)
	}
	if len(h.actor.restarts) != 0 {
		t.Errorf("%d restarts in quiet rounds", len(h.actor.restarts))
	}

	f.Rotate("eu-west-1", "loop-db", awsfake.Secret{String: `{"password":"two-` + canary + `"}`})
	f.PutParameter("eu-west-1", "/loop/key", awsfake.Parameter{Value: "k2-" + canary, Secure: true})
	before = count()
	h.round()
	h.round()
	// Two rounds of cheap calls, plus one re-read of each: the secret in
	// one BatchGetSecretValue, the parameter in one GetParameters.
	if got := count(); got != [3]int{before[0] + 2, before[1] + 3, before[2] + 1} {
		t.Errorf("a rotation: DescribeSecret, GetParameters, value reads went from %v to %v", before, got)
	}
	if len(h.actor.restarts) != 1 || envOf(h.actor.envs[0], "PW") != "two-"+canary || envOf(h.actor.envs[0], "KEY") != "k2-"+canary {
		t.Fatalf("rotation: %d restarts", len(h.actor.restarts))
	}
	s := h.loop.Status()
	if v := s.Variables[0].Version; v == "" || strings.HasPrefix(v, "hmac:") || s.Variables[2].Version != "2" || s.Variables[3].State != "pinned" {
		t.Errorf("status: %+v", s.Variables)
	}

	f.DeleteSecret("eu-west-1", "loop-db", true)
	h.round()
	if s := h.loop.Status(); s.Variables[0].State != "deleted" || s.ConsecutiveFailures != 0 || len(h.actor.restarts) != 1 {
		t.Errorf("deleted: %+v", s)
	}
}

// bookStore is an in-memory store whose Versions says it keeps no
// versions (as Vault does for KV v1 and dynamic secrets).
type bookStore struct{ fetches, asks int }

func (b *bookStore) Fetch(_ context.Context, ts []provider.Target) []provider.Result {
	b.fetches++
	rs := make([]provider.Result, len(ts))
	for i := range rs {
		rs[i].Value = []byte("new credentials each time " + fmt.Sprint(b.fetches))
	}
	return rs
}

func (b *bookStore) Versions(_ context.Context, ts []provider.Target) []provider.Result {
	b.asks++
	return provider.Failed(len(ts), fmt.Errorf("%w: a dynamic secret", provider.ErrUnversioned))
}

// A target with no versions is not checked: reading it (a dynamic secret)
// would issue new credentials every round.
func TestUnversionedIsNotChecked(t *testing.T) {
	b := &bookStore{}
	var log bytes.Buffer
	d := &StoreDetector{Kind: provider.Vault, FP: NewFingerprint(), Log: slog.New(slog.NewTextHandler(&log, nil)),
		Open: func(context.Context, provider.Settings) (provider.Store, error) { return b, nil }}
	ts := []provider.Target{{Kind: provider.Vault, Name: "database/creds/app"}}
	for range 3 {
		if s := d.Detect(t.Context(), ts)[0]; !s.Unchecked || s.Err != nil {
			t.Fatalf("Seen %+v, want Unchecked", s)
		}
	}
	if b.asks != 1 || b.fetches != 0 || strings.Count(log.String(), "level=WARN") != 1 {
		t.Errorf("asked %d, fetched %d; log:\n%s", b.asks, b.fetches, log.String())
	}
}

// An AWS outage that never answers: each round makes one DescribeSecret,
// which holds the round's --timeout, and then nothing (the stores are
// checked one after the other: SSM's check finds the round's time spent,
// and is not sent); no value is read, the command keeps its values; once AWS answers again, a rotation made during the
// outage is read once and restarts once.
func TestLoopOverAWSOutage(t *testing.T) {
	f := awsFake()
	t.Cleanup(f.Heal)
	f.PutSecret("eu-west-1", "outage-db", awsfake.Secret{String: "one-" + canary})
	f.PutParameter("eu-west-1", "/outage/key", awsfake.Parameter{Value: "k1-" + canary, Secure: true})
	h := startWith(t, Config{}, awsStores, nil, "PW=aws:secretsmanager:outage-db", "KEY=aws:ssm:/outage/key")
	count := func() [3]int {
		return [3]int{f.Count("DescribeSecret"), f.Count("GetParameters"), f.Count("GetSecretValue") + f.Count("BatchGetSecretValue") + f.Count("GetParameter")}
	}
	h.round()
	f.Hang()
	f.Rotate("eu-west-1", "outage-db", awsfake.Secret{String: "two-" + canary})
	h.loop.cfg.Timeout = 300 * time.Millisecond
	before := count()
	for range 3 {
		h.round()
	}
	s := h.loop.Status()
	if got := count(); got != [3]int{before[0] + 3, before[1], before[2]} || len(h.actor.envs) != 0 || s.ConsecutiveFailures != 3 || varState(t, s, "PW").State != "stale" {
		t.Fatalf("an outage: %v → %v, %d restarts, status %+v", before, got, len(h.actor.envs), s)
	}
	f.Heal()
	h.loop.cfg.Timeout = time.Minute
	before = count()
	h.round()
	s = h.loop.Status()
	if got := count(); got != [3]int{before[0] + 1, before[1] + 1, before[2] + 1} || len(h.actor.envs) != 1 || envOf(h.actor.envs[0], "PW") != "two-"+canary || s.ConsecutiveFailures != 0 {
		t.Fatalf("recovery: %v → %v, %d restarts, status %+v", before, got, len(h.actor.envs), s)
	}
}
