// Package vaultpki_test runs the built secrets-init binary (the split
// build: the Vault store runs in the resolver) against Vault's real PKI
// secrets engine, github.com/hashicorp/vault/builtin/logical/pki of Vault
// v1.21.4, to test the write form >>vault:PATH#KEY#JSON_BODY.
//
// Why a module of its own, and no Vault core: v1.21.4's pki engine builds
// only against sdk v0.21.0, and Vault's core (package vault, which
// e2e/vault runs) only against v0.20.0; no published sdk builds both. So
// this module serves the engine through a small HTTP front (pkiServer)
// that does for a request what Vault's router does for a logical request
// on a mount: the method gives the operation (GET read, PUT/POST update,
// or create when the engine's existence check finds nothing), the answer
// is Vault's JSON (data, lease, warnings; errors as {"errors": [...]} with
// the status logical.RespondErrorCommon gives). Every certificate and key
// comes from the engine's own code. Tokens and policies are Vault core's:
// the denied write is tested against the real core in e2e/vault.
package vaultpki_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/builtin/logical/pki"
	"github.com/hashicorp/vault/sdk/logical"
)

// bin is the secrets-init binary under test.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "secrets-init-e2e-pki")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "secrets-init")
	build := exec.Command("scripts/build.sh", bin)
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building secrets-init: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const token = "hvs.pki-e2e-token"

// pkiServer serves the real PKI engine mounted at pki/, recording every
// request that reaches it.
type pkiServer struct {
	backend logical.Backend
	storage logical.Storage
	url     string

	mu   sync.Mutex
	reqs []string // "METHOD path"
}

func newPKI(t *testing.T) *pkiServer {
	t.Helper()
	ctx := t.Context()
	storage := &logical.InmemStorage{}
	conf := &logical.BackendConfig{
		StorageView: storage,
		Logger:      hclog.NewNullLogger(),
		System:      &logical.StaticSystemView{DefaultLeaseTTLVal: 24 * time.Hour, MaxLeaseTTLVal: 10 * 365 * 24 * time.Hour},
		BackendUUID: "e2e-pki",
		Config:      map[string]string{},
	}
	b, err := pki.Factory(ctx, conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Initialize(ctx, &logical.InitializationRequest{Storage: storage}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	s := &pkiServer{backend: b, storage: storage}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// serve answers /v1/pki/... as Vault's HTTP layer and router would.
func (s *pkiServer) serve(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/pki/")
	s.mu.Lock()
	s.reqs = append(s.reqs, r.Method+" "+strings.TrimPrefix(r.URL.Path, "/v1/"))
	s.mu.Unlock()
	if !ok {
		respondError(w, http.StatusNotFound, "no handler for route")
		return
	}
	if r.Header.Get("X-Vault-Token") != token {
		respondError(w, http.StatusForbidden, "permission denied")
		return
	}
	var data map[string]any
	if r.Method == http.MethodPut || r.Method == http.MethodPost {
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		if err := dec.Decode(&data); err != nil && !errors.Is(err, io.EOF) {
			respondError(w, http.StatusBadRequest, "failed to parse JSON input")
			return
		}
	}
	status, body := s.handle(r.Context(), r.Method, path, data)
	w.Header().Set("Content-Type", "application/json")
	if body == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.WriteHeader(status)
	w.Write(body)
}

// handle runs one logical request on the engine.
func (s *pkiServer) handle(ctx context.Context, method, path string, data map[string]any) (int, []byte) {
	req := &logical.Request{Path: path, Data: data, Storage: s.storage, MountPoint: "pki/", MountType: "pki", ClientToken: token}
	switch method {
	case http.MethodGet:
		req.Operation = logical.ReadOperation
	case http.MethodPut, http.MethodPost:
		req.Operation = logical.UpdateOperation
		if found, exists, err := s.backend.HandleExistenceCheck(ctx, req); err == nil && found && !exists {
			req.Operation = logical.CreateOperation
		}
	case http.MethodDelete:
		req.Operation = logical.DeleteOperation
	default:
		return http.StatusMethodNotAllowed, errorBody("unsupported method")
	}
	resp, err := s.backend.HandleRequest(ctx, req)
	if code, rerr := logical.RespondErrorCommon(req, resp, err); code != 0 && rerr != nil {
		return code, errorBody(rerr.Error())
	}
	if resp == nil {
		return http.StatusNoContent, nil
	}
	out := map[string]any{"request_id": "e2e", "lease_id": "", "renewable": false, "lease_duration": 0, "data": resp.Data, "warnings": resp.Warnings}
	if resp.Secret != nil {
		out["lease_id"] = "pki/" + path + "/" + resp.Secret.LeaseID
		out["renewable"] = resp.Secret.Renewable
		out["lease_duration"] = int(resp.Secret.TTL.Seconds())
	}
	b, _ := json.Marshal(out)
	return http.StatusOK, b
}

func errorBody(msg string) []byte {
	b, _ := json.Marshal(map[string]any{"errors": []string{msg}})
	return b
}

func respondError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(errorBody(msg))
}

// do runs a request on the engine directly (setup; not recorded).
func (s *pkiServer) do(t *testing.T, method, path string, data map[string]any) map[string]any {
	t.Helper()
	if data != nil {
		b, _ := json.Marshal(data)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		data = nil
		dec.Decode(&data)
	}
	code, body := s.handle(t.Context(), method, path, data)
	if code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("%s pki/%s: %d %s", method, path, code, body)
	}
	var out struct{ Data map[string]any }
	json.Unmarshal(body, &out)
	return out.Data
}

// requests returns and forgets the recorded requests.
func (s *pkiServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reqs
	s.reqs = nil
	return r
}

// setupCA makes a root CA and the role web (any name under example.com,
// for at most two hours), and returns the CA's certificate.
func (s *pkiServer) setupCA(t *testing.T) *x509.Certificate {
	t.Helper()
	root := s.do(t, http.MethodPost, "root/generate/internal", map[string]any{"common_name": "E2E Root CA", "ttl": "87600h", "key_type": "ec", "key_bits": 256})
	s.do(t, http.MethodPost, "roles/web", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "2h", "key_type": "ec", "key_bits": 256})
	return parseCert(t, fmt.Sprint(root["certificate"]))
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

// result is one run of secrets-init.
type result struct {
	stdout, stderr string
	code           int
}

// run runs secrets-init [flags] -- sh -c script with an environment built
// from scratch: PATH, HOME, VAULT_ADDR, VAULT_TOKEN and vars.
func (s *pkiServer) run(t *testing.T, vars map[string]string, script string, flags ...string) result {
	t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "VAULT_ADDR=" + s.url, "VAULT_TOKEN=" + token}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(flags, "--", "sh", "-c", script)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running secrets-init: %v", err)
	}
	return r
}

func count(reqs []string, want string) int {
	n := 0
	for _, r := range reqs {
		if r == want {
			n++
		}
	}
	return n
}

// TestIssueOneCertificate: TLS_CERT and TLS_KEY (as files) and TLS_CA
// select from one write: one certificate is issued, the key is the
// certificate's, the CA signed it, and the start-up warning names when it
// expires. No PEM reaches stderr.
func TestIssueOneCertificate(t *testing.T) {
	s := newPKI(t)
	ca := s.setupCA(t)
	s.requests()
	body := `{"common_name":"web.example.com","ttl":"1h"}`
	r := s.run(t, map[string]string{
		"TLS_CERT": `>>vault:pki/issue/web#certificate#` + body + `?file`,
		"TLS_KEY":  `>>vault:pki/issue/web#private_key#{ "ttl": "1h", "common_name": "web.example.com" }?file`,
		"TLS_CA":   `>>vault:pki/issue/web#issuing_ca#` + body,
	}, `printf '%s\n' "$TLS_CERT" "$TLS_KEY"; cat "$TLS_CERT"; echo =====; cat "$TLS_KEY"; echo =====; printf '%s' "$TLS_CA"`)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if n := count(s.requests(), "PUT pki/issue/web"); n != 1 {
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
	s := newPKI(t)
	s.setupCA(t)
	s.requests()
	r := s.run(t, map[string]string{
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

	r = s.run(t, map[string]string{"BAD": `>>vault:pki/issue/web#certificate#{"common_name":"` + canary + `"`}, "true")
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
	s := newPKI(t)
	s.setupCA(t)
	s.requests()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "VAULT_ADDR=" + s.url, "VAULT_TOKEN=" + token,
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
