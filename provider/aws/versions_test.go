package aws

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
)

// versionsOf checks refs (all of one store) through provider.Versions and
// returns one result per reference, failing on a value or a canary in an
// error.
func versionsOf(t *testing.T, refs ...string) []provider.Result {
	t.Helper()
	ts, idx := targets(t, refs)
	v, ok := open(t, ts[0].Kind).(provider.Versioner)
	if !ok {
		t.Fatalf("the %s store is no Versioner", ts[0].Kind)
	}
	res := provider.Versions(t.Context(), v, ts)
	out := make([]provider.Result, len(refs))
	for i := range refs {
		r := res[idx[i]]
		if r.Value != nil || (r.Version == "") == (r.Err == nil) {
			t.Fatalf("%s: want a version or an error, got %+v", refs[i], r)
		}
		if r.Err != nil && strings.Contains(r.Err.Error(), canary) {
			t.Errorf("%s: error holds a value: %v", refs[i], r.Err)
		}
		out[i] = r
	}
	return out
}

// valueReads counts the calls of f that read values.
func valueReads(f *awsfake.Server) int {
	return f.Count("GetSecretValue") + f.Count("BatchGetSecretValue") + f.Count("GetParameter")
}

func TestSecretsManagerVersions(t *testing.T) {
	f := newFake(t, "eu-west-1")
	arn := f.PutSecret("eu-west-1", "db", awsfake.Secret{String: "one-" + canary})
	f.PutSecret("us-east-2", "db", awsfake.Secret{String: "east-" + canary, VersionID: "east-1"})
	current := "aws:secretsmanager:db"
	previous := "aws:secretsmanager:db::AWSPREVIOUS"
	full := arn
	other := "arn:aws:secretsmanager:us-east-2:123456789012:secret:db"

	rs := versionsOf(t, current, previous, full, other)
	first := rs[0].Version
	if first == "" || rs[2].Version != first || rs[3].Version != "east-1" {
		t.Fatalf("versions %+v", rs)
	}
	if !errors.Is(rs[1].Err, provider.ErrNotFound) {
		t.Errorf("no AWSPREVIOUS yet: %v", rs[1].Err)
	}
	// What Fetch serves is the version Versions reported.
	if got := resolve(t, current)[0].Version; got != first {
		t.Errorf("Fetch serves %s, Versions said %s", got, first)
	}
	if n := f.Count("DescribeSecret"); n != 4 {
		t.Errorf("%d DescribeSecret calls for 4 targets", n)
	}

	second := f.Rotate("eu-west-1", "db", awsfake.Secret{String: "two-" + canary})
	reads := valueReads(f)
	pinned := fmt.Sprintf("aws:secretsmanager:db:::%s", first)
	rs = versionsOf(t, current, previous, pinned)
	if rs[0].Version != second || rs[1].Version != first || rs[2].Version != first {
		t.Errorf("after rotation: current %q previous %q pinned %q; want %s %s %s", rs[0].Version, rs[1].Version, rs[2].Version, second, first, first)
	}
	if n := f.Count("DescribeSecret"); n != 6 {
		t.Errorf("%d DescribeSecret calls, want 6: the pinned reference is never asked", n)
	}
	if valueReads(f) != reads {
		t.Error("Versions read a value")
	}
	if r := resolve(t, current)[0]; r.Version != second || string(r.Value) != "two-"+canary {
		t.Errorf("Fetch after rotation: version %s", r.Version)
	}
}

func TestSecretsManagerVersionsOnlyPinned(t *testing.T) {
	f := newFake(t, "eu-west-1")
	f.PutSecret("eu-west-1", "db", awsfake.Secret{String: canary, VersionID: "v-1"})
	if rs := versionsOf(t, "aws:secretsmanager:db:::v-1"); rs[0].Version != "v-1" {
		t.Errorf("pinned: %+v", rs[0])
	}
	if n := len(f.Calls()); n != 0 {
		t.Errorf("%d calls for a pinned reference", n)
	}
}

func TestSecretsManagerVersionsDeleted(t *testing.T) {
	f := newFake(t, "eu-west-1")
	f.PutSecret("eu-west-1", "soon", awsfake.Secret{String: canary})
	f.PutSecret("eu-west-1", "now", awsfake.Secret{String: canary})
	f.DeleteSecret("eu-west-1", "soon", false)
	f.DeleteSecret("eu-west-1", "now", true)
	rs := versionsOf(t, "aws:secretsmanager:soon", "aws:secretsmanager:now", "aws:secretsmanager:never")
	for i, r := range rs {
		if !errors.Is(r.Err, provider.ErrNotFound) {
			t.Errorf("%d: %v, want not found", i, r.Err)
		}
	}
	if !strings.Contains(rs[0].Err.Error(), "scheduled for deletion") {
		t.Errorf("scheduled: %v", rs[0].Err)
	}
}

func TestSecretsManagerVersionsDenied(t *testing.T) {
	f := newFake(t, "eu-west-1")
	f.PutSecret("eu-west-1", "db", awsfake.Secret{String: "v-" + canary})
	f.FailOp("DescribeSecret", "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/app is not authorized to perform: secretsmanager:DescribeSecret")
	r := versionsOf(t, "aws:secretsmanager:db")[0]
	if !errors.Is(r.Err, provider.ErrDenied) || !strings.Contains(r.Err.Error(), "secretsmanager:DescribeSecret") {
		t.Errorf("denied: %v", r.Err)
	}
	// The fallback, reading the value, still works.
	if got := resolve(t, "aws:secretsmanager:db")[0]; string(got.Value) != "v-"+canary {
		t.Errorf("fallback read: %v", got.Err)
	}
}

func TestSecretsManagerVersionsThrottled(t *testing.T) {
	f := newFake(t, "eu-west-1")
	f.PutSecret("eu-west-1", "db", awsfake.Secret{String: canary, VersionID: "v-1"})
	f.Throttle(1)
	if r := versionsOf(t, "aws:secretsmanager:db")[0]; r.Version != "v-1" {
		t.Errorf("after a throttle: %+v", r)
	}
	if n, th := f.Count("DescribeSecret"), f.Throttled(); n != 2 || th != 1 {
		t.Errorf("%d calls, %d throttled; want 2 and 1", n, th)
	}
}

func TestSSMVersions(t *testing.T) {
	f := newFake(t, "eu-west-1")
	var refs []string
	for i := range 25 {
		name := fmt.Sprintf("/app/p%02d", i)
		f.PutParameter("eu-west-1", name, awsfake.Parameter{Value: "one-" + canary, Secure: i%2 == 0})
		refs = append(refs, "aws:ssm:"+name)
	}
	rs := versionsOf(t, refs...)
	for i, r := range rs {
		if r.Version != "1" {
			t.Errorf("%s: version %q", refs[i], r.Version)
		}
	}
	if n := f.Count("GetParameters"); n != 3 {
		t.Errorf("%d GetParameters calls for 25 parameters, want 3", n)
	}
	if valueReads(f) != 0 {
		t.Error("Versions read a value")
	}

	f.PutParameter("eu-west-1", "/app/p07", awsfake.Parameter{Value: "two-" + canary})
	rs = versionsOf(t, "aws:ssm:/app/p07", "aws:ssm:/app/p08", "arn:aws:ssm:eu-west-1:123456789012:parameter/app/p07")
	if rs[0].Version != "2" || rs[1].Version != "1" || rs[2].Version != "2" {
		t.Errorf("after a new version: %+v", rs)
	}
	if got := resolve(t, "aws:ssm:/app/p07")[0]; got.Version != "2" {
		t.Errorf("Fetch serves version %s", got.Version)
	}
}

func TestSSMVersionsLabelsAndPins(t *testing.T) {
	f := newFake(t, "eu-west-1")
	f.PutParameter("eu-west-1", "/p", awsfake.Parameter{Value: "a-" + canary, Labels: []string{"prod"}})
	f.PutParameter("eu-west-1", "/p", awsfake.Parameter{Value: "b-" + canary})
	rs := versionsOf(t, "aws:ssm:/p", "aws:ssm:/p:prod", "aws:ssm:/p:1", "aws:ssm:/p:nolabel")
	if rs[0].Version != "2" || rs[1].Version != "1" || rs[2].Version != "1" {
		t.Errorf("versions %+v", rs)
	}
	if !errors.Is(rs[3].Err, provider.ErrNotFound) {
		t.Errorf("an unknown label: %v", rs[3].Err)
	}
	f.PutParameter("eu-west-1", "/p", awsfake.Parameter{Value: "c-" + canary, Labels: []string{"prod"}})
	if rs := versionsOf(t, "aws:ssm:/p:prod"); rs[0].Version != "3" {
		t.Errorf("the label moved to 3, reported %q", rs[0].Version)
	}
	calls := f.Count("GetParameters")
	if rs := versionsOf(t, "aws:ssm:/p:1", "aws:ssm:/p:2"); rs[0].Version != "1" || rs[1].Version != "2" {
		t.Errorf("pinned %+v", rs)
	}
	if f.Count("GetParameters") != calls {
		t.Error("pinned versions were asked about")
	}
}

func TestSSMVersionsDeletedAndDenied(t *testing.T) {
	f := newFake(t, "eu-west-1")
	f.PutParameter("eu-west-1", "/a", awsfake.Parameter{Value: canary})
	f.PutParameter("eu-west-1", "/b", awsfake.Parameter{Value: canary})
	f.DeleteParameter("eu-west-1", "/b")
	rs := versionsOf(t, "aws:ssm:/a", "aws:ssm:/b")
	if rs[0].Version != "1" || !errors.Is(rs[1].Err, provider.ErrNotFound) {
		t.Errorf("deleted: %+v", rs)
	}
	f.FailOp("GetParameters", "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/app is not authorized to perform: ssm:GetParameters")
	for _, r := range versionsOf(t, "aws:ssm:/a", "aws:ssm:/c") {
		if !errors.Is(r.Err, provider.ErrDenied) || !strings.Contains(r.Err.Error(), "ssm:GetParameters") {
			t.Errorf("denied: %v", r.Err)
		}
	}
}

func TestVersionsUnderTheLimit(t *testing.T) {
	f := newFake(t, "eu-west-1")
	var refs []string
	for i := range 8 {
		name := fmt.Sprint("s", i)
		f.PutSecret("eu-west-1", name, awsfake.Secret{String: canary})
		refs = append(refs, "aws:secretsmanager:"+name)
	}
	f.SetLatency(20 * time.Millisecond) // so that calls overlap when allowed to
	ts, _ := targets(t, refs)
	for _, r := range openLimited(t, provider.SecretsManager, 2).(provider.Versioner).Versions(t.Context(), ts) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if n := f.MaxInFlight(); n > 2 {
		t.Errorf("%d DescribeSecret calls at once under --concurrency 2", n)
	}
}

// BenchmarkVersions checks n references against the fake with 50 ms of
// latency per call, as one refresh round would, at the default
// --concurrency of 16, and reports the API calls per round.
func BenchmarkVersions(b *testing.B) {
	for _, kind := range []provider.Kind{provider.SecretsManager, provider.SSM} {
		for _, n := range []int{10, 50} {
			b.Run(fmt.Sprintf("%s/refs=%d", kind, n), func(b *testing.B) {
				f := newFake(b, "us-east-1")
				f.SetLatency(50 * time.Millisecond)
				refs := make([]string, n)
				for i := range refs {
					name := fmt.Sprint("/bench/", i)
					if kind == provider.SSM {
						f.PutParameter("us-east-1", name, awsfake.Parameter{Value: "v", Secure: true})
						refs[i] = "aws:ssm:" + name
					} else {
						f.PutSecret("us-east-1", name, awsfake.Secret{String: "v"})
						refs[i] = "aws:secretsmanager:" + name
					}
				}
				ts, _ := targets(b, refs)
				p := openLimited(b, kind, 16).(provider.Versioner)
				for b.Loop() {
					for _, r := range p.Versions(b.Context(), ts) {
						if r.Err != nil {
							b.Fatal(r.Err)
						}
					}
				}
				b.ReportMetric(float64(len(f.Calls()))/float64(b.N), "calls/op")
			})
		}
	}
}
