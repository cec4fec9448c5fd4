package inject

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestValidateFlags(t *testing.T) {
	for _, ok := range [][]string{nil, {"--log-format=json"}, {"--timeout=2m", "--concurrency", "4"}, {"-p", "aws"}, {"--skip=A", "--skip=B", "--exec"}} {
		if err := ValidateFlags(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--nope"}, "not defined: -nope"},
		{[]string{"--timeout=soon"}, `invalid value "soon" for flag -timeout`},
		{[]string{"--concurrency=many"}, "-concurrency"},
		{[]string{"--exec", "sh"}, `"sh" is not a flag`},
		{[]string{"--help"}, "help"},
		{[]string{"--version"}, "--version"},
		{[]string{"--log-format=xml"}, "log-format"},
		{[]string{"--timeout=-1s"}, "--timeout must be positive"},
	} {
		err := ValidateFlags(bad.args)
		if err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%q: %v, want %q", bad.args, err, bad.msg)
		}
	}
}

// A JWE with the shape provider.Parse checks (its content is not decrypted
// by the webhook's /mutate).
const bareJWE = "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0.d3JhcHBlZA.aXZpdml2aXZpdml2.Y2lwaGVy.dGFndGFndGFndGFn"

func TestJWEReferences(t *testing.T) {
	in := &Injector{Image: "registry.example.com/secrets-init:1"}
	pod := func(env ...corev1.EnvVar) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1", Command: []string{"/app"}, Env: env}}}}
	}
	for _, c := range []struct {
		name   string
		detect bool
		env    []corev1.EnvVar
		want   bool
	}{
		{"jwe: prefix", false, []corev1.EnvVar{{Name: "A", Value: "jwe:" + bareJWE}}, true},
		{"bare, not detected", false, []corev1.EnvVar{{Name: "A", Value: bareJWE}}, false},
		{"bare, --jwe-detect", true, []corev1.EnvVar{{Name: "A", Value: bareJWE}}, true},
		{"bare, the container sets SECRETS_INIT_JWE_DETECT=1", false, []corev1.EnvVar{{Name: "SECRETS_INIT_JWE_DETECT", Value: "1"}, {Name: "A", Value: bareJWE}}, true},
		{"not a JWE, --jwe-detect", true, []corev1.EnvVar{{Name: "A", Value: "eyJhbGciOiJub25lIn0.e30."}}, false},
	} {
		in.DetectJWE = c.detect
		res, err := in.Mutate(context.Background(), pod(c.env...))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := len(res.Patch) > 0; got != c.want {
			t.Errorf("%s: mutated %v, want %v (skipped: %s)", c.name, got, c.want, res.Skipped)
		}
	}
	// A jwe: value of the wrong shape is refused, naming the variable.
	in.DetectJWE = false
	_, err := in.Mutate(context.Background(), pod(corev1.EnvVar{Name: "TOKEN", Value: "jwe:eyJhbGciOiJFQ0RILUVTIn0..x.y.z"}))
	if err == nil || !strings.Contains(err.Error(), "env TOKEN: malformed reference") {
		t.Errorf("malformed jwe: %v", err)
	}
}

// The vault-env write form is a reference: the pod is wrapped; a malformed
// one is refused naming the variable, without quoting the body.
func TestVaultWriteReferences(t *testing.T) {
	in := &Injector{Image: "registry.example.com/secrets-init:1"}
	pod := func(v string) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1", Command: []string{"/app"},
			Env: []corev1.EnvVar{{Name: "TLS_CERT", Value: v}}}}}}
	}
	const canary = "canary-web.example.com"
	res, err := in.Mutate(context.Background(), pod(`>>vault:pki/issue/web#certificate#{"common_name":"`+canary+`"}?file`))
	if err != nil || len(res.Patch) == 0 {
		t.Errorf("write form: mutated %v, %v (skipped: %s)", len(res.Patch) > 0, err, res.Skipped)
	}
	_, err = in.Mutate(context.Background(), pod(`>>vault:pki/issue/web#certificate#{"common_name":"`+canary+`"`))
	if err == nil || !strings.Contains(err.Error(), "env TLS_CERT: malformed reference") || strings.Contains(err.Error(), canary) {
		t.Errorf("malformed write: %v", err)
	}
}
