package aws

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
	"github.com/secrets-init/secrets-init/refresh"
)

// detector is refresh's StoreDetector on the store of kind, opened on the
// current environment (the fake's).
func detector(t *testing.T, kind provider.Kind, log *bytes.Buffer) *refresh.StoreDetector {
	l := slog.New(slog.NewTextHandler(log, nil))
	return &refresh.StoreDetector{Kind: kind, FP: refresh.NewFingerprint(), Log: l,
		Open: func(context.Context, provider.Settings) (provider.Store, error) { return open(t, kind), nil }}
}

// A denied DescribeSecret: refresh falls back, logged once, to reading the
// value and comparing a keyed hash; the denied call is not made again; a
// rotation is still seen.
func TestDetectorDeniedFallsBack(t *testing.T) {
	f := newFake(t, "eu-west-1")
	f.PutSecret("eu-west-1", "db", awsfake.Secret{String: "one-" + canary})
	f.FailOp("DescribeSecret", "AccessDeniedException", "User is not authorized to perform: secretsmanager:DescribeSecret")
	var log bytes.Buffer
	d := detector(t, provider.SecretsManager, &log)
	ts, _ := targets(t, []string{"aws:secretsmanager:db"})
	var seen []refresh.Seen
	for range 5 {
		seen = append(seen, d.Detect(t.Context(), ts)[0])
	}
	if n := f.Count("DescribeSecret"); n != 1 {
		t.Errorf("%d DescribeSecret calls: the denied call is made once", n)
	}
	if n := f.Count("GetSecretValue") + f.Count("BatchGetSecretValue"); n != 5 {
		t.Errorf("%d value reads in 5 checks", n)
	}
	for _, s := range seen {
		if s.Err != nil || !s.ByFingerprint || s.Version != seen[0].Version || !strings.HasPrefix(s.Version, "hmac:") {
			t.Fatalf("checks by value: %+v", seen)
		}
	}
	if strings.Count(log.String(), "level=WARN") != 1 || !strings.Contains(log.String(), "secretsmanager:DescribeSecret") || strings.Contains(log.String(), canary) {
		t.Errorf("log:\n%s", log.String())
	}
	f.Rotate("eu-west-1", "db", awsfake.Secret{String: "two-" + canary})
	if s := d.Detect(t.Context(), ts)[0]; s.Err != nil || s.Version == seen[0].Version {
		t.Errorf("after a rotation: %+v", s)
	}
}

// Deletion, an outage and a denied SSM check, each as refresh sees it.
func TestDetectorStates(t *testing.T) {
	f := newFake(t, "eu-west-1")
	f.PutSecret("eu-west-1", "gone", awsfake.Secret{String: "x"})
	f.PutSecret("eu-west-1", "down", awsfake.Secret{String: "x"})
	f.PutParameter("eu-west-1", "/p", awsfake.Parameter{Value: "v-" + canary, Secure: true})
	var log bytes.Buffer
	ts, _ := targets(t, []string{"aws:secretsmanager:gone", "aws:secretsmanager:down"})
	f.DeleteSecret("eu-west-1", "gone", true)
	f.FailName("down", "InternalServiceError", "down")
	seen := detector(t, provider.SecretsManager, &log).Detect(t.Context(), ts)
	if !seen[0].Deleted || seen[1].Err == nil || seen[1].Deleted {
		t.Errorf("deleted and down: %+v", seen)
	}
	f.FailOp("GetParameters", "AccessDeniedException", "not authorized to perform: ssm:GetParameters")
	ps, _ := targets(t, []string{"aws:ssm:/p"})
	s := detector(t, provider.SSM, &log).Detect(t.Context(), ps)[0]
	if s.Err != nil || !s.ByFingerprint {
		t.Errorf("denied GetParameters: %+v", s)
	}
	if strings.Contains(log.String(), canary) {
		t.Errorf("log holds a value:\n%s", log.String())
	}
}
