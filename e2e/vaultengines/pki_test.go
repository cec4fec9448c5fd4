package vaultengines_test

// The Vault write form >>vault:PATH#KEY#JSON_BODY on Vault's own PKI
// secrets engine (builtin/logical/pki of v1.19.5), mounted for real at
// pki/ in the in-memory core: tokens, policies, the router and the HTTP
// layer are Vault's.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// issuePath is the write path of the role web, as the proxy records it.
const issuePath = "/v1/pki/issue/web"

// setupCA mounts pki/, makes a root CA and the role web (any name under
// example.com, for at most roleMax, an EC P-256 key), and returns the
// CA's certificate and a token that may issue from any role of pki/ (and
// holds Vault's default policy).
func (s *server) setupCA(t *testing.T, roleMax string) (*x509.Certificate, string) {
	t.Helper()
	if err := s.root.Sys().Mount("pki", &api.MountInput{Type: "pki", Config: api.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
		t.Fatal(err)
	}
	root := s.write(t, "pki/root/generate/internal", map[string]any{"common_name": "E2E Root CA", "ttl": "87600h", "key_type": "ec", "key_bits": 256})
	s.write(t, "pki/roles/web", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": roleMax, "key_type": "ec", "key_bits": 256})
	tok := s.token(t, "pki-issue", `path "pki/issue/*" { capabilities = ["update"] }`)
	s.requests()
	return parseCert(t, fmt.Sprint(root.Data["certificate"])), tok
}

func parseCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		t.Fatalf("not a PEM certificate (%d bytes)", len(s))
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// shResult is one run of secrets-init [flags] -- sh -c SCRIPT.
type shResult struct {
	stdout, stderr string
	code           int
}

// runSh runs secrets-init [flags] -- sh -c script with an environment
// built from scratch: PATH, HOME, VAULT_ADDR (the proxy), VAULT_TOKEN tok
// and vars.
func (s *server) runSh(t *testing.T, tok string, vars map[string]string, script string, flags ...string) shResult {
	t.Helper()
	env := map[string]string{"VAULT_TOKEN": tok}
	for k, v := range vars {
		env[k] = v
	}
	out, stderr, code := s.secretsInit(t, env, "", append(flags, "--", "sh", "-c", script)...)
	return shResult{out, stderr, code}
}

// TestIssueOneCertificate: TLS_CERT and TLS_KEY (as files) and TLS_CA
// select from one write: one certificate is issued, the key is the
// certificate's, the CA signed it, and the start-up warning names when it
// expires. No PEM reaches stderr.
func TestIssueOneCertificate(t *testing.T) {
	s := newServer(t)
	ca, tok := s.setupCA(t, "2h")
	body := `{"common_name":"web.example.com","ttl":"1h"}`
	r := s.runSh(t, tok, map[string]string{
		"TLS_CERT": `>>vault:pki/issue/web#certificate#` + body + `?file`,
		"TLS_KEY":  `>>vault:pki/issue/web#private_key#{ "ttl": "1h", "common_name": "web.example.com" }?file`,
		"TLS_CA":   `>>vault:pki/issue/web#issuing_ca#` + body,
	}, `printf '%s\n' "$TLS_CERT" "$TLS_KEY"; cat "$TLS_CERT"; echo =====; cat "$TLS_KEY"; echo =====; printf '%s' "$TLS_CA"`)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if n := count(s.requests(), "PUT", issuePath); n != 1 {
		t.Fatalf("%d issue calls, want exactly 1", n)
	}
	lines := strings.SplitN(r.stdout, "\n", 3)
	for _, p := range lines[:2] {
		if !filepath.IsAbs(p) || strings.Contains(p, "BEGIN") {
			t.Fatalf("?file: the variable holds %q, want a path", p)
		}
	}
	parts := strings.Split(lines[2], "=====\n")
	if len(parts) != 3 {
		t.Fatalf("child output has %d parts", len(parts))
	}
	certPEM, keyPEM, caPEM := parts[0], parts[1], parts[2]
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatalf("the key does not match the certificate: %v", err)
	}
	cert := parseCert(t, certPEM)
	if cert.Subject.CommonName != "web.example.com" || len(pair.Certificate) == 0 {
		t.Errorf("certificate for %q", cert.Subject.CommonName)
	}
	if got := parseCert(t, caPEM); !got.Equal(ca) {
		t.Error("TLS_CA is not the CA's certificate")
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		t.Errorf("the CA did not sign the certificate: %v", err)
	}
	if strings.Contains(r.stderr, "BEGIN") || strings.Contains(r.stderr, "PRIVATE") {
		t.Errorf("stderr holds PEM:\n%s", r.stderr)
	}
	// Refresh is off: one warning per variable names when it stops.
	exp := cert.NotAfter.UTC()
	for _, name := range []string{"TLS_CERT", "TLS_KEY", "TLS_CA"} {
		found := false
		for _, l := range strings.Split(r.stderr, "\n") {
			if strings.Contains(l, "variable="+name) && strings.Contains(l, "expires="+exp.Add(-time.Second).Format("2006-01-02T15:04")) || strings.Contains(l, "variable="+name) && strings.Contains(l, "expires="+exp.Format("2006-01-02T15:04")) {
				found = true
			}
		}
		if !found {
			t.Errorf("no start-up warning for %s naming %s:\n%s", name, exp.Format(time.RFC3339), r.stderr)
		}
	}
	if strings.Contains(r.stderr, "web.example.com") {
		t.Errorf("stderr shows the body's values:\n%s", r.stderr)
	}
}

// TestIssueErrors: a role that does not exist and a body the engine
// refuses fail closed naming the variable, the path and Vault's reason;
// a body that is not JSON is never sent. The canary (in the bodies) never
// reaches stderr.
func TestIssueErrors(t *testing.T) {
	const canary = "CANARY-pki-9d2e"
	s := newServer(t)
	_, tok := s.setupCA(t, "2h")
	r := s.runSh(t, tok, map[string]string{
		"NO_ROLE": `>>vault:pki/issue/nope#certificate#{"common_name":"a.example.com","alt_names":"` + canary + `.example.com"}`,
		"REFUSED": `>>vault:pki/issue/web#certificate#{"common_name":"` + canary + `.example.org"}?file`,
	}, "true")
	if r.code != 125 {
		t.Fatalf("exit %d, want 125; stderr:\n%s", r.code, r.stderr)
	}
	for name, words := range map[string][]string{
		"NO_ROLE": {`>>vault:pki/issue/nope#certificate#{"alt_names":…,"common_name":…}`, "pki/issue/nope", "HTTP 400", "unknown role"},
		"REFUSED": {`>>vault:pki/issue/web#certificate#{"common_name":…}?file`, "pki/issue/web", "HTTP 400", "common name … not allowed by this role"},
	} {
		line := lineOf(r.stderr, name)
		for _, w := range words {
			if !strings.Contains(line, w) {
				t.Errorf("%s: line %q lacks %q", name, line, w)
			}
		}
	}
	if strings.Contains(r.stderr, canary) {
		t.Errorf("stderr holds the body:\n%s", r.stderr)
	}
	if n := len(s.requests()); n != 2 {
		t.Errorf("%d requests, want one per write (2)", n)
	}

	r = s.runSh(t, tok, map[string]string{"BAD": `>>vault:pki/issue/web#certificate#{"common_name":"` + canary + `"`}, "true")
	if r.code != 125 || !strings.Contains(lineOf(r.stderr, "BAD"), "not a complete JSON object") || strings.Contains(r.stderr, canary) {
		t.Errorf("bad body: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("a malformed write made %d requests", n)
	}
}

// TestCheckShowsNoBody: `secrets-init check` names the write target with
// the body's member names only.
func TestCheckShowsNoBody(t *testing.T) {
	s := newServer(t)
	_, tok := s.setupCA(t, "2h")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "VAULT_ADDR=" + s.proxy, "VAULT_TOKEN=" + tok,
		`TLS_KEY=>>vault:pki/issue/web#private_key#{"common_name":"secret-name.example.com"}?file`}
	cmd := exec.Command(bin, "check")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `>>vault:pki/issue/web#private_key#{"common_name":…}?file`) || strings.Contains(string(out), "secret-name") || strings.Contains(string(out), "PRIVATE") {
		t.Errorf("check:\n%s", out)
	}
}

func lineOf(stderr, name string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, name+": ") || strings.Contains(l, " "+name+": ") {
			return l
		}
	}
	return ""
}
