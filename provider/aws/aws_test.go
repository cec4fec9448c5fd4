package aws

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
)

// canary is part of every stored value that an error test could leak.
const canary = "CANARY-7f3a9c"

// newFake starts a fake and points the SDK's environment at it, and only
// at it: every ambient AWS_* variable is unset first. region is
// AWS_REGION (empty: unset).
func newFake(tb testing.TB, region string) *awsfake.Server {
	tb.Helper()
	f := awsfake.New()
	tb.Cleanup(f.Close)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			tb.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range f.Env() {
		tb.Setenv(k, v)
	}
	if region != "" {
		tb.Setenv("AWS_REGION", region)
	}
	return f
}

// targets parses references into distinct targets, as the engine does,
// and returns them with the index of each reference's target.
func targets(tb testing.TB, refs []string) ([]provider.Target, []int) {
	tb.Helper()
	var ts []provider.Target
	at := map[provider.Target]int{}
	idx := make([]int, len(refs))
	for i, s := range refs {
		ref, ok, err := provider.Parse(s)
		if !ok || err != nil {
			tb.Fatalf("Parse(%q) = %v, %v", s, ok, err)
		}
		if _, seen := at[ref.Target]; !seen {
			at[ref.Target] = len(ts)
			ts = append(ts, ref.Target)
		}
		idx[i] = at[ref.Target]
	}
	return ts, idx
}

// open opens the store of kind on the current environment, with the
// default --concurrency of 16.
func open(tb testing.TB, kind provider.Kind) provider.Store {
	return openLimited(tb, kind, 16)
}

func openLimited(tb testing.TB, kind provider.Kind, concurrency int) provider.Store {
	tb.Helper()
	e, err := loadEnv(context.Background(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	s := provider.Settings{Limit: provider.NewLimiter(concurrency)}
	if kind == provider.SSM {
		return newSSM(e, s)
	}
	return newSecretsManager(e, s)
}

// resolveCtx fetches references (all of one store) in one Fetch and
// returns one result per reference.
func resolveCtx(t *testing.T, ctx context.Context, refs ...string) []provider.Result {
	t.Helper()
	ts, idx := targets(t, refs)
	res := open(t, ts[0].Kind).Fetch(ctx, ts)
	if len(res) != len(ts) {
		t.Fatalf("Fetch returned %d results for %d targets", len(res), len(ts))
	}
	out := make([]provider.Result, len(refs))
	for i := range refs {
		out[i] = res[idx[i]]
		if r := out[i]; (r.Value == nil) == (r.Err == nil) {
			t.Fatalf("%s: want a value or an error, got value %v, error %v", refs[i], r.Value != nil, r.Err)
		}
		if r := out[i]; r.Err != nil && strings.Contains(r.Err.Error(), canary) {
			t.Errorf("%s: error holds a value: %v", refs[i], r.Err)
		}
	}
	return out
}

func resolve(t *testing.T, refs ...string) []provider.Result {
	t.Helper()
	return resolveCtx(t, context.Background(), refs...)
}

// regions returns the distinct signing regions of the fake's calls.
func regions(f *awsfake.Server) []string {
	var rs []string
	for _, c := range f.Calls() {
		if !slices.Contains(rs, c.Region) {
			rs = append(rs, c.Region)
		}
	}
	slices.Sort(rs)
	return rs
}

type want struct {
	value, version string
	binary         bool
}

func check(t *testing.T, f *awsfake.Server, refs []string, wants []want) {
	t.Helper()
	for i, r := range resolve(t, refs...) {
		w := wants[i]
		if r.Err != nil || string(r.Value) != w.value || r.Binary != w.binary || r.Version != w.version {
			t.Errorf("%s: got %q (binary %v, version %q, err %v), want %q (binary %v, version %q)",
				refs[i], r.Value, r.Binary, r.Version, r.Err, w.value, w.binary, w.version)
		}
	}
	if n := f.BadSignatures(); n != 0 {
		t.Errorf("%d requests had a bad signature", n)
	}
}

func TestSecretsManagerReferenceForms(t *testing.T) {
	f := newFake(t, "us-east-1")
	const us = "us-east-1"
	f.PutSecret(us, "db", awsfake.Secret{String: "old", VersionID: "id-old", Stages: []string{"AWSPREVIOUS"}})
	f.PutSecret(us, "db", awsfake.Secret{String: "blue", VersionID: "id-blue", Stages: []string{"blue"}})
	arn := f.PutSecret(us, "db", awsfake.Secret{String: `{"password":"cur"}`, VersionID: "id-cur"})
	f.PutSecret(us, "app/api-key_1+=.@", awsfake.Secret{String: "api", VersionID: "id-api"})
	f.PutSecret(us, "empty", awsfake.Secret{VersionID: "id-empty"})
	f.PutSecret(us, "keystore", awsfake.Secret{Binary: []byte{0, 1, 2, 0xff}, VersionID: "id-bin"})
	cn := f.PutSecret("cn-north-1", "db", awsfake.Secret{String: "cn", VersionID: "id-cn"})
	gov := f.PutSecret("us-gov-west-1", "db", awsfake.Secret{String: "gov", VersionID: "id-gov"})
	iso := f.PutSecret("us-iso-east-1", "db", awsfake.Secret{String: "iso", VersionID: "id-iso"})

	cur := want{`{"password":"cur"}`, "id-cur", false}
	old := want{"old", "id-old", false}
	cases := []struct {
		ref string
		want
	}{
		{arn, cur},
		{arn + ":password", cur},
		{arn + "::AWSCURRENT", cur},
		{arn + "::AWSPREVIOUS:", old},
		{arn + ":password::id-old", old},
		{arn + "::blue", want{"blue", "id-blue", false}},
		{strings.TrimSuffix(arn, arn[len(arn)-7:]), cur}, // a partial ARN
		{"aws:secretsmanager:db", cur},
		{"aws:secretsmanager:db:password", cur},
		{"aws:secretsmanager:db::AWSPREVIOUS", old},
		{"aws:secretsmanager:db:::id-cur", cur},
		{"aws:secretsmanager:app/api-key_1+=.@", want{"api", "id-api", false}},
		{"aws:secretsmanager:empty?optional", want{"", "id-empty", false}},
		{"aws:secretsmanager:keystore?file", want{"\x00\x01\x02\xff", "id-bin", true}},
		{cn, want{"cn", "id-cn", false}},
		{gov + "::AWSCURRENT:", want{"gov", "id-gov", false}},
		{iso, want{"iso", "id-iso", false}},
	}
	var refs []string
	var wants []want
	for _, c := range cases {
		refs, wants = append(refs, c.ref), append(wants, c.want)
	}
	check(t, f, refs, wants)
	if got, want := regions(f), []string{"cn-north-1", "us-east-1", "us-gov-west-1", "us-iso-east-1"}; !slices.Equal(got, want) {
		t.Errorf("signing regions %v, want %v", got, want)
	}
}

func TestSSMReferenceForms(t *testing.T) {
	f := newFake(t, "us-east-1")
	const us = "us-east-1"
	f.PutParameter(us, "/app/db", awsfake.Parameter{Value: "one", Labels: []string{"old"}})
	f.PutParameter(us, "/app/db", awsfake.Parameter{Value: `{"user":"u"}`, Secure: true, Labels: []string{"prod"}})
	f.PutParameter(us, "plain", awsfake.Parameter{Value: "plain-value"})
	f.PutParameter(us, "/app/empty", awsfake.Parameter{})
	f.PutParameter("cn-northwest-1", "/app/db", awsfake.Parameter{Value: "cn"})
	f.PutParameter("us-gov-east-1", "/app/db", awsfake.Parameter{Value: "gov", Secure: true})
	arn := awsfake.ParameterARN(us, "/app/db")

	one := want{"one", "1", false}
	two := want{`{"user":"u"}`, "2", false}
	cases := []struct {
		ref string
		want
	}{
		{"aws:ssm:/app/db", two},
		{"aws:ssm:/app/db#user", two},
		{"aws:ssm:/app/db:1", one},
		{"aws:ssm:/app/db:old", one},
		{"aws:ssm:/app/db:prod?trim", two},
		{"aws:ssm:plain", want{"plain-value", "1", false}},
		{"aws:ssm:/app/empty", want{"", "1", false}},
		{arn, two},
		{arn + ":1", one},
		{arn + ":old#user", one},
		{awsfake.ParameterARN(us, "plain"), want{"plain-value", "1", false}},
		{awsfake.ParameterARN("cn-northwest-1", "/app/db"), want{"cn", "1", false}},
		{awsfake.ParameterARN("us-gov-east-1", "/app/db") + ":1", want{"gov", "1", false}},
	}
	var refs []string
	var wants []want
	for _, c := range cases {
		refs, wants = append(refs, c.ref), append(wants, c.want)
	}
	check(t, f, refs, wants)
	if got, want := regions(f), []string{"cn-northwest-1", "us-east-1", "us-gov-east-1"}; !slices.Equal(got, want) {
		t.Errorf("signing regions %v, want %v", got, want)
	}
	if n := f.Count("GetParameter"); n != 0 {
		t.Errorf("%d GetParameter calls, want only GetParameters", n)
	}
}

// An ARN's region decides where a call goes and how it is signed,
// whatever AWS_REGION says.
func TestRegionRule(t *testing.T) {
	f := newFake(t, "us-east-1")
	eu := f.PutSecret("eu-west-1", "db", awsfake.Secret{String: "from-eu"})
	f.PutSecret("us-east-1", "db", awsfake.Secret{String: "from-us"})
	f.PutParameter("eu-west-1", "/db", awsfake.Parameter{Value: "param-eu"})
	f.PutParameter("us-east-1", "/db", awsfake.Parameter{Value: "param-us"})

	sm := resolve(t, eu, "aws:secretsmanager:db")
	ssm := resolve(t, awsfake.ParameterARN("eu-west-1", "/db"), "aws:ssm:/db")
	for i, got := range []provider.Result{sm[0], sm[1], ssm[0], ssm[1]} {
		if want := []string{"from-eu", "from-us", "param-eu", "param-us"}[i]; string(got.Value) != want {
			t.Errorf("result %d: %q (%v), want %q", i, got.Value, got.Err, want)
		}
	}
	// Two stores times two regions: four calls, each signed for its own.
	calls := f.Calls()
	for _, c := range calls {
		t.Logf("%s signed for %s", c.Op, c.Region)
	}
	if len(calls) != 4 || !slices.Equal(regions(f), []string{"eu-west-1", "us-east-1"}) {
		t.Errorf("calls %v, want one per store and region", calls)
	}
}

func TestShortFormWithoutRegion(t *testing.T) {
	f := newFake(t, "")
	arn := f.PutSecret("eu-west-1", "db", awsfake.Secret{String: "v"})
	res := resolve(t, "aws:secretsmanager:db", arn)
	if !errors.Is(res[0].Err, errNoRegion) {
		t.Errorf("short form without a region: %v, want %v", res[0].Err, errNoRegion)
	}
	if string(res[1].Value) != "v" {
		t.Errorf("ARN without AWS_REGION: %q, %v", res[1].Value, res[1].Err)
	}
}

func TestSecretsManagerBatches(t *testing.T) {
	f := newFake(t, "us-east-1")
	var refs []string
	for i := range 45 {
		refs = append(refs, "aws:secretsmanager:s"+fmt.Sprint(i))
		f.PutSecret("us-east-1", "s"+fmt.Sprint(i), awsfake.Secret{String: fmt.Sprint("value-", i)})
	}
	for i, r := range resolve(t, refs...) {
		if want := fmt.Sprint("value-", i); string(r.Value) != want {
			t.Errorf("%s: %q, %v", refs[i], r.Value, r.Err)
		}
	}
	if n, b := len(f.Calls()), f.Count("BatchGetSecretValue"); n > 3 || b != n {
		t.Errorf("%d calls (%d BatchGetSecretValue) for 45 secrets, want at most 3 batches", n, b)
	}
}

func TestSSMBatches(t *testing.T) {
	f := newFake(t, "us-east-1")
	var refs []string
	for i := range 25 {
		name := fmt.Sprint("/p/", i)
		f.PutParameter("us-east-1", name, awsfake.Parameter{Value: "old"})
		f.PutParameter("us-east-1", name, awsfake.Parameter{Value: fmt.Sprint("value-", i), Secure: i%2 == 0})
		refs = append(refs, "aws:ssm:"+name)
	}
	for i, r := range resolve(t, refs...) {
		if want := fmt.Sprint("value-", i); string(r.Value) != want || r.Version != "2" {
			t.Errorf("%s: %q version %q, %v", refs[i], r.Value, r.Version, r.Err)
		}
	}
	if n, b := len(f.Calls()), f.Count("GetParameters"); n > 3 || b != n {
		t.Errorf("%d calls (%d GetParameters) for 25 parameters, want at most 3 batches", n, b)
	}
}

// Calls run concurrently, within --concurrency.
func TestConcurrencyBound(t *testing.T) {
	for _, concurrency := range []int{1, 2, 16} {
		f := newFake(t, "us-east-1")
		f.SetLatency(50 * time.Millisecond)
		var refs []string
		for i := range 100 {
			refs = append(refs, fmt.Sprint("aws:secretsmanager:s", i))
			f.PutSecret("us-east-1", fmt.Sprint("s", i), awsfake.Secret{String: "v"})
		}
		ts, _ := targets(t, refs)
		for _, r := range openLimited(t, provider.SecretsManager, concurrency).Fetch(context.Background(), ts) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		// 100 secrets make 5 batches.
		if got, want := f.MaxInFlight(), min(concurrency, 5); got != want {
			t.Errorf("concurrency %d: %d calls at once, want %d", concurrency, got, want)
		}
	}
}

// A secret that needs a version stage or id is read on its own, next to
// the batch of current versions.
func TestSecretsManagerVersionsBesideBatch(t *testing.T) {
	f := newFake(t, "us-east-1")
	f.PutSecret("us-east-1", "a", awsfake.Secret{String: "a-old", Stages: []string{"AWSPREVIOUS"}})
	f.PutSecret("us-east-1", "a", awsfake.Secret{String: "a-cur"})
	f.PutSecret("us-east-1", "b", awsfake.Secret{String: "b-cur"})
	res := resolve(t, "aws:secretsmanager:a", "aws:secretsmanager:b", "aws:secretsmanager:a::AWSPREVIOUS")
	for i, want := range []string{"a-cur", "b-cur", "a-old"} {
		if string(res[i].Value) != want {
			t.Errorf("result %d: %q, %v; want %q", i, res[i].Value, res[i].Err, want)
		}
	}
	if b, g := f.Count("BatchGetSecretValue"), f.Count("GetSecretValue"); b != 1 || g != 1 {
		t.Errorf("%d batch and %d single calls, want 1 and 1", b, g)
	}
}

func TestSecretsManagerPerTargetErrors(t *testing.T) {
	f := newFake(t, "eu-west-1")
	f.PutSecret("eu-west-1", "ok", awsfake.Secret{String: canary})
	for _, name := range []string{"denied", "kms", "kms-denied", "deleted"} {
		f.PutSecret("eu-west-1", name, awsfake.Secret{String: canary})
	}
	f.FailName("denied", "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/app/x is not authorized to perform: secretsmanager:GetSecretValue")
	f.FailName("kms", "DecryptionFailure", "Secrets Manager can't decrypt the protected secret text using the provided KMS key.")
	f.FailName("kms-denied", "AccessDeniedException", "Access to KMS is not allowed")
	f.FailName("deleted", "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.")

	res := resolve(t, "aws:secretsmanager:ok", "aws:secretsmanager:missing", "aws:secretsmanager:denied",
		"aws:secretsmanager:kms", "aws:secretsmanager:kms-denied", "aws:secretsmanager:deleted")
	if string(res[0].Value) != canary {
		t.Errorf("ok: %q, %v", res[0].Value, res[0].Err)
	}
	checkErrors(t, res[1:], []string{
		"not found in eu-west-1",
		"access denied: the role needs secretsmanager:GetSecretValue on it",
		"cannot decrypt it: the role needs kms:Decrypt on its KMS key (DecryptionFailure: Secrets Manager can't decrypt the protected secret text using the provided KMS key.)",
		"access denied by KMS: the role needs kms:Decrypt on the key that encrypts it",
		"InvalidRequestException in eu-west-1: You can't perform this operation on the secret because it was marked for deletion.",
	})
	if !errors.Is(res[1].Err, provider.ErrNotFound) {
		t.Errorf("missing: %v does not wrap ErrNotFound", res[1].Err)
	}
	if errors.Is(res[2].Err, provider.ErrNotFound) {
		t.Errorf("denied: %v wraps ErrNotFound", res[2].Err)
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("%d calls, want 1 batch", n)
	}
	// The same errors from GetSecretValue.
	res = resolve(t, "aws:secretsmanager:missing::AWSCURRENT:", "aws:secretsmanager:ok::NOSUCHSTAGE", "aws:secretsmanager:denied::AWSPREVIOUS")
	checkErrors(t, res, []string{"not found in eu-west-1", "not found in eu-west-1",
		"access denied: the role needs secretsmanager:GetSecretValue on it"})
}

func checkErrors(t *testing.T, res []provider.Result, wants []string) {
	t.Helper()
	for i, want := range wants {
		if res[i].Err == nil || res[i].Err.Error() != want {
			t.Errorf("result %d: error %v, want %q", i, res[i].Err, want)
		}
	}
}

// Roles made for doitintl/secrets-init may grant GetSecretValue only, and
// some emulators serve only GetSecretValue: both fall back to it.
func TestSecretsManagerBatchDenied(t *testing.T) {
	for _, code := range []string{"AccessDeniedException", "UnknownOperationException"} {
		f := newFake(t, "us-east-1")
		f.FailOp("BatchGetSecretValue", code, "no secretsmanager:BatchGetSecretValue")
		var refs []string
		for i := range 3 {
			refs = append(refs, fmt.Sprint("aws:secretsmanager:s", i))
			f.PutSecret("us-east-1", fmt.Sprint("s", i), awsfake.Secret{String: fmt.Sprint("v", i)})
		}
		for i, r := range resolve(t, refs...) {
			if want := fmt.Sprint("v", i); string(r.Value) != want {
				t.Errorf("%s: %s: %q, %v", code, refs[i], r.Value, r.Err)
			}
		}
		if b, g := f.Count("BatchGetSecretValue"), f.Count("GetSecretValue"); b != 1 || g != 3 {
			t.Errorf("%s: %d batch and %d single calls, want 1 and 3", code, b, g)
		}
	}
}

func TestSSMPerTargetErrors(t *testing.T) {
	f := newFake(t, "us-east-1")
	for _, name := range []string{"/ok", "/denied", "/kms", "/other-ok"} {
		f.PutParameter("us-east-1", name, awsfake.Parameter{Value: canary + name, Secure: true})
	}
	res := resolve(t, "aws:ssm:/ok", "aws:ssm:/missing", "aws:ssm:/ok:7", "aws:ssm:/ok:nolabel")
	if string(res[0].Value) != canary+"/ok" {
		t.Errorf("/ok: %q, %v", res[0].Value, res[0].Err)
	}
	checkErrors(t, res[1:], []string{"not found in us-east-1", "not found in us-east-1", "not found in us-east-1"})
	for _, r := range res[1:] {
		if !errors.Is(r.Err, provider.ErrNotFound) {
			t.Errorf("%v does not wrap ErrNotFound", r.Err)
		}
	}
	if n := len(f.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}

	// A denied parameter denies its whole GetParameters call: each one is
	// then read on its own, so that the others still resolve.
	f.FailName("/denied", "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/app/x is not authorized to perform: ssm:GetParameters on resource: arn:aws:ssm:us-east-1:123456789012:parameter/denied")
	f.FailName("/kms", "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/app/x is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:123456789012:key/k")
	res = resolve(t, "aws:ssm:/ok", "aws:ssm:/denied", "aws:ssm:/kms", "aws:ssm:/other-ok")
	if string(res[0].Value) != canary+"/ok" || string(res[3].Value) != canary+"/other-ok" {
		t.Errorf("allowed parameters: %q (%v), %q (%v)", res[0].Value, res[0].Err, res[3].Value, res[3].Err)
	}
	checkErrors(t, res[1:3], []string{
		"access denied: the role needs ssm:GetParameters and ssm:GetParameter on it",
		"access denied by KMS: the role needs kms:Decrypt on the key that encrypts it",
	})
	if n := f.Count("GetParameter"); n != 4 {
		t.Errorf("%d GetParameter calls after a denied batch, want 4", n)
	}
}

func TestCredentialErrors(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		f := newFake(t, "us-east-1")
		os.Unsetenv("AWS_ACCESS_KEY_ID")
		os.Unsetenv("AWS_SECRET_ACCESS_KEY")
		for _, r := range resolve(t, "aws:secretsmanager:a", "aws:secretsmanager:b") {
			if r.Err == nil || !strings.HasPrefix(r.Err.Error(), "no AWS credentials (tried: env AWS_ACCESS_KEY_ID, shared config/credentials profile, web identity (IRSA), EKS Pod Identity, ECS task role, EC2 IMDS; IMDS said: access disabled") {
				t.Errorf("error %v", r.Err)
			}
		}
		if n := len(f.Calls()); n != 0 {
			t.Errorf("%d calls without credentials", n)
		}
	})
	t.Run("expired", func(t *testing.T) {
		f := newFake(t, "us-east-1")
		t.Setenv("AWS_SESSION_TOKEN", "session-token")
		f.PutSecret("us-east-1", "a", awsfake.Secret{String: canary})
		f.PutParameter("us-east-1", "/a", awsfake.Parameter{Value: canary})
		f.FailOp("", "ExpiredTokenException", "The security token included in the request is expired")
		want := "the AWS credentials have expired: renew the session (e.g. aws sso login, or the role's token)"
		checkErrors(t, resolve(t, "aws:secretsmanager:a"), []string{want})
		checkErrors(t, resolve(t, "aws:ssm:/a"), []string{want})
	})
	t.Run("wrong secret key", func(t *testing.T) {
		f := newFake(t, "us-east-1")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-fake's")
		f.PutSecret("us-east-1", "a", awsfake.Secret{String: canary})
		checkErrors(t, resolve(t, "aws:secretsmanager:a"), []string{"AWS rejected the request signature: check AWS_SECRET_ACCESS_KEY"})
		if f.BadSignatures() == 0 {
			t.Error("the fake accepted a bad signature")
		}
	})
}

// Throttled calls are retried beyond the SDK's default of 3 attempts, and
// beyond the application's AWS_MAX_ATTEMPTS.
func TestThrottled(t *testing.T) {
	f := newFake(t, "us-east-1")
	t.Setenv("AWS_MAX_ATTEMPTS", "2")
	f.PutSecret("us-east-1", "a", awsfake.Secret{String: "v"})
	f.Throttle(4)
	if r := resolve(t, "aws:secretsmanager:a"); string(r[0].Value) != "v" {
		t.Fatalf("after 4 throttled attempts: %q, %v", r[0].Value, r[0].Err)
	}
	if n := f.Count("GetSecretValue"); n != 5 {
		t.Errorf("%d calls, want 4 throttled and 1 answered", n)
	}

	var refs []string
	for i := range 25 {
		refs = append(refs, fmt.Sprint("aws:ssm:/p", i))
		f.PutParameter("us-east-1", fmt.Sprint("/p", i), awsfake.Parameter{Value: "p"})
	}
	f.Throttle(2)
	for i, r := range resolve(t, refs...) {
		if string(r.Value) != "p" {
			t.Errorf("%s: %q, %v", refs[i], r.Value, r.Err)
		}
	}
	if n := f.Count("GetParameters"); n != 5 {
		t.Errorf("%d GetParameters calls, want 3 batches and 2 retries", n)
	}
}

// A server that accepts requests and never answers fails at the deadline.
func TestHangFailsAtDeadline(t *testing.T) {
	f := newFake(t, "us-east-1")
	f.Hang()
	for _, ref := range []string{"aws:secretsmanager:a", "aws:ssm:/a"} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		r := resolveCtx(t, ctx, ref)
		cancel()
		if !errors.Is(r[0].Err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want the deadline", ref, r[0].Err)
		}
	}
}

// An answer that cannot be decoded is an error that quotes none of it.
func TestGarbledAnswer(t *testing.T) {
	f := newFake(t, "us-east-1")
	f.PutSecret("us-east-1", "a", awsfake.Secret{String: strings.Repeat(canary, 20)})
	f.PutParameter("us-east-1", "/a", awsfake.Parameter{Value: strings.Repeat(canary, 20)})
	f.Garble()
	for _, ref := range []string{"aws:secretsmanager:a", "aws:ssm:/a"} {
		r := resolve(t, ref) // resolve checks that no error holds the canary
		if r[0].Err == nil {
			t.Errorf("%s: no error for a garbled answer", ref)
		}
		t.Logf("%s: %v", ref, r[0].Err)
	}
}

// Open reads the real environment, where the service-specific endpoint
// variables win over AWS_ENDPOINT_URL. (The only test that calls Open:
// the configuration is loaded once per process.)
func TestOpenUsesEndpointVariables(t *testing.T) {
	global := newFake(t, "eu-central-1")
	sm, ssm := awsfake.New(), awsfake.New()
	defer sm.Close()
	defer ssm.Close()
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", sm.URL)
	t.Setenv("AWS_ENDPOINT_URL_SSM", ssm.URL)
	for _, f := range []*awsfake.Server{global, sm, ssm} {
		f.PutSecret("eu-central-1", "a", awsfake.Secret{String: fmt.Sprint("secret at ", f.URL)})
		f.PutParameter("eu-central-1", "/a", awsfake.Parameter{Value: fmt.Sprint("parameter at ", f.URL)})
	}
	s := provider.Settings{Limit: provider.NewLimiter(4)}
	for _, c := range []struct {
		open provider.Opener
		ref  string
		want string
	}{
		{OpenSecretsManager, "aws:secretsmanager:a", "secret at " + sm.URL},
		{OpenSSM, "aws:ssm:/a", "parameter at " + ssm.URL},
	} {
		p, err := c.open(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		ts, _ := targets(t, []string{c.ref})
		if r := p.Fetch(context.Background(), ts); string(r[0].Value) != c.want {
			t.Errorf("%s: %q, %v; want %q", c.ref, r[0].Value, r[0].Err, c.want)
		}
	}
	if n := len(global.Calls()); n != 0 {
		t.Errorf("%d calls went to AWS_ENDPOINT_URL", n)
	}
}

// resolveEnv runs the engine over environ with both AWS stores, opened on
// the current environment.
func resolveEnv(t *testing.T, timeout time.Duration, environ ...string) (*provider.Resolution, error) {
	t.Helper()
	e, err := loadEnv(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := provider.Config{
		Stores: map[provider.Kind]provider.Opener{
			provider.SecretsManager: func(_ context.Context, s provider.Settings) (provider.Store, error) {
				return newSecretsManager(e, s), nil
			},
			provider.SSM: func(_ context.Context, s provider.Settings) (provider.Store, error) {
				return newSSM(e, s), nil
			},
		},
		Timeout:     timeout,
		Concurrency: 16,
		DryRun:      true,
	}
	return provider.Resolve(context.Background(), cfg, environ)
}

// Through the engine: duplicate references are fetched once, JSON keys
// select, ?optional leaves a missing secret unset.
func TestThroughEngine(t *testing.T) {
	f := newFake(t, "us-east-1")
	arn := f.PutSecret("us-east-1", "db", awsfake.Secret{String: `{"user":"app","password":"` + canary + `"}`})
	f.PutParameter("us-east-1", "/cfg", awsfake.Parameter{Value: `{"port":5432}`})
	res, err := resolveEnv(t, 0,
		"USER="+arn+":user", "PASSWORD="+arn+":password", "ALSO_USER="+arn+":user", "DB=aws:secretsmanager:db",
		"PORT=aws:ssm:/cfg#port", "CFG=aws:ssm:/cfg", "GONE=aws:secretsmanager:gone?optional")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(res.Env, "\n")
	want := strings.Join([]string{"USER=app", "PASSWORD=" + canary, "ALSO_USER=app", `DB={"user":"app","password":"` + canary + `"}`,
		"PORT=5432", `CFG={"port":5432}`}, "\n")
	if got != want {
		t.Errorf("environment:\n%s\nwant:\n%s", got, want)
	}
	// One batch for the two distinct secrets, one GetParameters.
	if b, p, n := f.Count("BatchGetSecretValue"), f.Count("GetParameters"), len(f.Calls()); b != 1 || p != 1 || n != 2 {
		t.Errorf("calls %v, want one BatchGetSecretValue and one GetParameters", f.Calls())
	}
}

// The engine's --timeout ends a hung call, with its own message.
func TestThroughEngineTimeout(t *testing.T) {
	f := newFake(t, "us-east-1")
	f.Hang()
	_, err := resolveEnv(t, 300*time.Millisecond, "A=aws:secretsmanager:a", "B=aws:ssm:/b")
	want := "A: aws:secretsmanager:a: deadline of 300ms exceeded (--timeout)\nB: aws:ssm:/b: deadline of 300ms exceeded (--timeout)"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}
