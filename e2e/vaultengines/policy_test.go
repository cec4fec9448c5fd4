package vaultengines_test

// `secrets-init policy --format vault` for jwe: values encrypted to transit
// keys, checked against Vault's own ACLs: the generated policy is loaded,
// a token that holds it (and Vault's default policy) may update exactly
// the decrypt paths of the keys the manifest's JWEs name
// (sys/capabilities-self), and secrets-init decrypts the manifest's values
// with that token.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// generate runs secrets-init policy.
func generate(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"policy"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("secrets-init policy %q: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// manifest writes a Deployment whose container has env (name → value).
func manifest(t *testing.T, env map[string]string) string {
	t.Helper()
	var names []string
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, namespace: default}\n" +
		"spec:\n  template:\n    spec:\n      containers:\n        - name: app\n          env:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "            - name: %s\n              value: %q\n", n, env[n])
	}
	p := filepath.Join(t.TempDir(), "deploy.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicy(t *testing.T) {
	s := newServer(t)
	// A second transit mount, nested, with a key named keys.
	s.write(t, "sys/mounts/team/a/transit", map[string]any{"type": "transit"})
	for _, k := range []string{"transit/keys/app", "transit/keys/other", "team/a/transit/keys/keys"} {
		s.write(t, k, map[string]any{"type": "rsa-2048"})
	}
	encrypt := func(key, plain string, extra ...string) string {
		ref, stderr, code := s.encrypt(t, key, plain, extra...)
		if code != 0 {
			t.Fatalf("encrypt --key %s: exit %d: %s", key, code, stderr)
		}
		return ref
	}
	app := encrypt("hcvault://transit/keys/app", `{"user":"app","password":"`+canary+`"}`, "--json")
	want := map[string]string{"USER": "app", "PASSWORD": canary, "TEAM": "team-" + canary, "LOG_LEVEL": "info"}
	env := map[string]string{
		"USER":      app + "#user",
		"PASSWORD":  app + "#password",
		"TEAM":      encrypt("hcvault://team/a/transit/keys/keys", "team-"+canary),
		"LOG_LEVEL": "info",
	}
	deploy := manifest(t, env)

	policy := generate(t, "-f", deploy, "--format", "vault", "--group-by", "none")
	tok := s.token(t, "generated", policy)
	c, err := s.root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(tok)
	caps := func(p string) string {
		got, err := c.Sys().CapabilitiesSelf(p)
		if err != nil {
			t.Fatalf("capabilities-self %s: %v", p, err)
		}
		slices.Sort(got)
		return strings.Join(got, ",")
	}
	for _, p := range []string{"transit/decrypt/app", "team/a/transit/decrypt/keys"} {
		if got := caps(p); got != "update" {
			t.Errorf("%s: capabilities %q, want update\n%s", p, got, policy)
		}
	}
	for _, p := range []string{
		"transit/decrypt/other", "transit/decrypt/app2", "transit/encrypt/app", "transit/keys/app", "transit/rewrap/app",
		"transit/export/encryption-key/app", "transit/keys/app/rotate", "transit/keys/app/config", "transit/decrypt/keys",
		"team/a/transit/decrypt/app", "team/a/transit/keys/keys", "team/b/transit/decrypt/keys", "sys/policies/acl/generated",
	} {
		if got := caps(p); got != "deny" {
			t.Errorf("%s: capabilities %q, want deny\n%s", p, got, policy)
		}
	}

	// secrets-init decrypts every value of the manifest with the token,
	// one transit call per JWE.
	vars := map[string]string{"VAULT_TOKEN": tok}
	for k, v := range env {
		vars[k] = v
	}
	s.requests()
	s.run(t, vars).ok(t, want)
	reqs := s.requests()
	if n, m := count(reqs, "PUT", "/v1/transit/decrypt/app"), count(reqs, "PUT", "/v1/team/a/transit/decrypt/keys"); n != 1 || m != 1 {
		t.Errorf("decrypt calls: %d on app, %d on team/a's keys, want 1 each: %v", n, m, reqs)
	}
	// A JWE to a key the manifest does not name is refused with that token.
	s.run(t, map[string]string{"VAULT_TOKEN": tok, "X": encrypt("hcvault://transit/keys/other", canary)}).
		failed(t, "X", "hcvault://transit/keys/other/versions/1", "permission denied", "transit/decrypt/other")

	// vault-terraform holds the same grants.
	tf := generate(t, "-f", deploy, "--format", "vault-terraform")
	for _, p := range []string{"transit/decrypt/app", "team/a/transit/decrypt/keys"} {
		if !strings.Contains(tf, fmt.Sprintf("    path %q {\n      capabilities = [\"update\"]\n    }\n", p)) {
			t.Errorf("vault-terraform lacks %s:\n%s", p, tf)
		}
	}
}
