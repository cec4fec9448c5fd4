package vault_test

// `secrets-init policy --format vault` checked against a real Vault: the
// generated policy is loaded, a token that holds it (and Vault's default
// policy, which grants no secret) can read exactly the referenced paths
// (sys/capabilities-self), and secrets-init resolves the manifest's
// references with that token. (The grants of jwe: values encrypted to
// transit keys are checked in e2e/vaultengines, on Vault's own transit engine.)

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// policyEnv are the references of the manifest, with the values the
// fixture holds (a dynamic secret's are checked apart).
var policyEnv = map[string][2]string{
	"PASSWORD":  {"vault:kv/app#password", "two-" + canary},          // KV v2, without data/
	"PORT":      {"vault:kv/data/app#port", "5432"},                  // KV v2, with data/
	"OLD":       {"vault:kv/app#password#1", "one-" + canary},        // a version: the same path
	"TEAM":      {"vault:team/a/kv/svc#token", "team-" + canary},     // a nested KV v2 mount
	"USER":      {"vault:secret/app#user", "alice"},                  // KV v1
	"DB_USER":   {"vault:database/creds/app#username", ""},           // a dynamic secret
	"DB_PASS":   {"vault:database/creds/app#password", ""},           // the same lease
	"LOG_LEVEL": {"info", "info"},                                    // no reference
	"TLS_FILE":  {"secretfile:/nonexistent/never-read?optional", ""}, // a local file: no grant
}

// manifest writes a Deployment whose container has env.
func manifest(t *testing.T, env map[string][2]string) string {
	t.Helper()
	var names []string
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, namespace: default}\n" +
		"spec:\n  template:\n    spec:\n      serviceAccountName: app\n      containers:\n        - name: app\n          env:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "            - name: %s\n              value: %q\n", n, env[n][0])
	}
	p := filepath.Join(t.TempDir(), "deploy.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

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

// tokenWith makes a token whose only policies are Vault's default and
// the generated one.
func (s *server) tokenWith(t *testing.T, name, policy string) *api.Client {
	t.Helper()
	if err := s.root.Sys().PutPolicy(name, policy); err != nil {
		t.Fatalf("Vault refuses the generated policy: %v\n%s", err, policy)
	}
	tok, err := s.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	if p := tok.Auth.Policies; !slices.Equal(p, []string{"default", name}) {
		t.Fatalf("token policies %q", p)
	}
	c, err := s.root.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(tok.Auth.ClientToken)
	return c
}

// capabilities maps each path to the token's capabilities on it.
func capabilities(t *testing.T, c *api.Client, paths []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range paths {
		caps, err := c.Sys().CapabilitiesSelf(p)
		if err != nil {
			t.Fatalf("capabilities-self %s: %v", p, err)
		}
		slices.Sort(caps)
		out[p] = strings.Join(caps, ",")
	}
	return out
}

func TestPolicy(t *testing.T) {
	s := newServer(t)
	s.setup(t)
	env := policyEnv
	deploy := manifest(t, env)

	kv2 := []string{"--vault-kv2", "kv", "--vault-kv2", "team/a/kv"}
	policy := generate(t, append([]string{"-f", deploy, "--format", "vault", "--group-by", "none"}, kv2...)...)
	if again := generate(t, append([]string{"-f", deploy, "--format", "vault", "--group-by", "none"}, kv2...)...); again != policy {
		t.Errorf("two runs differ:\n%s\n%s", policy, again)
	}
	c := s.tokenWith(t, "generated", policy)

	granted := []string{"kv/data/app", "team/a/kv/data/svc", "secret/app", "database/creds/app"}
	neighbours := []string{
		"kv/data/private", "kv/data/app2", "kv/data/app/x", "kv/app", "kv/metadata/app", "kv/delete/app", "kv/destroy/app",
		"team/a/kv/data/other", "team/b/kv/data/svc", "secret/app2", "secret/other", "database/creds/admin", "database/roles/app",
		"sys/policies/acl/generated",
	}
	for p, got := range capabilities(t, c, granted) {
		if got != "read" {
			t.Errorf("%s: capabilities %q, want read", p, got)
		}
	}
	for p, got := range capabilities(t, c, neighbours) {
		if got != "deny" {
			t.Errorf("%s: capabilities %q, want deny", p, got)
		}
	}

	// secrets-init resolves every reference of the manifest with the token.
	vars := map[string]string{"VAULT_TOKEN": c.Token()}
	want := map[string]string{}
	for k, rv := range env {
		vars[k] = rv[0]
		if rv[1] != "" {
			want[k] = rv[1]
		}
	}
	r := s.run(t, vars)
	r.ok(t, want)
	if !strings.HasPrefix(r.env["DB_USER"], "user-") || !strings.HasPrefix(r.env["DB_PASS"], "pass-") ||
		strings.TrimPrefix(r.env["DB_USER"], "user-") != strings.Split(strings.TrimPrefix(r.env["DB_PASS"], "pass-"), "-")[0] {
		t.Errorf("dynamic secret: DB_USER=%q DB_PASS=%q, want one lease's pair", r.env["DB_USER"], "…")
	}
	if _, ok := r.env["TLS_FILE"]; ok {
		t.Errorf("TLS_FILE is set")
	}

	// A reference that is not in the manifest is refused with that token.
	s.run(t, map[string]string{"VAULT_TOKEN": c.Token(), "X": "vault:kv/private#key"}).failed(t, "X", "permission denied")

	// --refresh adds the KV v2 metadata paths (the version checks) and,
	// for the dynamic secret, the lease calls; nothing else.
	refreshPolicy := generate(t, append([]string{"-f", deploy, "--format", "vault", "--group-by", "none", "--refresh"}, kv2...)...)
	refreshed := s.tokenWith(t, "generated-refresh", refreshPolicy)
	got := capabilities(t, refreshed, append(append([]string{"kv/metadata/app", "team/a/kv/metadata/svc"}, granted...), "kv/metadata/private", "kv/data/private"))
	for p, caps := range got {
		want := "read"
		if strings.HasSuffix(p, "/private") {
			want = "deny"
		}
		if caps != want {
			t.Errorf("--refresh: %s: %q, want %q", p, caps, want)
		}
	}
	// The lease calls: renew and revoke with --refresh, nothing wider;
	// without it, renew only (Vault's default policy) and no revoke.
	leasePaths := []string{"sys/leases/renew", "sys/leases/revoke", "sys/leases/revoke-prefix/database/creds/app", "sys/leases/revoke-force/database", "sys/leases/lookup/database/creds/app/"}
	for p, caps := range capabilities(t, refreshed, leasePaths) {
		if want := map[string]string{"sys/leases/renew": "update", "sys/leases/revoke": "update"}[p]; caps != want && !(want == "" && caps == "deny") {
			t.Errorf("--refresh: %s: %q, want %q", p, caps, want)
		}
	}
	if caps := capabilities(t, c, []string{"sys/leases/renew", "sys/leases/revoke"}); caps["sys/leases/renew"] != "update" || caps["sys/leases/revoke"] != "deny" {
		t.Errorf("without --refresh: %v, want renew from the default policy only", caps)
	}
	// And they work: a token holding the generated policy alone (no
	// default policy) renews and revokes the lease of the dynamic secret
	// it reads.
	tok, err := s.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"generated-refresh"}, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	alone, _ := s.root.Clone()
	alone.SetToken(tok.Auth.ClientToken)
	creds, err := alone.Logical().Read("database/creds/app")
	if err != nil || creds == nil || creds.LeaseID == "" {
		t.Fatalf("reading the dynamic secret: %v", err)
	}
	// (This engine's leases are not renewable: Vault refuses the renewal
	// with a 400 once the ACL has let it through, never a 403.)
	var re *api.ResponseError
	if _, err := alone.Sys().Renew(creds.LeaseID, 60); errors.As(err, &re) && re.StatusCode == http.StatusForbidden || err != nil && re == nil {
		t.Errorf("renewing its lease with the generated policy: %v", err)
	}
	if err := alone.Sys().Revoke(creds.LeaseID); err != nil {
		t.Errorf("revoking its lease with the generated policy: %v", err)
	}

	// vault-terraform holds the same policy.
	tf := generate(t, append([]string{"-f", deploy, "--format", "vault-terraform"}, kv2...)...)
	for _, p := range granted {
		if !strings.Contains(tf, fmt.Sprintf("    path %q {\n      capabilities = [\"read\"]\n    }\n", p)) {
			t.Errorf("vault-terraform lacks %s:\n%s", p, tf)
		}
	}
}
